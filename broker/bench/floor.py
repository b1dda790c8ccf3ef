"""The pipeline's floor: what its own work costs per event with Kafka, HTTP and threads taken away (issue 24).

Over the bench's mix, in one process and in the order the processes do it:

- intake: each request (`batch` records) read, resolved against a real identity register and planned with a real
  key store (adapt, identify, validate, protect), the links written;
- share: the protected events as a share worker takes them off the topic: decoded, revealed, planned (decide,
  release, seal, audit records) with the case state carried over;
- hub: the hub watch's view of each event revealed, the history register read, the hub planned, its own events
  protected, the history written;
- audit: every audit record the three made appended to a real SQLite audit store, as the indexer does (validate,
  chain, commit; one append for each request's intake records and one for its share records; the hub's few
  records, one per event it raises, are left out).

CPU time (`time.process_time`) per event of each part, warm: a first pass over other fictitious children warms the
code, then the timed pass. What a process spends per event in `mash-broker bench` beyond its part here is transport:
HTTP, the Kafka client, JSON over the wire, thread hand-offs and waiting. The sum is a lower bound for the whole
pipeline on this design: no change of transport can make an event cheaper than its own work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson

from broker.audit.store import AuditStore, open_audit_store
from broker.bench.intake_mix import Body, IntakeMix, plan_with_store, read_bodies
from broker.bench.records import usable_formats
from broker.bench.share_mix import MASK_KEY, NOW, MixKeys
from broker.bench.stages import install_protocol
from broker.config import Settings
from broker.crypto import KeyStore, open_key_provider, protect_event, reveal_event
from broker.pipeline.hub.plan import history_reads, plan_hub
from broker.pipeline.hub.reveal import hub_view
from broker.pipeline.intake_plan import IntakeParams
from broker.pipeline.share_plan import Item, ShareFacts, ShareParams, plan_share
from broker.policy import Protocol, load_protocol
from broker.service.hub_watch import load_calendar
from broker.stores.history import HistoryRegister
from broker.stores.identities import IdentityRegister

PARTS = ("intake", "share", "hub", "audit")
EVENTS_TOPIC = "floor.events"
WARM_OFFSET = 20_000_000  # the warm-up's fictitious children: numbers no timed record uses


@dataclass
class Floor:
    """The real stores and keys one run plans against, under its own directory."""

    protocol: Protocol
    keys: KeyStore
    identities: IdentityRegister
    history: HistoryRegister
    audit: AuditStore
    calendar: Any
    seals: MixKeys
    params: IntakeParams = field(default_factory=lambda: IntakeParams(EVENTS_TOPIC, "floor.deadletter"))
    cases: dict[str, bool | None] = field(default_factory=dict)

    @cached_property
    def share_params(self) -> ShareParams:
        return ShareParams(self.protocol, MASK_KEY, NOW, lambda s: f"floor.deliver.{s}", "floor.deadletter")


@contextmanager
def floor_kit(workdir: Path) -> Iterator[Floor]:
    protocol_file, _ = install_protocol(workdir)
    data = workdir / "data"
    keys = open_key_provider(data, create=True)
    identities = IdentityRegister(data / IdentityRegister.FILE)
    history = HistoryRegister(data / HistoryRegister.FILE)
    audit = open_audit_store(data, create_key=True)
    audit.cache_for_appends()  # the floor's audit part is the indexer's work
    protocol = load_protocol(protocol_file)
    try:
        yield Floor(protocol, keys, identities, history, audit, load_calendar(Settings().calendar_file),
                    MixKeys(protocol))
    finally:
        audit.close()
        history.db.close()
        identities.db.close()
        keys.close()


def _bodies(records: int, batch: int, offset: int = 0) -> list[Body]:
    formats, _, _ = usable_formats()
    return read_bodies(formats, -(-records // batch), batch, offset)


def _run(kit: Floor, bodies: list[Body], spent: dict[str, float]) -> int:
    """Every request through every part, one request at a time; returns the events. `spent` collects CPU seconds
    per part. Intake is the mix's own loop (read the register, resolve, plan, write the links)."""
    clock = time.process_time
    plans = IntakeMix(kit.keys, kit.identities, bodies, kit.params).plan_all(plan_with_store)
    events = 0
    while True:
        t0 = clock()
        plan = next(plans, None)
        if plan is None:
            return events
        published = [orjson.loads(m.value) for m in plan.messages if m.topic == EVENTS_TOPIC]
        t1 = clock()
        items = []
        for i, protected in enumerate(published):
            revealed = reveal_event(protected, kit.keys)
            if not revealed.shredded:
                items.append(Item(revealed.event, 0, events + i))
        share = plan_share(items, ShareFacts(cases=dict(kit.cases)), kit.seals, kit.share_params)
        kit.cases.update((w.token, w.open) for w in share.case_writes)
        t2 = clock()
        views = [reveal_event(hub_view(p), kit.keys).event for p in published]
        tokens = list(dict.fromkeys(e["subject"]["linkage"]["token"] for e in views))
        facts = kit.history.facts(tokens, history_reads(views, kit.protocol.hub))
        hub = plan_hub(views, facts, kit.protocol.hub, kit.calendar, kit.protocol.risk_scales)
        for event in hub.events:
            orjson.dumps(protect_event(event, kit.keys))
        kit.history.apply(hub)
        t3 = clock()
        for records in (plan.audits, share.audits):
            if records:
                kit.audit.append(list(records))
        t4 = clock()
        for part, took in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[part] += took
        events += len(published)


def measure_floor(kit: Floor, *, records: int, batch: int) -> dict[str, Any]:
    """CPU microseconds per event of each part over `records` native records in requests of `batch`, warm."""
    warm = dict.fromkeys(PARTS, 0.0)
    _run(kit, _bodies(min(records, 200), batch, WARM_OFFSET), warm)
    spent = dict.fromkeys(PARTS, 0.0)
    head_before = kit.audit.head()[0]
    events = _run(kit, _bodies(records, batch), spent)
    audit_records = kit.audit.head()[0] - head_before
    us = {part: round(1e6 * spent[part] / max(events, 1), 1) for part in PARTS}
    total = sum(spent.values()) / max(events, 1)
    return {"events": events, "records": records, "batch": batch, "cpu_us_per_event": us,
            "cpu_us_per_event_total": round(1e6 * total, 1), "audit_records_per_event": round(
                audit_records / max(events, 1), 2),
            "events_per_s_per_core": round(1 / total) if total else None,
            "chain_verifies": kit.audit.verify().ok}
