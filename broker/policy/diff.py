"""`diff`: what changes for each subscriber when one protocol version replaces another, over a set of events.

For every subscriber of either version: events that start or stop being delivered, and for events delivered under
both, the fields that start or stop being shared or change how they are masked (counted over events).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from broker.policy.consent import ConsentState
from broker.policy.decision import Decision
from broker.policy.engine import decide
from broker.policy.facts import CaseFacts
from broker.policy.model import Protocol

# What the registers know of an event's child (consent, case and determination facts): the shell reads them, so a
# diff over replayed events decides as the share stage did, not as if every register were empty.
Context = Callable[[Mapping[str, Any]], tuple[ConsentState | None, CaseFacts | None]]


def _no_context(event: Mapping[str, Any]) -> tuple[ConsentState | None, CaseFacts | None]:
    return None, None


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


def diff(old: Protocol, new: Protocol, events: Iterable[Mapping[str, Any]],
         context: Context = _no_context) -> dict[str, Any]:
    """Per subscriber, events and fields added or removed going from `old` to `new`. `context(event)` gives the
    consent register's state and the register facts for the event's child (default: none, each event's own
    consent block), the same for both versions."""
    names = list(dict.fromkeys([*old.subscribers, *new.subscribers]))
    diffs = {name: _SubscriberDiff() for name in names}
    count = 0
    for event in events:
        count += 1
        consent, facts = context(event)
        for name in names:
            diffs[name].record(decide(old, event, name, consent=consent, facts=facts),
                               decide(new, event, name, consent=consent, facts=facts))
    subscribers = {name: d.result(name in old.subscribers, name in new.subscribers) for name, d in diffs.items()}
    return {"from": old.revision, "to": new.revision, "events": count, "subscribers": subscribers,
            "changed": any(s["changed"] for s in subscribers.values())}


def format_diff(result: Mapping[str, Any]) -> str:
    """The diff as a table for people: one row per subscriber, what changes, then the fields that change."""
    head = ("subscriber", "events +", "events -", "rule changed", "fields +", "fields -", "masking changed", "")
    rows = [head]
    for name, s in result["subscribers"].items():
        where = "" if s["in_old"] and s["in_new"] else ("new subscriber" if s["in_new"] else "removed subscriber")
        rows.append((name, str(len(s["events_added"])), str(len(s["events_removed"])), str(s["rule_changed"]),
                     str(len(s["fields_added"])), str(len(s["fields_removed"])), str(len(s["fields_changed"])),
                     ("CHANGED " if s["changed"] else "same ") + where))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"protocol {result['from']} -> {result['to']} over {result['events']} event(s): "
             + ("decisions CHANGE" if result["changed"] else "no decision changes"), ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for name, s in result["subscribers"].items():
        detail = [f"  starts sharing {p} ({n} event(s))" for p, n in s["fields_added"].items()]
        detail += [f"  stops sharing {p} ({n} event(s))" for p, n in s["fields_removed"].items()]
        detail += [f"  {c['path']}: {c['from']} -> {c['to']} ({c['events']} event(s))" for c in s["fields_changed"]]
        if s["events_added"] or s["events_removed"]:
            detail.insert(0, f"  events newly delivered: {len(s['events_added'])}, no longer delivered: "
                             f"{len(s['events_removed'])}")
        if detail:
            lines += ["", f"{name}:", *detail]
    return "\n".join(lines) + "\n"
