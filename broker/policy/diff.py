"""`diff`: what changes for each subscriber when one protocol version replaces another, over a set of events.

For every subscriber of either version: events that start or stop being delivered, and for events delivered under
both, the fields that start or stop being shared or change how they are masked (counted over events).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from broker.policy.decision import Decision
from broker.policy.engine import decide
from broker.policy.model import Protocol


def _exposure(decision: Decision) -> dict[str, str]:
    """Leaf path -> 'released' | 'masked:<kind>' for a delivered event (absent: not shared)."""
    out = dict.fromkeys(decision.released, "released")
    out.update({path: f"masked:{kind}" for path, kind in decision.masked})
    return out


class _SubscriberDiff:
    def __init__(self) -> None:
        self.added: list[str] = []
        self.removed: list[str] = []
        self.rule_changed = 0
        self.fields_added: Counter[str] = Counter()
        self.fields_removed: Counter[str] = Counter()
        self.fields_changed: Counter[tuple[str, str, str]] = Counter()

    def record(self, old: Decision, new: Decision) -> None:
        if old.delivered and not new.delivered:
            self.removed.append(old.event_id)
        elif new.delivered and not old.delivered:
            self.added.append(new.event_id)
        elif old.delivered and new.delivered:
            self.rule_changed += old.rule_id != new.rule_id
            before, after = _exposure(old), _exposure(new)
            self.fields_added.update(p for p in after if p not in before)
            self.fields_removed.update(p for p in before if p not in after)
            self.fields_changed.update((p, before[p], after[p]) for p in after if p in before and before[p] != after[p])

    def result(self, in_old: bool, in_new: bool) -> dict[str, Any]:
        return {
            "in_old": in_old, "in_new": in_new,
            "events_added": self.added, "events_removed": self.removed, "rule_changed": self.rule_changed,
            "fields_added": dict(sorted(self.fields_added.items())),
            "fields_removed": dict(sorted(self.fields_removed.items())),
            "fields_changed": [{"path": p, "from": a, "to": b, "events": n}
                               for (p, a, b), n in sorted(self.fields_changed.items())],
            "changed": bool(self.added or self.removed or self.fields_added or self.fields_removed
                            or self.fields_changed),
        }


def diff(old: Protocol, new: Protocol, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per subscriber, events and fields added or removed going from `old` to `new` (each event's own consent)."""
    names = list(dict.fromkeys([*old.subscribers, *new.subscribers]))
    diffs = {name: _SubscriberDiff() for name in names}
    count = 0
    for event in events:
        count += 1
        for name in names:
            diffs[name].record(decide(old, event, name), decide(new, event, name))
    subscribers = {name: d.result(name in old.subscribers, name in new.subscribers) for name, d in diffs.items()}
    return {"from": old.revision, "to": new.revision, "events": count, "subscribers": subscribers,
            "changed": any(s["changed"] for s in subscribers.values())}
