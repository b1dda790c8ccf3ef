"""A decision: for one event and one subscriber, deliver or withhold, under which rule, and which fields.

The record names paths, never values, so it can go to the audit log as it is (OPA decision-log style).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

# Fixed: decision ids must stay stable across releases, so a replay yields the same ids.
DECISION_NAMESPACE = uuid.UUID("0f3c2a9e-5d41-4b8e-a6f2-6d6173682d64")


_DECISION_NAMESPACE_BYTES = DECISION_NAMESPACE.bytes


def uuid5_text(namespace: bytes, name: str) -> str:
    """str(uuid.uuid5(UUID(bytes=namespace), name)) straight from SHA-1, without building UUID objects (a hot path:
    one per decision). RFC 4122: the digest's first 16 bytes with version 5 and the RFC 4122 variant set."""
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def delivered_record_id(decision_id: str, subscriber: str) -> str:
    """The record id of the `delivered` audit record of a decision's delivery to `subscriber`: derived, so a re-run
    that delivers again (a crash after the audit went out but before the delivery was settled: a held release, a
    human decision, an erasure notice) audits it under the same id, which the audit store keeps once. It was a fresh
    UUID until session 15, so such a re-run said twice that one delivery was made."""
    return uuid5_text(_DECISION_NAMESPACE_BYTES, f"delivered\x1f{decision_id}\x1f{subscriber}")


def decision_id(event_id: str, subscriber: str, protocol_id: str, protocol_version: str,
                outcome: str = "deliver") -> str:
    """UUIDv5 of (event id, subscriber, protocol id, protocol version, outcome): a re-run decides under the same id.

    The outcome is in the name because one event can be decided twice for a subscriber with different facts: an
    identity event withheld while the child's case is not open, then released when a later record announces it
    again. The audit store keeps the first record of an id (a replay's repeats are the same record), so under one
    id the release was dropped and the disclosure was missing from the audit and from a subject access report
    (issue 24, session 13). A delivery keeps the id it always had (its name has no outcome suffix), so deliveries,
    held deliveries and human decisions name the same decisions as before; a withhold's id is new since session 13.
    A withhold recorded before then keeps its old id (its delivery's) in the store, and a release of that event under
    the same protocol version meets it: the store chains such a release under an id derived from that one (its body's
    decision_id stays this one) and still drops true repeats (broker/audit/store.py `_releases`, session 14)."""
    name = f"{event_id}\x1f{subscriber}\x1f{protocol_id}\x1f{protocol_version}"
    return uuid5_text(_DECISION_NAMESPACE_BYTES, name if outcome == "deliver" else f"{name}\x1f{outcome}")


def default_deny_reason(event_type: str, subscriber: str) -> str:
    """Why a subscriber no rule names for an event type is withheld. One place: the engine gives it, and the audit
    store restores it into a grouped withhold's records (broker/audit/withheld.py), which leave it out."""
    return f"withheld: no rule shares {event_type} with {subscriber} (default deny)"


@dataclass(frozen=True, slots=True)
class ConsentOverride:
    """A duty to disclose (Art 6(1)(c)) required the sharing despite a refusal, withdrawal or objection."""

    restriction: str  # objection | withdrawn | refused
    recorded_on: str | None
    gateway: str  # the duty to disclose the rule cites (the audit record's field keeps its historical name)

    def to_record(self) -> dict[str, Any]:
        return {"restriction": self.restriction, "recorded_on": self.recorded_on, "gateway": self.gateway}


@dataclass(frozen=True, slots=True)
class HumanDecisionNeeded:
    """A rule would share but for a refusal, withdrawal or objection, and cites no duty to disclose: whether to share
    anyway (all, part or none, with reasons) is for a person to decide and record, never the engine. The queue
    that takes these to the hub or the owning agency's DPO is the referral register (broker/stores/decisions.py,
    broker/service/decisions.py); until a person decides, the event is withheld."""

    rule_id: str
    restriction: str  # objection | withdrawn | refused
    recorded_on: str | None
    basis: tuple[str, ...]  # what the rule cites, none of it a duty to disclose

    def to_record(self) -> dict[str, Any]:
        """The `human_decision` object of the withholding `decision` audit record: referred, and on what."""
        return {"status": "referred", "rule_id": self.rule_id, "restriction": self.restriction,
                "recorded_on": self.recorded_on, "basis": list(self.basis)}


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    event_id: str
    event_type: str
    subscriber: str
    outcome: str  # deliver | withhold
    rule_id: str | None
    lawful_basis: tuple[str, ...]
    purpose: str | None
    released: tuple[str, ...]  # leaf paths present in the event and released as they are
    masked: tuple[tuple[str, str], ...]  # (leaf path, mask kind)
    withheld: tuple[str, ...]  # leaf paths present and removed; empty when the whole event is withheld
    protocol_id: str
    protocol_version: str
    reason: str
    consent_override: ConsentOverride | None = None
    # Withheld pending a recorded human decision: the audit record says it was referred, and on what.
    human_decision: HumanDecisionNeeded | None = None
    # Positions in subject.related_people left out of the delivery because that person's objection (or refusal, under
    # a rule relying on consent) is recorded (engine.people_withheld); `release` drops them. The reason names them.
    people_withheld: tuple[int, ...] = ()

    @property
    def delivered(self) -> bool:
        return self.outcome == "deliver"

    def to_record(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id, "event_id": self.event_id, "event_type": self.event_type,
            "subscriber": self.subscriber, "outcome": self.outcome, "rule_id": self.rule_id,
            "lawful_basis": list(self.lawful_basis), "purpose": self.purpose,
            "fields_released": list(self.released), "fields_masked": dict(self.masked),
            "fields_withheld": list(self.withheld),
            "protocol_id": self.protocol_id, "protocol_version": self.protocol_version, "reason": self.reason,
            "consent_override": self.consent_override.to_record() if self.consent_override else None,
            "human_decision": self.human_decision.to_record() if self.human_decision else None,
        }
