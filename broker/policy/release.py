"""Project an event for one subscriber: released leaves as they are, masked leaves transformed, the rest removed.

Only paths the decision names survive, so a leaf the decision did not see (a different event) is dropped. Lists and
objects left empty are dropped too. The result carries a `delivery` block naming the decision behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.policy.decision import Decision
from broker.policy.errors import PolicyError
from broker.policy.masks import apply_mask

_DROP = object()


def release(event: Mapping[str, Any], decision: Decision, *, mask_key: bytes) -> dict[str, Any]:
    """The subscriber's view of the event under a deliver decision. Raises PolicyError for a withhold decision,
    a decision about another event, or a keyed_hash mask without its key."""
    if decision.outcome != "deliver":
        raise PolicyError(f"decision {decision.decision_id} withholds the event: nothing to release")
    if str(event.get("event_id", "")) != decision.event_id:
        raise PolicyError(f"decision {decision.decision_id} is about another event")
    released = frozenset(decision.released)
    masks = dict(decision.masked)
    event_date = str(event.get("occurred_at", ""))[:10] or None

    def project(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for key, sub in value.items():
                kept = project(sub, f"{path}.{key}" if path else key)
                if kept is not _DROP:
                    out[key] = kept
            return out or _DROP
        if isinstance(value, list):
            items = [project(sub, path + "[]") for sub in value]
            kept_items = [item for item in items if item is not _DROP]
            return kept_items or _DROP
        if path in released:
            return value
        kind = masks.get(path)
        if kind is None:
            return _DROP
        return apply_mask(kind, value, key=mask_key, subscriber=decision.subscriber, event_date=event_date)

    view = project(event, "")
    out: dict[str, Any] = {} if view is _DROP else view
    out["delivery"] = {
        "protocol_id": decision.protocol_id, "protocol_version": decision.protocol_version,
        "rule_id": decision.rule_id, "lawful_basis": list(decision.lawful_basis), "purpose": decision.purpose,
        "decision_id": decision.decision_id,
        "consent_override": decision.consent_override.to_record() if decision.consent_override else None,
    }
    return out
