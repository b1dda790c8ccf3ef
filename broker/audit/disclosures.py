"""Who received what about a child, when, and under which rule: decision, delivered and read records joined by
decision id. A pure function, so the store, the IG API and the subject access report share one definition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Disclosure:
    decision_id: str
    seq: int  # of the decision record
    decided_at: str
    subscriber: str
    subject: str | None
    event_id: str
    event_type: str | None
    rule_id: str | None
    purpose: str | None
    lawful_basis: list[str] = field(default_factory=list)
    protocol_id: str | None = None
    protocol_version: str | None = None
    fields_released: list[str] = field(default_factory=list)
    fields_masked: dict[str, str] = field(default_factory=dict)  # path -> mask kind
    fields_withheld: list[str] = field(default_factory=list)
    delivered_at: str | None = None
    read_at: str | None = None  # first read by the subscriber
    # a consent restriction (an Art 21 objection, a refusal) set aside under a duty to disclose: the decision
    # record's {restriction, recorded_on, gateway}; IG must see it on the disclosure's own row
    consent_override: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def disclosures(entries: Iterable[Mapping[str, Any]]) -> list[Disclosure]:
    """Disclosures (decisions to deliver) among the entries, completed with their delivered and read times.
    Entries without a body (pruned) are skipped; order follows the decision records."""
    decisions: list[tuple[int, Mapping[str, Any]]] = []
    delivered: dict[str, str] = {}
    read: dict[str, str] = {}
    for entry in entries:
        record = entry.get("record")
        if not record:
            continue
        kind, did = record["kind"], record.get("decision_id")
        # a person's share (in part) after a referral discloses like the protocol's own deliver decision
        if kind in ("decision", "human_decision") and record.get("outcome") == "deliver":
            decisions.append((entry["seq"], record))
        elif kind == "delivered" and did:
            delivered.setdefault(did, record["time"])
        elif kind == "delivery_read" and did:
            read[did] = min(read.get(did, record["time"]), record["time"])
    out = []
    for seq, r in decisions:
        did = r["decision_id"]
        out.append(Disclosure(
            decision_id=did, seq=seq, decided_at=r["time"], subscriber=r["subscriber"], subject=r.get("subject"),
            event_id=r["event_id"], event_type=r.get("event_type"), rule_id=r.get("rule_id"),
            purpose=r.get("purpose"), lawful_basis=list(r.get("lawful_basis", [])), protocol_id=r.get("protocol_id"),
            protocol_version=r.get("protocol_version"), fields_released=list(r.get("fields_released", [])),
            fields_masked=dict(r.get("fields_masked", {})), fields_withheld=list(r.get("fields_withheld", [])),
            delivered_at=delivered.get(did), read_at=read.get(did),
            consent_override=dict(r["consent_override"]) if r.get("consent_override") else None))
    return out
