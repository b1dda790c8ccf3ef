"""Project an event for one subscriber: released leaves as they are, masked leaves transformed, the rest removed.

Only paths the decision names survive, so a leaf the decision did not see (a different event) is dropped. Lists and
objects left empty are dropped too. The result carries a `delivery` block naming the decision behind it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from broker.policy.decision import Decision
from broker.policy.errors import PolicyError
from broker.policy.masks import apply_mask

_DROP = object()
_PLAN_MEMO_SIZE = 1024
_SCALARS = frozenset({str, int, float, bool, type(None)})  # JSON leaves: never a Mapping or a list


def wanted_prefixes(paths: Iterable[str]) -> frozenset[str]:
    """Every path a projection must walk into to reach these leaf paths: each path itself and each prefix that ends
    where a key (".") or a list ("[]") begins. 'a.b[].c' gives 'a', 'a.b', 'a.b[]' and 'a.b[].c'.

    A subtree whose path is not among them holds no released or masked leaf, so it projects to nothing and is
    skipped without being walked."""
    out = set()
    for path in paths:
        out.add(path)
        for i, c in enumerate(path):
            if c == "." or (c == "[" and path.startswith("[]", i)):
                out.add(path[:i])
    return frozenset(out)


# decision.released / decision.masked tuples are shared by every decision of one rule partition (engine memo), so
# the per-decision sets are built once per partition and found again by the identity of those tuples.
_plans: dict[tuple[int, int], tuple[tuple[str, ...], tuple[tuple[str, str], ...], frozenset[str],
                                   dict[str, str], frozenset[str]]] = {}


def _plan(decision: Decision) -> tuple[frozenset[str], dict[str, str], frozenset[str]]:
    """(released paths, mask kind by path, prefixes to walk) of a decision; memoised for immutable (tuple) fields."""
    released, masked = decision.released, decision.masked
    key = (id(released), id(masked))
    found = _plans.get(key)
    if found is None or found[0] is not released or found[1] is not masked:
        masks = dict(masked)
        found = (released, masked, frozenset(released), masks, wanted_prefixes([*released, *masks]))
        if type(released) is tuple and type(masked) is tuple:  # a list could change after it was memoised
            if len(_plans) >= _PLAN_MEMO_SIZE:
                _plans.clear()
            _plans[key] = found
    return found[2], found[3], found[4]


def _without_people(event: Mapping[str, Any], positions: tuple[int, ...]) -> Mapping[str, Any]:
    """The event without the related people at `positions` (their own objection or refusal keeps their data out);
    a shallow copy, the event itself untouched."""
    subject = event.get("subject")
    if not positions or not isinstance(subject, Mapping) or not isinstance(subject.get("related_people"), list):
        return event
    gone = frozenset(positions)
    kept = [p for i, p in enumerate(subject["related_people"]) if i not in gone]
    return {**event, "subject": {**subject, "related_people": kept}}


def release(event: Mapping[str, Any], decision: Decision, *, mask_key: bytes) -> dict[str, Any]:
    """The subscriber's view of the event under a deliver decision. Raises PolicyError for a withhold decision,
    a decision about another event, or a keyed_hash mask without its key."""
    if decision.outcome != "deliver":
        raise PolicyError(f"decision {decision.decision_id} withholds the event: nothing to release")
    if str(event.get("event_id", "")) != decision.event_id:
        raise PolicyError(f"decision {decision.decision_id} is about another event")
    released, masks, wanted = _plan(decision)
    event_date = str(event.get("occurred_at", ""))[:10] or None
    subscriber = decision.subscriber

    def leaf(value: Any, path: Any) -> Any:
        if path in released:
            return value
        kind = masks.get(path)
        if kind is None:
            return _DROP
        return apply_mask(kind, value, key=mask_key, subscriber=subscriber, event_date=event_date)

    def project(value: Any, path: Any) -> Any:
        t = type(value)
        if t is dict or (t not in _SCALARS and t is not list and isinstance(value, Mapping)):
            out = {}
            for key, sub in value.items():
                child = f"{path}.{key}" if path else key
                if type(sub) in _SCALARS:  # most values: a leaf, settled here without a call
                    if child in released:
                        out[key] = sub
                    elif (kind := masks.get(child)) is not None:
                        out[key] = apply_mask(kind, sub, key=mask_key, subscriber=subscriber, event_date=event_date)
                    continue
                if type(child) is str and child and child not in wanted:
                    continue  # nothing released or masked below: the whole subtree drops
                kept = project(sub, child)
                if kept is not _DROP:
                    out[key] = kept
            return out or _DROP
        if t is list or (t not in _SCALARS and isinstance(value, list)):
            child = path + "[]"
            if child not in wanted:
                return _DROP
            items = [project(sub, child) for sub in value]
            kept_items = [item for item in items if item is not _DROP]
            return kept_items or _DROP
        return leaf(value, path)

    view = project(_without_people(event, decision.people_withheld), "")
    out: dict[str, Any] = {} if view is _DROP else view
    out["delivery"] = {
        "protocol_id": decision.protocol_id, "protocol_version": decision.protocol_version,
        "rule_id": decision.rule_id, "lawful_basis": list(decision.lawful_basis), "purpose": decision.purpose,
        "decision_id": decision.decision_id,
        "consent_override": decision.consent_override.to_record() if decision.consent_override else None,
    }
    return out
