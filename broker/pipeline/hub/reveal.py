"""What of an event the hub watch opens: the fields its planner (broker/pipeline/hub/plan.py) reads, and no other.

The watch reads every event about every child. Opening each whole event again would put names, addresses and
narratives in the clear in a process that only needs ids, types, agencies, times and risk gradings. `hub_view` cuts
the protected event down to those paths before it is revealed: the cut keeps the event's structure and each list's
indices, so every kept ciphertext still opens under the associated data that binds it to its concrete path, and a
ciphertext left out is never unwrapped at all (nor counted as a key use).

Of what is kept, most is operational and in the clear already (ids, type, schema version, times, source agency,
linkage); the ciphertexts opened are the risk level and the agency gradings (sensitive operational) and, on a hub
decision, the contributions it is about. `risk.level` is on every event, so an erased child's event still shows as
shredded and is left out, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Path tree of what the planner reads: True keeps the whole value (a list with its indices); a mapping recurses.
HUB_FIELDS: Mapping[str, Any] = {
    "event_id": True, "event_type": True, "schema_version": True, "occurred_at": True, "recorded_at": True,
    "source": {"agency": True},
    "subject": {"linkage": True},  # the token the child carries and how it was made: copied onto the hub's events
    "risk": {"level": True, "agency_levels": True},  # the common level, after the protocol's risk_scales
    "payload": {
        "superseded_token": True,  # person.linked: the token folded into the child's
        "enquiry_id": True, "concerns": True,  # a hub decision: the enquiry or contributions it closes
    },
}


def _cut(value: Mapping[str, Any], keep: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in keep.items():
        if key not in value:
            continue
        inner = value[key]
        # a whole value kept, or a part of a mapping; an off-contract shape where a mapping belongs is left out
        # (never opened), and the planner or the envelope check refuses what is then missing
        if sub is True:
            out[key] = inner
        elif isinstance(inner, Mapping):
            out[key] = _cut(inner, sub)
    return out


def hub_view(protected: Mapping[str, Any]) -> dict[str, Any]:
    """The protected event cut to HUB_FIELDS, still protected: reveal this, not the event."""
    return _cut(protected, HUB_FIELDS)
