"""The Kafka epoch: does Kafka still hold what the registers remember?

The delivered log, the acknowledged cursors, first-served positions and held deliveries all point at Kafka: at what
was sent to a delivery topic, at offsets on it, at offsets on the events topic. The embedded broker keeps its topics
in memory, so a restart (kill -9 or a clean stop) empties Kafka while those registers remember; a resend would then be
dropped as already sent and a resumed cursor would skip the new deliveries at low offsets.

So every start compares a random epoch id, kept in the cursor register, with the markers on `<prefix>.epoch` (a
compacted topic the broker writes the id to, keyed by the id). The planning is a pure function (`plan_epoch`); the
shell around it reads and writes Kafka and the registers, clears what points at lost positions, and says so once, in
plain words, in the log, in the audit and in /readyz. Consent, case state, identities and erasures are facts, not
positions, and are kept.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from broker.audit import audit_record
from broker.clock import now_iso
from broker.kafka.clients import reader
from broker.kafka.topology import min_insync_replicas
from broker.logging import get_logger

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from broker.config import Settings
    from broker.service.audit_emitter import AuditEmitter
    from broker.stores.cursors import CursorStore
    from broker.stores.delivered import DeliveredLog
    from broker.stores.held import HeldDeliveries
    from broker.stores.served import FirstServed

log = get_logger("mash.epoch")
EPOCH_SUFFIX = ".epoch"
EMPTY_POLLS = 3  # a marker read ends after this many empty polls (a slow first fetch is not an empty topic)
POLL_MS = 400


class Verdict(Enum):
    FRESH = "fresh"  # nothing remembered: record a new epoch
    INTACT = "intact"  # Kafka holds the marker of the epoch the registers remember
    ADOPT = "adopt"  # registers from before epochs existed, beside topics that were already there: start one
    LOST = "lost"  # Kafka lost its topics: clear what points at them, start a new epoch


def plan_epoch(remembered: str | None, markers: frozenset[str], *, events_topic_created: bool,
               positions_remembered: bool) -> Verdict:
    """What this start must do. A remembered epoch missing from Kafka's markers means Kafka is not the one the
    registers were written against (topics lost, or another cluster); with no epoch remembered (a data directory from
    before epochs), an events topic this start had to create beside registers that remember positions means the
    same. Registers that remember no position have nothing to reconcile, whatever Kafka lost."""
    if remembered is not None and remembered in markers:
        return Verdict.INTACT
    if not positions_remembered:
        return Verdict.FRESH
    if remembered is not None or events_topic_created:
        return Verdict.LOST
    return Verdict.ADOPT


def new_epoch() -> str:
    return "ke_" + secrets.token_hex(12)


def epoch_topic(prefix: str) -> str:
    return prefix + EPOCH_SUFFIX


async def ensure_epoch_topic(bootstrap: str, topic: str, replication: int, **security: Any) -> bool:
    """One compacted partition, keyed by epoch id: markers never expire (a time-based retention would, in time, make
    an intact cluster look like one that lost its topics). True if this call created it (so it holds no marker)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mash-broker-admin", **security)
    await admin.start()
    try:
        if topic in set(await admin.list_topics()):
            return False
        try:
            await admin.create_topics([NewTopic(topic, 1, replication, topic_configs={
                "cleanup.policy": "compact", "min.insync.replicas": str(min_insync_replicas(replication))})])
        except TopicAlreadyExistsError:  # another process won the race, and may have written its marker
            return False
        return True
    finally:
        await admin.close()


async def read_markers(bootstrap: str, topic: str, **security: Any) -> frozenset[str]:
    """Every epoch id on the marker topic, read to its end (the end offset when the broker reports one, and
    several empty polls in a row either way: the embedded broker's end offsets cannot be trusted)."""
    consumer = reader(bootstrap, **security)
    await consumer.start()
    found: set[str] = set()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp])).get(tp, 0)
        empty = 0
        while end and empty < EMPTY_POLLS:  # end 0: nothing was ever written (either broker says so truly)
            batch = await consumer.getmany(tp, timeout_ms=POLL_MS, max_records=1000)
            records = batch.get(tp, [])
            empty = 0 if records else empty + 1
            found.update(r.value.decode("ascii", "replace") for r in records if r.value)
            if await consumer.position(tp) >= end:  # a marker is sent alone: one record, one batch
                break
    finally:
        await consumer.stop()
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class EpochState:
    epoch: str
    verdict: Verdict
    lost_at: str | None  # this start found Kafka had lost its topics at this time (None: it had not)
    cleared: dict[str, int]  # rows cleared per register

    def readiness(self) -> str:
        """The /readyz line: "ok", or the topic loss this start found and reconciled."""
        if self.lost_at is None:
            return "ok"
        return (f"Kafka had lost its topics when this process started ({self.lost_at}); the delivered log, "
                "acknowledged cursors, first-served positions and held deliveries were cleared, so records sent "
                "before then must be resent by their agencies and subscribers resume without `after`")


@dataclass(frozen=True, kw_only=True)
class EpochParts:
    """What the reconciliation uses, at start before the Runtime is built (broker/service/root.py)."""
    settings: Settings
    bootstrap: str
    kafka_security: dict[str, Any]
    embedded: bool  # the embedded Tansu: it keeps its topics in memory (said in the warning)
    producer: AIOKafkaProducer
    audit: AuditEmitter
    cursors: CursorStore
    delivered: DeliveredLog
    first_served: FirstServed
    held: HeldDeliveries


def _positions_registers(rt: EpochParts) -> dict[str, Any]:
    return {"delivered log": rt.delivered, "acknowledged cursors": rt.cursors, "first served": rt.first_served,
            "held deliveries": rt.held}


def _count(register: Any) -> int:
    return int(register.db.count(type(register).TABLE))


def _clear(register: Any) -> int:
    return int(register.db.clear(type(register).TABLE))


async def reconcile_kafka_epoch(rt: EpochParts, created_topics: list[str]) -> EpochState:
    """At start, after the topics are ensured and the registers opened: compare, reconcile, record."""
    s = rt.settings
    topic = epoch_topic(s.topic_prefix)
    created = await ensure_epoch_topic(rt.bootstrap, topic, s.kafka_replication_factor, **rt.kafka_security)
    remembered = rt.cursors.epoch()  # read before the markers: a marker is always written before its register row
    markers = frozenset() if created else await read_markers(rt.bootstrap, topic, **rt.kafka_security)
    registers = _positions_registers(rt)
    verdict = plan_epoch(remembered.epoch if remembered else None, markers,
                         events_topic_created=s.topics.events in created_topics,
                         positions_remembered=any(_count(r) for r in registers.values()))
    now = now_iso()
    if verdict is Verdict.INTACT:
        assert remembered is not None
        return EpochState(remembered.epoch, verdict, None, {})
    epoch = new_epoch()
    cleared: dict[str, int] = {}
    if verdict is Verdict.LOST:
        # Cleared before the new epoch is recorded: a start that dies half-way finds the old epoch and clears again.
        cleared = {name: _clear(r) for name, r in registers.items()}
    await rt.producer.send_and_wait(topic, epoch.encode(), key=epoch.encode())
    if remembered is None:
        in_force = rt.cursors.adopt_epoch(epoch, now).epoch
    elif rt.cursors.replace_epoch(remembered.epoch, epoch, now):
        in_force = epoch
    else:  # another process sharing these registers reconciled first: its epoch is the one in force
        in_force = (rt.cursors.epoch() or remembered).epoch
    if verdict is not Verdict.LOST:
        log.info("kafka_epoch_recorded", verdict=verdict.value)
        return EpochState(in_force, verdict, None, {})
    total = sum(cleared.values())
    why = "the embedded broker keeps them in memory" if rt.embedded else \
        "or this is another cluster: its epoch marker is missing"
    log.warning("kafka_topics_lost", detail=(
        f"Kafka has lost its topics since the registers were last written ({why}): cleared "
        f"{', '.join(f'{name} ({n} rows)' for name, n in cleared.items())}; records acknowledged before this start "
        "must be resent by their agencies, and subscribers resume from the start of their (new) delivery topics"))
    await rt.audit.emit([audit_record(
        "admin_action", time=now, actor="runtime", action="kafka.topics_lost", count=total,
        reason="Kafka lost its topics: delivered log, acknowledged cursors, first-served positions and held "
               "deliveries cleared so that resends are delivered again")])
    return EpochState(in_force, verdict, now, cleared)


async def markers_on(bootstrap: str, prefix: str, **security: Any) -> frozenset[str] | None:
    """For doctor: the markers on an existing cluster (None: no marker topic, or it could not be read)."""
    try:
        return await read_markers(bootstrap, epoch_topic(prefix), **security)
    except KafkaError:
        return None
