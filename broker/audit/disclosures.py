"""Who received what about a child, when, and under which rule: decision, delivered and read records joined by
decision id. A pure function, so the store, the IG API and the subject access report share one definition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from broker.audit.kafka_reads import KIND as READ_UP_TO
from broker.audit.kafka_reads import read_at as kafka_read_at


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
    read_via: str | None = None  # how the first read came: "http" (a pull) or "kafka" (a committed offset)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def disclosures(entries: Iterable[Mapping[str, Any]]) -> list[Disclosure]:
    """Disclosures (decisions to deliver) among the entries, completed with their delivered and read times (read:
    the first HTTP pull, or the first Kafka committed offset beyond the delivery, whichever came first). Entries
    without a body (pruned) are skipped; order follows the decision records."""
    decisions: list[tuple[int, Mapping[str, Any]]] = []
    delivered: dict[str, Mapping[str, Any]] = {}
    read: dict[str, str] = {}
    up_to: list[Mapping[str, Any]] = []  # Kafka groups' committed offsets (broker/audit/kafka_reads.py)
    for entry in entries:
        record = entry.get("record")
        if not record:
            continue
        kind, did = record["kind"], record.get("decision_id")
        # a person's share (in part) after a referral discloses like the protocol's own deliver decision
        if kind in ("decision", "human_decision") and record.get("outcome") == "deliver":
            decisions.append((entry["seq"], record))
        elif kind == "delivered" and did:
            delivered.setdefault(did, record)
        elif kind == "delivery_read" and did:
            read[did] = min(read.get(did, record["time"]), record["time"])
        elif kind == READ_UP_TO:
            up_to.append(record)
    out = []
    for seq, r in decisions:
        did = r["decision_id"]
        sent = delivered.get(did)
        by_http, by_kafka = read.get(did), kafka_read_at(sent, up_to) if sent else None
        first = min((t for t in (by_http, by_kafka) if t), default=None)
        out.append(Disclosure(
            decision_id=did, seq=seq, decided_at=r["time"], subscriber=r["subscriber"], subject=r.get("subject"),
            event_id=r["event_id"], event_type=r.get("event_type"), rule_id=r.get("rule_id"),
            purpose=r.get("purpose"), lawful_basis=list(r.get("lawful_basis", [])), protocol_id=r.get("protocol_id"),
            protocol_version=r.get("protocol_version"), fields_released=list(r.get("fields_released", [])),
            fields_masked=dict(r.get("fields_masked", {})), fields_withheld=list(r.get("fields_withheld", [])),
            delivered_at=sent["time"] if sent else None, read_at=first,
            consent_override=dict(r["consent_override"]) if r.get("consent_override") else None,
            read_via=None if first is None else "http" if first == by_http else "kafka"))
    return out
