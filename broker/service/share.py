"""Share workers: consumer-group members on the events topic that deliver to each subscriber's topic.

Each batch is read, planned, applied. Read: reveal the events (an outage raises, a bad message is poison), then the
registers' facts (delivered log, held subscribers, case state, consent, determinations and dates of birth, an erasure
notice's past recipients). Plan: `plan_share` (broker/pipeline/share_plan.py) decides who receives what, seals,
holds, refers and audits, with no I/O. Apply: the effects below, in this order.

Two modes, found once per process (the first worker tries a transactional producer, broker/kafka/clients.py):

- Exactly once (Apache Kafka): one Kafka transaction per batch holds the batch's deliveries, dead letters, audit
  records and its input offsets (`send_offsets_to_transaction`), so a worker killed or failing mid-batch leaves
  nothing a `read_committed` reader sees, and the batch is redone whole. Each worker's transactional id is
  `<share group>.<worker>.<instance>` (`transactional_id`): stable across restarts of one instance, so the restarted
  instance aborts its predecessor's open transaction on start and fences a zombie predecessor (its next send or
  commit fails with ProducerFenced), and unique per running instance, so two live workers never fence each other.
- At-least-once (Tansu, no transactions): offsets are committed only after every delivery of a batch is
  acknowledged, so a crash redelivers; the delivered log drops what a subscriber was already sent.

Registers are outside Kafka's transaction; their effects are ordered so that a crash at any point is harmless:
  1. case state (the plan's case writes, before producing): re-derived identically from the same events when a
     batch is redone;
  2. produce, and wait for every acknowledgement;
  3. held deliveries: before the commit, because a held row lost after a commit would lose the delivery; a row left
     by an aborted batch is written again by the redo, or released as already delivered;
  4. commit (the transaction, or the consumer's offsets on Tansu);
  5. the delivered log and recipients: after the commit in exactly-once mode, because a mark left by an aborted
     batch would make the redo skip a delivery nobody can read (a loss); a crash between 4 and 5 only leaves a
     mark missing: erasure notices still find the recipient in the audit store (the `delivered` audit record is in
     the committed transaction), and only a later resend of that same record could be delivered again, which HTTP
     pull, SSE and SubscriberClient.open_new drop by event id. On Tansu the marks come before the offset commit
     (step 3), as the duplicate filter of at-least-once delivery.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from broker.aio import blocking
from broker.audit.kafka_reads import with_positions
from broker.clock import now_iso
from broker.crypto import KeyUnavailable, KmsError
from broker.kafka.clients import fetch_wait_ms, group_consumer, start_transactional
from broker.logging import get_logger
from broker.pipeline.erasure import NOTICE_TYPE
from broker.pipeline.share_plan import (
    HELD_REASON,
    LINKED,
    SEAL_FAULTS,
    Item,
    Poison,
    ShareFacts,
    ShareParams,
    SharePlan,
    plan_share,
)
from broker.service.decisions import referral_for
from broker.service.erasure import past_recipients
from broker.service.facts import batch_facts
from broker.service.messages import decode, header
from broker.service.supervise import supervised

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer, ConsumerRecord

    from broker.config import Settings
    from broker.pipeline.register_facts import BatchFacts
    from broker.service.ports import SharePorts

log = get_logger("mash.share")
__all__ = ["HELD_REASON", "SEAL_FAULTS", "delivery_view", "next_offsets", "process_batch", "run_share_worker",
           "transaction_size", "transactional_id", "worker_instance"]


async def run_share_worker(rt: SharePorts, stop: asyncio.Event, name: str = "share-0") -> None:
    """Supervised: a crash is logged and the worker rejoins the group after a pause; uncommitted work is redone."""
    await supervised(stop, lambda: _share_loop(rt, stop, name), log=log, crashed="share_worker_crashed",
                     restarts=rt.metrics.worker_restarts, worker=name)


# A transaction per poll, cut only where its work would outlast TX_BUDGET_MS. A worker that keeps up polls what
# arrived since its last poll (a few messages at 500 events/s), so its transactions are small and a delivery is
# readable soon after its event. A worker behind a backlog polls up to POLL_MESSAGES, and there each transaction's
# fixed cost decides how fast the backlog drains: a commit is five requests to the cluster (AddPartitionsToTxn,
# AddOffsetsToTxn, TxnOffsetCommit, EndTxn, and a marker written to every partition the transaction touched), about
# 20 ms of round trips and as much of the broker's CPU as several messages. Measured (issue 24, RESULTS.md session 9):
# with a 25 ms budget the worker behind the bench's backlog committed every 8 messages (3.4 events) and spent most of
# its time waiting on commits. The budget still bounds how long the last message of a large poll waits for the
# transaction that makes it readable, and stays a twentieth of the cluster's transaction timeout.
TX_MAX_MESSAGES = 500
TX_BUDGET_MS = 500.0
# Never fewer than this in a transaction: the cost per message is measured in wall time, which on a starved host
# includes waiting for a core, and one-message transactions then turn throughput into one commit round trip per
# event (a soak at 100/s offered on a loaded 2-core host decided ~5 events/s). A batch this small costs a few ms.
TX_MIN_MESSAGES = 8
POLL_MESSAGES = TX_MAX_MESSAGES


def transactional_id(group: str, worker: str, instance: str) -> str:
    """`<share group>.<worker>.<instance>`: what the cluster fences by (see the module docstring)."""
    return f"{group}.{worker}.{instance}"


def transaction_size(seconds_per_message: float, budget_ms: float = TX_BUDGET_MS,
                     most: int = TX_MAX_MESSAGES, least: int = TX_MIN_MESSAGES) -> int:
    """Messages in one transaction: as many as fit the time budget at the measured cost, `least` to `most`."""
    if seconds_per_message <= 0:
        return most
    return max(least, min(most, int(budget_ms / 1000 / seconds_per_message)))


def cut(messages: Sequence[ConsumerRecord], size: int) -> list[list[ConsumerRecord]]:
    """The polled messages in order, as consecutive transactions of at most `size` messages."""
    return [list(messages[i:i + size]) for i in range(0, len(messages), max(1, size))]


def next_offsets(messages: Sequence[ConsumerRecord]) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit once these messages are done: per partition, one past the last one."""
    out: dict[TopicPartition, OffsetAndMetadata] = {}
    for m in messages:
        tp = TopicPartition(m.topic, m.partition)
        if tp not in out or out[tp].offset <= m.offset:
            out[tp] = OffsetAndMetadata(m.offset + 1, "")
    return out


_slot: tuple[str, IO[str]] | None = None  # (instance name, the held lock): one per process


def worker_instance(settings: Settings) -> str:
    """This process's instance name: MASH_WORKER_INSTANCE, else `<host>.<n>` with n the lowest slot no other live
    process on this host holds (an flock in the data directory, released by the kernel however the process dies,
    so a restarted process takes its predecessor's slot, and with it its transactional ids)."""
    global _slot
    if settings.worker_instance:
        return settings.worker_instance
    if _slot is None:
        slots = settings.data_dir / "worker-slots"
        slots.mkdir(parents=True, exist_ok=True, mode=0o700)
        host = socket.gethostname().split(".")[0] or "host"
        n = 0
        while True:
            lock = open(slots / f"slot-{n}.lock", "a")  # noqa: SIM115 (held for the process's life)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                n += 1
                continue
            _slot = (f"{host}.{n}", lock)
            break
    return _slot[0]


@dataclass
class Pending:
    """What a batch leaves for the delivered log: written after the commit in exactly-once mode (module docstring)."""
    marks: list[tuple[str, str, str]] = field(default_factory=list)  # (subscriber, event_id, decision_id)
    recipients: set[tuple[str, str]] = field(default_factory=set)  # (token, subscriber)
    acked_at: str | None = None  # when Kafka acknowledged the deliveries: the delivered log's delivery time

    def record(self, rt: SharePorts) -> None:
        if self.marks:
            rt.delivered.mark(self.marks, self.recipients, at=self.acked_at)


async def _transactional(rt: SharePorts, group: str, name: str) -> AIOKafkaProducer | None:
    """This worker's transactional producer, or None in at-least-once mode; the mode is found once per process."""
    if rt.kafka_transactions is False:
        return None
    tid = transactional_id(group, name, worker_instance(rt.settings))
    out, why = await start_transactional(rt.bootstrap, tid, **rt.kafka_security)
    if rt.kafka_transactions is None:
        rt.kafka_transactions = out is not None
        if out is not None:
            log.info("delivery_mode", mode="exactly-once", detail="Kafka transactions: one per batch, offsets "
                     "committed with the deliveries; readers read_committed")
        else:
            log.warning("delivery_mode", mode="at-least-once", reason=why, detail="this Kafka grants no "
                        "transactional producer: offsets committed after the deliveries, duplicates dropped by the "
                        "delivered log")
    elif out is None:  # granted before, refused now (an ACL removed?): never quietly weaker
        raise RuntimeError(f"transactional producer refused ({why}) after this process had one")
    return out


class FinishBatchBeforeRevoke(ConsumerRebalanceListener):
    """A rebalance waits for the batch in hand (aiokafka awaits this listener): offsets committed without the group's
    generation (aiokafka's TxnOffsetCommit) are only safe while this worker still owns the partitions, so the new
    owner starts where this worker's last transaction ended instead of redoing it beside a still-running batch."""

    def __init__(self, busy: asyncio.Lock) -> None:
        self.busy = busy

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.busy:
            pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


async def _share_loop(rt: SharePorts, stop: asyncio.Event, name: str) -> None:
    group = rt.settings.group("share")
    out = await _transactional(rt, group, name)  # before joining: a predecessor's open transaction is aborted first
    # a cluster granting transactions is an Apache-like one, which answers fetches on arrival: a long wait is free
    consumer = group_consumer(rt.bootstrap, group, fetch_wait_ms=fetch_wait_ms(out is not None), **rt.kafka_security)
    busy = asyncio.Lock()
    consumer.subscribe([rt.settings.topics.events], listener=FinishBatchBeforeRevoke(busy))
    try:
        await consumer.start()
        log.info("share_worker_started", worker=name, mode="exactly-once" if out else "at-least-once")
        per_message = 0.0  # measured seconds of work per message (moving average): sizes the transactions
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=POLL_MESSAGES)
            messages = [m for msgs in batch.values() for m in msgs]
            if not messages:
                continue
            if out is None:
                async with busy:
                    with rt.metrics.time("share_batch"):
                        pending = await process_batch(rt, messages)
                        await blocking(pending.record, rt)
                    await consumer.commit(next_offsets(messages))
            else:
                for part in cut(messages, transaction_size(per_message)):
                    async with busy:
                        owned = consumer.assignment()  # a rebalance between two parts took some partitions away
                        part = [m for m in part if TopicPartition(m.topic, m.partition) in owned]
                        if not part:
                            continue
                        with rt.metrics.time("share_batch"):
                            took = await _transaction(rt, out, group, part)
                    per_message = took if per_message == 0 else 0.8 * per_message + 0.2 * took
            owned = consumer.assignment()
            for tp in (tp for tp in batch if tp in owned):  # lag from the fetch's high-water mark (see delivery.py)
                rt.metrics.consumer_lag.labels(group, tp.topic, str(tp.partition)).set(
                    max(0, (consumer.highwater(tp) or 0) - await consumer.position(tp)))
    finally:
        try:
            await consumer.stop()
        finally:
            if out is not None:  # an open transaction is aborted by the successor, or by the cluster's timeout
                await out.stop()
            log.info("share_worker_stopped", worker=name)


async def _transaction(rt: SharePorts, out: AIOKafkaProducer, group: str, part: list[ConsumerRecord]) -> float:
    """One batch in one transaction: deliveries, dead letters, audit records and the input offsets, committed or
    aborted together; then the delivered log (module docstring). Returns the seconds of work per message."""
    async with out.transaction():
        started = time.perf_counter()
        pending = await process_batch(rt, part, out)
        # sized on the work alone: counting the commit's fixed cost in would shrink the batches behind a backlog
        # until commits took most of the time
        took = (time.perf_counter() - started) / len(part)
        await out.send_offsets_to_transaction(next_offsets(part), group)
    await blocking(pending.record, rt)
    return took


async def process_batch(rt: SharePorts, messages: list[ConsumerRecord], producer: AIOKafkaProducer | None = None,
                        ) -> Pending:
    """Read, plan, apply one batch (through `producer`: the worker's transactional one, else the shared one);
    returns the delivered-log marks for the caller to write at the right moment (module docstring)."""
    out = producer or rt.producer
    now = now_iso()
    items = await blocking(_reveal, rt, messages)  # the key store: a data key unwrapped by the KMS
    facts = await _read_facts(rt, [i for i in items if isinstance(i, Item)])
    plan = plan_share(items, facts, rt, ShareParams(rt.protocol, rt.mask_key, now, rt.settings.topics.deliver,
                                                     rt.settings.topics.deadletter))
    return await _apply(rt, plan, out, now, transactional=producer is not None)


def _reveal(rt: SharePorts, messages: list[ConsumerRecord]) -> list[Item | Poison]:
    """The batch's events in the clear, in order; an erased child's are left out (never shared again), a message
    that cannot be decoded or revealed is poison. A key outage raises: nothing is committed, the batch is retried."""
    items: list[Item | Poison] = []
    for msg in messages:
        try:
            revealed = rt.reveal(decode(msg.value))
            if revealed.shredded:  # an erased child's data (broker/pipeline/erasure.py)
                continue
            items.append(Item(revealed.event, msg.partition, msg.offset))
        except (KeyUnavailable, KmsError):
            raise  # an outage, not a bad message
        except Exception as exc:  # poison: never stall the stream on one bad message
            items.append(Poison(msg.topic, msg.partition, msg.offset, msg.value or b"",
                                f"undecodable event ({type(exc).__name__})"))
    return items


async def _read_facts(rt: SharePorts, items: list[Item]) -> ShareFacts:
    """What the registers say of the batch: one delivered-log query, the held subscribers, each child's case state
    and consent, the register facts (broker/service/facts.py), and each erasure notice's past recipients."""
    tokens = list(dict.fromkeys(i.token for i in items))
    folded = [i.event["payload"]["superseded_token"] for i in items if i.event["event_type"] == LINKED]
    notices = [i.event for i in items if i.event["event_type"] == NOTICE_TYPE]
    # the register facts of the batch's children (s47(9) requests, adult-at-risk determinations, the identity
    # register's date of birth): read once per batch, one query per register
    register = await batch_facts(rt, tokens)
    return await blocking(_registers_say, rt, items, tokens, folded, notices, register)


def _registers_say(rt: SharePorts, items: list[Item], tokens: list[str], folded: list[str],
                   notices: list[dict[str, Any]], register: BatchFacts) -> ShareFacts:
    """The rest of `_read_facts`, read in one blocking call (broker/aio.py)."""
    return ShareFacts(
        sent=frozenset(rt.delivered.sent(rt.protocol.subscribers, (i.event["event_id"] for i in items))),
        holding=frozenset(rt.held.counts()),
        cases=rt.cases.open_states([*tokens, *folded]),  # one query each per batch, not one per token
        consent=rt.consent_for_many(tokens),
        register=register,
        notice_recipients={e["event_id"]: frozenset(past_recipients(rt, e["payload"]["erased_tokens"]))
                           for e in notices})


async def _apply(rt: SharePorts, plan: SharePlan, out: AIOKafkaProducer, now: str, *, transactional: bool) -> Pending:
    """The plan's effects in the module docstring's order: case state, produce and wait, (at-least-once: the
    delivered log), held deliveries and referrals, then the audit, inside the batch's transaction when there is one.
    """
    if plan.case_writes:
        await blocking(_write_cases, rt, plan)
    _observe(rt, plan)
    sends = [await out.send(m.topic, m.value, key=m.key) for m in plan.deadletters]
    sends += [await out.send(d.message.topic, d.message.value, key=d.message.key, headers=list(d.message.headers))
              for d in plan.deliveries]
    acked = await asyncio.gather(*sends)
    acked_at = now_iso()
    # each delivery's place on its topic, into its `delivered` record: what a Kafka group's committed offset covers
    places = {(d.subscriber, d.decision_id): (m.topic, m.partition, m.offset)
              for d, m in zip(plan.deliveries, acked[len(plan.deadletters):], strict=True)}
    pending = Pending(plan.marks, plan.recipients, acked_at)
    if not transactional:  # at-least-once: the duplicate filter before the offsets are committed
        await blocking(pending.record, rt)
        pending = Pending()
    if plan.held or plan.referrals:
        await blocking(_hold_and_refer, rt, plan, now)
    await rt.emit_audit(with_positions(plan.audits, places), out)
    return pending


def _write_cases(rt: SharePorts, plan: SharePlan) -> None:
    for write in plan.case_writes:
        rt.cases.set(write.token, write.open, write.event_id)


def _hold_and_refer(rt: SharePorts, plan: SharePlan, now: str) -> None:
    """Held deliveries and referrals: before the batch's offsets are committed."""
    if plan.held:
        rt.held.hold(list(plan.held), now)
    if plan.referrals:  # likewise; a redelivered batch adds nothing (register docstring)
        rt.referrals.refer([referral_for(rt.protocol, r.decision, r.event, r.token, r.partition, r.offset, now)
                            for r in plan.referrals])


def _observe(rt: SharePorts, plan: SharePlan) -> None:
    """Metrics and log lines of a plan (value-free: subscriber names, positions, exception types)."""
    for poison in plan.poison:
        rt.metrics.poison.inc()
        log.warning("poison_message", position=poison.position, reason=poison.why)
    # counted per batch: a labels() lookup per decision was 1% of a share worker's CPU (five decisions an event)
    for (subscriber, outcome), n in Counter(plan.decided).items():
        rt.metrics.decisions.labels(subscriber, outcome).inc(n)
    for subscriber, n in Counter(plan.duplicates).items():
        rt.metrics.duplicates.labels(subscriber).inc(n)
    for subscriber, why in plan.faults.items():
        rt.subscriber_faults[subscriber] = why
        log.warning("deliveries_held", subscriber=subscriber, detail=why)
    for failure in plan.failures:
        log.error("delivery_failed", subscriber=failure.subscriber, event_id=failure.event_id, reason=failure.reason)


def delivery_view(msg: ConsumerRecord) -> dict[str, Any]:
    """How a delivery appears over HTTP: the sealed bytes (base64) and the operational headers."""
    return {"offset": msg.offset, "partition": msg.partition,
            "event_id": header(msg.headers, "event_id"), "decision_id": header(msg.headers, "decision_id"),
            "protocol_version": header(msg.headers, "protocol_version"),
            "sealed": base64.b64encode(msg.value or b"").decode()}
