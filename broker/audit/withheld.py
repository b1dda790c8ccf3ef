"""One audit record for an event's plain withholds, instead of one per subscriber (issue 24).

Most decisions withhold because no rule applied (five subscribers, one or two of them served), and each such
`decision` record repeated the event, its type, the child, the protocol and its version, and carried empty field
lists: 61% of the audit's bytes. The share plan sends them as one `decisions_withheld` record per event naming each
subscriber withheld from and why; the audit store, the one place that chains records, expands it back into the
per-subscriber `decision` records it stands for before it validates and chains them. So what the store holds, and
so every reader of it (the IG pages, the SAR, the digest, FHIR AuditEvent, disclosures, the as-decided explanation,
export, verification), is what it was, byte for byte; only the audit topic carries the group.

Only a decision the group restores exactly is grouped (`plain_withhold`): a withhold with no rule, purpose, lawful
basis, field lists, consent override or referral, whose id is the one `decision_id` derives from its event,
subscriber and protocol. Everything else (deliveries, referrals) keeps its own record. A reason the engine gives
for default deny ("no rule shares T with S") is left out of the group and made again from the event type and the
subscriber by the engine's own function, so the text lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.kit.events import EVENT_NAMESPACE_BYTES, uuid5_text
from broker.audit.record import built_record
from broker.policy.decision import Decision, decision_id, default_deny_reason

KIND = "decisions_withheld"
_CONTAINERS = (list, dict)


def plain_withhold(decision: Decision) -> bool:
    """A withhold whose whole record the group can restore: nothing about it but its subscriber and reason."""
    return (decision.outcome == "withhold" and decision.rule_id is None and decision.purpose is None
            and not decision.lawful_basis and not decision.released and not decision.masked
            and not decision.withheld and decision.consent_override is None and decision.human_decision is None
            and not decision.people_withheld
            and decision.decision_id == decision_id(decision.event_id, decision.subscriber, decision.protocol_id,
                                                    decision.protocol_version, "withhold"))


def withheld_record(decisions: Sequence[Decision], *, time: str, actor: str, subject: str) -> dict[str, Any]:
    """The group of one event's plain withholds (all of one event and protocol version, in decision order)."""
    first = decisions[0]
    assert all(d.event_id == first.event_id and d.protocol_version == first.protocol_version
               and d.protocol_id == first.protocol_id and plain_withhold(d) for d in decisions), \
        "a withheld group holds plain withholds of one event under one protocol version"
    # the id is derived, so a share worker that redoes the batch sends the same group and the store drops the copy
    # (it also drops each expanded decision by its own id)
    record_id = uuid5_text(EVENT_NAMESPACE_BYTES, f"decisions-withheld\x1f{first.event_id}\x1f{first.protocol_id}"
                                                  f"\x1f{first.protocol_version}")
    withheld = [{"subscriber": d.subscriber} if d.reason == default_deny_reason(d.event_type, d.subscriber)
                else {"subscriber": d.subscriber, "reason": d.reason} for d in decisions]
    return built_record(KIND, time=time, actor=actor, record_id=record_id, subject=subject, event_id=first.event_id,
                        event_type=first.event_type, protocol_id=first.protocol_id,
                        protocol_version=first.protocol_version, withheld=withheld)


def expand(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The records a record stands for in the store: a group -> its per-subscriber `decision` records, exactly as
    the share plan built them before groups existed (same ids, fields and order); any other record -> itself."""
    if record.get("kind") != KIND:
        return [record]
    event_id, event_type = record["event_id"], record["event_type"]
    protocol_id, version = record["protocol_id"], record["protocol_version"]
    out: list[Mapping[str, Any]] = []
    template: dict[str, Any] | None = None
    containers: list[str] = []
    for w in record["withheld"]:
        subscriber = w["subscriber"]
        did = decision_id(event_id, subscriber, protocol_id, version, "withhold")
        reason = w.get("reason") or default_deny_reason(event_type, subscriber)
        if template is None:
            decision = Decision(did, event_id, event_type, subscriber, "withhold", None, (), None, (), (), (),
                                protocol_id, version, reason)
            # the share plan's own builder, so a group restores exactly the record the plan made before groups
            # existed
            template = built_record("decision", time=record["time"], actor=record["actor"],
                                    subject=record["subject"], record_id=did, **decision.to_record())
            out.append(template)
            containers = [k for k, v in template.items() if v.__class__ in _CONTAINERS]
            continue
        # the group's other decisions differ from the first only in these four fields (same keys, same order): a
        # copy is what the builder would make, at a fraction of its cost (the builder was 16% of the audit store's
        # CPU); its (empty) lists and maps are copied too, so no two records share one. The keys holding them are
        # found once per group, not looked for in every copy.
        other = template.copy()
        for k in containers:
            other[k] = template[k].copy()
        other["record_id"] = other["decision_id"] = did
        other["subscriber"], other["reason"] = subscriber, reason
        out.append(other)
    return out
