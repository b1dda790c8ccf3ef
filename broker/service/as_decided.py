"""Explain and diff as the broker decided: the consent, case and determinations registers read for the event's child
(through the register-facts reader the share stage uses, broker/service/facts.py), the determinations as they stood
at the decision's time (broker/pipeline/as_decided.py), and one recorded decision re-derived from its audit record.

Read only: nothing here writes a register. `Registers` opens the registers of a data directory without Kafka, for
the CLI; a running Runtime has the same attributes and works as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.aio import blocking
from broker.errors import NotFound
from broker.pipeline.as_decided import AS_OF, AS_OF_NOTE, determined_at
from broker.pipeline.register_facts import BatchFacts, children
from broker.policy.consent import ConsentState
from broker.policy.decision import Decision
from broker.policy.engine import decide
from broker.policy.facts import CaseFacts
from broker.policy.model import Protocol
from broker.service.facts import read_facts
from broker.stores.cases import CaseRegister
from broker.stores.consent import ConsentRegister
from broker.stores.determinations import DeterminationRegister
from broker.stores.identities import IdentityRegister


@dataclass
class Registers:
    """The registers a decision reads, opened read-side from a data directory (or the shared store URL)."""

    keys: Any
    consent: ConsentRegister
    cases: CaseRegister
    identities: IdentityRegister
    determinations: DeterminationRegister

    @classmethod
    def open(cls, data_dir: Path, url: str | None = None) -> Registers:
        from broker.crypto import open_key_provider

        return cls(open_key_provider(data_dir), ConsentRegister(data_dir / ConsentRegister.FILE, url),
                   CaseRegister(data_dir / CaseRegister.FILE, url),
                   IdentityRegister(data_dir / IdentityRegister.FILE, url),
                   DeterminationRegister(data_dir / DeterminationRegister.FILE, url))

    def close(self) -> None:
        for register in (self.consent, self.cases, self.identities, self.determinations):
            register.close()


def _token(event: Mapping[str, Any]) -> str | None:
    token = ((event.get("subject") or {}).get("linkage") or {}).get("token")
    return token if isinstance(token, str) and token else None


def register_context(rt: Any, event: Mapping[str, Any], at: str | None = None
                     ) -> tuple[ConsentState | None, CaseFacts | None]:
    """The consent register's state and the register facts for the event's child: as of now, or with `at` (an ISO
    UTC time) the determinations in force then (AS_OF says which fact is which)."""
    token = _token(event)
    if token is None:
        return None, None
    case_open = rt.cases.is_open(token) if rt.cases is not None else None
    facts: BatchFacts = read_facts(rt, [token])
    if at is not None and rt.identities is not None and rt.determinations is not None:
        known = rt.identities.known([token])
        tied = children([token], known.child_of, known.members)
        records = rt.determinations.listed([t for ts in tied.values() for t in ts])
        facts = BatchFacts(determined_at(records, tied, at), facts.birth_dates)
    consent = rt.consent.get(token) if rt.consent is not None else None
    return consent, facts.for_event(token, case_open)


def diff_context(rt: Any) -> Callable[[Mapping[str, Any]], tuple[ConsentState | None, CaseFacts | None]]:
    """`register_context` for `diff`: each replayed event under what the registers hold for its child now."""
    return lambda event: register_context(rt, event)


class DecisionNotFound(NotFound, LookupError):
    """No decision record with this id about this event in the audit store (or it was pruned)."""

    def __init__(self) -> None:
        super().__init__("no decision record with this id about this event in the audit store (or it was pruned)")


def recorded_decision(audit: Any, decision_id: str, event_id: str | None = None) -> dict[str, Any]:
    """The `decision` audit record with this id (about `event_id`, when given); DecisionNotFound otherwise."""
    for entry in audit.search(decision_id=decision_id, kind="decision", limit=10):
        record = entry.get("record")
        if record and (event_id is None or record.get("event_id") == event_id):
            return dict(record)
    raise DecisionNotFound


def _compare(recorded: Mapping[str, Any], today: Decision) -> list[str]:
    """What differs between the recorded decision and today's, by field name (codes and paths only)."""
    now = today.to_record()
    out = []
    for name in ("outcome", "rule_id", "fields_released", "fields_masked", "fields_withheld"):
        before, after = recorded.get(name), now.get(name)
        if name.startswith("fields_") and before is None:
            before = {} if name == "fields_masked" else []
        if isinstance(before, list) and isinstance(after, list):
            before, after = sorted(before), sorted(after)
        if before != after:
            out.append(name)
    if bool(recorded.get("consent_override")) != bool(now.get("consent_override")):
        out.append("consent_override")
    return out


def explain_recorded(rt: Any, protocol: Protocol, record: Mapping[str, Any],
                     event: Mapping[str, Any]) -> dict[str, Any]:
    """One recorded decision (its audit record) re-derived over its event under today's protocol and the registers
    as they stood at the decision's time where they keep history: whether today's protocol decides the same."""
    from broker.policy import explain

    consent, facts = register_context(rt, event, at=record["time"])
    result = explain(protocol, event, record["subscriber"], consent, facts=facts)
    today = decide(protocol, event, record["subscriber"], consent=consent, facts=facts)
    differs = _compare(record, today)
    result["recorded"] = {k: record.get(k) for k in (
        "decision_id", "time", "event_id", "subscriber", "outcome", "rule_id", "protocol_id", "protocol_version",
        "fields_released", "fields_masked", "fields_withheld", "consent_override", "reason")}
    result["as_decided"] = {"same": not differs, "differs_in": differs,
                            "same_protocol_version": record.get("protocol_version") == protocol.version,
                            "as_of": AS_OF, "note": AS_OF_NOTE}
    return result


def format_recorded(result: Mapping[str, Any]) -> str:
    """The verdict in two lines, to put above the explanation's text."""
    r, a = result["recorded"], result["as_decided"]
    head = (f"recorded decision {r['decision_id']} at {r['time']}: {str(r['outcome']).upper()} to {r['subscriber']}"
            f" (rule {r['rule_id'] or 'none'}) under {r['protocol_id']} version {r['protocol_version']}")
    verdict = ("today's protocol decides the SAME" if a["same"] else
               "today's protocol decides DIFFERENTLY in: " + ", ".join(a["differs_in"]))
    return f"{head}\n{verdict} (protocol version {result['protocol']['version']}); {a['note']}\n\n"


class EventGone(NotFound, LookupError):
    """The decided event is no longer on the events topic (retention passed, or the child was erased)."""

    def __init__(self) -> None:
        super().__init__("the decision's event is no longer on the events topic (retention, or erased)")


async def recorded_event(rt: Any, event_id: str) -> dict[str, Any]:
    """The decided event read back from the events topic and opened. The event id is in the clear in the sealed
    envelope, so only that event's keys are unwrapped (each unwrap is audited); an erased child's event is gone."""
    from contextlib import aclosing

    from broker.crypto import reveal_event
    from broker.kafka.scan import scan_topic
    from broker.service.messages import decode

    records = scan_topic(rt.bootstrap, rt.settings.topics.events, **rt.kafka_security)
    async with aclosing(records):  # stopping at the event must still stop the consumer
        async for record in records:
            sealed = decode(record.value)
            if sealed.get("event_id") != event_id:
                continue
            revealed = await blocking(reveal_event, sealed, rt.keys, reason="ig explain decision",
                                      on_unavailable="mark")  # the key store: unwraps by the KMS
            if revealed.shredded:
                raise EventGone
            return dict(revealed.event)
    raise EventGone
