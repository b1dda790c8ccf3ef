"""The hub watch's batch, old against new, over the bench's mix (issue 24, session 9): the same hub events, the same
history register and the same audit records, while the new watch opens only the messages its plan reads.

The old side is the watch as session 8 left it, kept here as the reference: every message decoded and revealed
(cut to the hub's fields) and the audit records built through the validating `audit_record`. The new side is
broker/service/hub_watch.py: a message whose `event_type` header names a type the plan never reads (the hub's own
events read back, erasure notices) is passed over unopened, and the records are built unvalidated
(`built_record`), so every one of them is validated here against the audit schema.

The stream is what the watch reads off the events topic: the mix's events as intake publishes them (protected with
a real key store, with their headers; some without, as a producer that sets none would send them) and, after each
batch, the hub events the previous batch raised, protected and encoded as the watch publishes them. The registers
are real SQLite files; only Kafka is left out (the messages are real aiokafka ConsumerRecords).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka.structs import ConsumerRecord

from broker.audit import audit_record
from broker.audit.record import validate_record
from broker.bench.share_mix import mix_events
from broker.bench.stages import install_protocol
from broker.crypto import KeyStore, open_key_provider, protect_event, reveal_event
from broker.pipeline.hub.calendar import Calendar, build_calendar
from broker.pipeline.hub.plan import ERASED, HUB_TYPES, plan_hub
from broker.pipeline.hub.reveal import hub_view
from broker.policy import Protocol, load_protocol
from broker.schema.validate import validate_event
from broker.service import hub_watch
from broker.service.messages import decode, encode, event_headers
from broker.stores.history import HistoryRegister
from broker.stores.identities import IdentityRegister

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 200  # native records of the bench's mix (several events each)
BATCH = 20  # messages of the mix per batch, the hub events read back on top
NOW = "2026-12-01T12:00:00.000Z"
TOPIC = "mash.events"


@dataclass
class Parts:
    """What the watch's batch reads and writes: a real key store and real SQLite registers (rt's fields)."""

    protocol: Protocol
    keys: KeyStore
    history: HistoryRegister
    identities: IdentityRegister
    revealed: int = 0  # messages opened

    def reveal(self, protected: dict[str, Any]) -> Any:
        self.revealed += 1
        return reveal_event(protected, self.keys)

    def audit_record(self, kind: str, **fields: Any) -> dict[str, Any]:  # as the Runtime builds them
        return audit_record(kind, **fields)


@dataclass
class Kit:
    work: Path
    protocol: Protocol
    keys: KeyStore
    calendar: Calendar
    events: list[dict[str, Any]]


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    work = tmp_path_factory.mktemp("hub-watch-differential")
    protocol = load_protocol(install_protocol(work)[0])
    keys = open_key_provider(work / "data", create=True)
    config = yaml.safe_load((ROOT / "deploy/calendars/exampleshire.yaml").read_text())
    banks = yaml.safe_load((ROOT / "deploy/calendars/england-bank-holidays.yaml").read_text())["dates"]
    try:
        yield Kit(work, protocol, keys, build_calendar(config, banks), mix_events(RECORDS))
    finally:
        keys.close()


def _record(offset: int, value: bytes, headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, None, value, None, 0, len(value), tuple(headers))


def _old_events(rt: Any, messages: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
    """Session 8's `_events`: every message decoded and revealed, whatever its type."""
    out = []
    for msg in messages:
        try:
            revealed = rt.reveal(hub_view(decode(msg.value)))
        except Exception:
            continue
        if not revealed.shredded:
            out.append(revealed.event)
    return out


def _old_published(rt: Any, event: dict[str, Any], at: str) -> dict[str, Any]:
    """Session 8's `_published_audit`: built and validated."""
    from broker.insight.facts import insight_facts
    return audit_record("event_published", time=at, actor=hub_watch.ACTOR, event_id=event["event_id"],
                        event_type=event["event_type"], subject=event["subject"]["linkage"]["token"],
                        reason="raised for the MASH hub by the hub watch (protocol hub section)",
                        insight=insight_facts(event))


def _old_clock(rt: Any, clock: Any, outcome: str, at: str) -> dict[str, Any]:
    from broker.pipeline.hub.history import derived_id
    return audit_record("hub_clock", time=at, actor=hub_watch.ACTOR, subject=clock.token, event_id=clock.event_id,
                        event_type=clock.event_type, action=outcome, target=clock.kind,
                        record_id=derived_id("hub_clock", clock.clock_id, outcome),
                        reason=hub_watch.MET if outcome == "met" else hub_watch.BREACHED)


Events = Callable[[Any, list[ConsumerRecord[bytes, bytes]]], list[dict[str, Any]]]
Audit = Callable[..., dict[str, Any]]


def run(kit: Kit, side: str, events_of: Events, published: Audit, clock_audit: Audit) -> tuple[dict[str, Any], Parts]:
    """The stream through the watch's read, plan, write and audit steps; what it raised, wrote and audited."""
    where = kit.work / side
    where.mkdir()
    rt = Parts(kit.protocol, kit.keys, HistoryRegister(where / "history.sqlite"),
               IdentityRegister(where / "identities.sqlite"))
    agency = [(encode(protect_event(e, kit.keys)), [] if i % 7 == 3 else event_headers(e))
              for i, e in enumerate(kit.events)]
    # an erasure notice whose body no reader can open: a type the plan never reads, passed over either way
    agency.insert(5, (b"\x00not json", [("event_type", ERASED.encode())]))
    raised: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    back: list[tuple[bytes, list[tuple[str, bytes]]]] = []  # the previous batch's hub events, read back
    offset = 0
    for start in range(0, len(agency), BATCH):
        batch = []
        for value, headers in [*agency[start:start + BATCH], *back]:
            batch.append(_record(offset, value, headers))
            offset += 1
        events = events_of(rt, batch)
        plan = plan_hub(events, hub_watch._facts(rt, events), kit.protocol.hub, kit.calendar,  # type: ignore[arg-type]
                        kit.protocol.risk_scales)
        assert all(not validate_event(e) for e in plan.events)
        back = [(encode(protect_event(e, kit.keys)), event_headers(e)) for e in plan.events]
        rt.history.apply(plan)
        raised += plan.events
        audits += [published(rt, e, NOW) for e in plan.events] + [clock_audit(rt, c, "met", at) for c, at in
                                                                  plan.stopped]
    tables = {t: rt.history.db.query(f"SELECT * FROM {t} ORDER BY 1, 2") for t in HistoryRegister.TABLES}
    # an event_published record's id is a fresh UUID each time; a hub_clock record's is derived
    comparable = [r if r["kind"] == "hub_clock" else {k: v for k, v in r.items() if k != "record_id"} for r in audits]
    rt.history.close()
    rt.identities.close()
    return {"raised": raised, "history": tables, "audits": comparable}, rt


def test_the_watch_raises_writes_and_audits_the_same_and_opens_only_what_it_plans(kit: Kit) -> None:
    old, old_rt = run(kit, "old", _old_events, _old_published, _old_clock)
    new, new_rt = run(kit, "new", hub_watch._events, hub_watch._published_audit,  # type: ignore[arg-type]
                      hub_watch._clock_audit)
    assert old["raised"], "the mix raises hub events"
    assert {e["event_type"] for e in old["raised"]} <= HUB_TYPES
    assert old["history"]["history"] and old["history"]["enquiries"] and old["history"]["clocks"]
    assert new == old
    # the old watch opened every message; the new one only the mix's events (the hub's read back and the erasure
    # notice left unopened)
    mix, read_back = len(kit.events), len(old["raised"])  # counts only: a failure shows no event
    opened_old, opened_new = old_rt.revealed, new_rt.revealed
    assert opened_old == mix + read_back
    assert opened_new == mix


def test_every_audit_record_the_watch_builds_is_on_the_schema(kit: Kit) -> None:
    new, _ = run(kit, "schema", hub_watch._events, hub_watch._published_audit,  # type: ignore[arg-type]
                 hub_watch._clock_audit)
    kinds = {r["kind"] for r in new["audits"]}
    assert kinds == {"event_published"} or kinds == {"event_published", "hub_clock"}
    for record in new["audits"]:
        record = {"record_id": "00000000-0000-4000-8000-000000000000", **record}
        assert validate_record(record) == [], record["kind"]


def test_what_the_watch_passes_over_by_header_is_what_the_planner_drops(kit: Kit) -> None:
    """`reads` is the planner's own skip test: every type it refuses makes no plan, every type it keeps is planned."""
    from broker.pipeline.hub.plan import LINKED, HubFacts, reads
    rules = kit.protocol.hub
    agency = next(e for e in kit.events if e["event_type"] in rules.enquiry_types)
    for event_type in [*HUB_TYPES, ERASED, "mash.hub_note"]:
        assert not reads(event_type, rules), event_type
        plan = plan_hub([{**agency, "event_type": event_type}], HubFacts(), rules, kit.calendar)
        assert not plan.entries and not plan.events and not plan.folds and not plan.started, event_type
    for event_type in [LINKED, *rules.decision_types, *{e["event_type"] for e in kit.events}]:
        assert reads(event_type, rules), event_type
    assert plan_hub([agency], HubFacts(), rules, kit.calendar).entries
