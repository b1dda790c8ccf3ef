"""Share workers: consumer-group members on the events topic that deliver to each subscriber's topic.

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
  1. case state (during the decisions): re-derived identically from the same events when a batch is redone;
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
import hashlib
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from adapters.kit.interface import Rejection
from broker.clock import now_iso
from broker.crypto import CryptoError, KeyUnavailable, KmsError
from broker.crypto.errors import SealError
from broker.kafka.clients import group_consumer, start_transactional
from broker.logging import get_logger
from broker.pipeline.cases import case_transition
from broker.pipeline.deadletter import deadletter_record
from broker.pipeline.erasure import NOTICE_TYPE
from broker.pipeline.share import share
from broker.policy import SubscriberKeyError
from broker.service.decisions import referral_for
from broker.service.erasure import deliver_notice
from broker.service.messages import decode, encode, header
from broker.stores.held import Held

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer, ConsumerRecord

    from broker.config import Settings
    from broker.service.runtime import Runtime

log = get_logger("mash.share")
# A subscriber that cannot be sealed to: its deliveries are held (broker/service/held.py), the others go on.
SEAL_FAULTS = (SubscriberKeyError, SealError)
HELD_REASON = "subscriber public key unusable: delivery held until it loads"


async def run_share_worker(rt: Runtime, stop: asyncio.Event, name: str = "share-0") -> None:
    """Supervised: a crash is logged and the worker rejoins the group after a pause; uncommitted work is redone."""
    while not stop.is_set():
        try:
            await _share_loop(rt, stop, name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("share_worker_crashed", worker=name)
            rt.metrics.worker_restarts.inc()
            await asyncio.sleep(1.0)


# A transaction per batch, and no batch open longer than the latency goal allows (issue 24: p99 under 50 ms at 500
# events/s): a polled batch is cut into transactions of at most TX_MAX_MESSAGES messages, sized from the measured
# cost per message so that one transaction's work takes about TX_BUDGET_MS (its commit, a few ms on a local cluster,
# comes on top). At 500/s a worker that keeps up polls a few messages at a time anyway; the bound matters when it
# catches up on a backlog.
TX_MAX_MESSAGES = 64
TX_BUDGET_MS = 25.0
POLL_MESSAGES = 500


def transactional_id(group: str, worker: str, instance: str) -> str:
    """`<share group>.<worker>.<instance>`: what the cluster fences by (see the module docstring)."""
    return f"{group}.{worker}.{instance}"


def transaction_size(seconds_per_message: float, budget_ms: float = TX_BUDGET_MS,
                     most: int = TX_MAX_MESSAGES) -> int:
    """Messages in one transaction: as many as fit the time budget at the measured cost, 1 to `most`."""
    if seconds_per_message <= 0:
        return most
    return max(1, min(most, int(budget_ms / 1000 / seconds_per_message)))


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

    def record(self, rt: Runtime) -> None:
        if self.marks:
            rt.delivered.mark(self.marks, self.recipients)


async def _transactional(rt: Runtime, group: str, name: str) -> AIOKafkaProducer | None:
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


async def _share_loop(rt: Runtime, stop: asyncio.Event, name: str) -> None:
    group = rt.settings.group("share")
    out = await _transactional(rt, group, name)  # before joining: a predecessor's open transaction is aborted first
    consumer = group_consumer(rt.bootstrap, group, **rt.kafka_security)
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
                        (await process_batch(rt, messages)).record(rt)
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


async def _transaction(rt: Runtime, out: AIOKafkaProducer, group: str, part: list[ConsumerRecord]) -> float:
    """One batch in one transaction: deliveries, dead letters, audit records and the input offsets, committed or
    aborted together; then the delivered log (module docstring). Returns the seconds of work per message."""
    async with out.transaction():
        started = time.perf_counter()
        pending = await process_batch(rt, part, out)
        # sized on the work alone: counting the commit's fixed cost in would shrink the batches behind a backlog
        # until commits took most of the time
        took = (time.perf_counter() - started) / len(part)
        await out.send_offsets_to_transaction(next_offsets(part), group)
    pending.record(rt)
    return took


async def _poison(rt: Runtime, msg: ConsumerRecord, why: str, out: AIOKafkaProducer) -> Any:
    """An undecodable message: dead-letter it (sealed) and let the stream continue."""
    rt.metrics.poison.inc()
    digest = hashlib.sha256(msg.value or b"").hexdigest()
    position = f"{msg.topic}/{msg.partition}/{msg.offset}"
    try:
        sealed = rt.seal_deadletter_input(msg.value or b"", digest)
    except CryptoError:
        sealed = ""  # the original stays on the events topic at `position`
    record = deadletter_record(Rejection(position, "", "", why), agency="unknown", system=None,
                               content_type="application/json", received_at=now_iso(), content_sha256=digest,
                               sealed_input=sealed)
    log.warning("poison_message", position=position, reason=why)
    return await out.send(rt.settings.topics.deadletter, encode(record), key=record["deadletter_id"].encode())


async def process_batch(rt: Runtime, messages: list[ConsumerRecord], producer: AIOKafkaProducer | None = None,
                        ) -> Pending:
    """Decide, seal and produce one batch (through `producer`: the worker's transactional one, else the shared one);
    returns the delivered-log marks for the caller to write at the right moment (module docstring)."""
    out = producer or rt.producer
    assert out is not None and rt.delivered is not None and rt.protocol is not None
    sends, marks, audits = [], [], []
    now = now_iso()
    events = []
    for msg in messages:
        try:
            revealed = rt.reveal(decode(msg.value))
            if revealed.shredded:  # an erased child's data (broker/pipeline/erasure.py): never shared again
                continue
            event = revealed.event
            events.append((event, event["subject"]["linkage"]["token"], msg))
        except (KeyUnavailable, KmsError):
            raise  # an outage, not a bad message: nothing is committed, the batch is retried after a pause
        except Exception as exc:  # poison: never stall the stream on one bad message
            sends.append(await _poison(rt, msg, f"undecodable event ({type(exc).__name__})", out))
    # one delivered-log query for the batch; what this batch sends joins the set, so an event that appears twice in
    # one batch is still sent once
    sent = rt.delivered.sent(rt.protocol.subscribers, (event["event_id"] for event, _, _ in events))
    # A subscriber with held deliveries gets its new ones held behind them, so its events stay in order.
    holding, held = set(rt.held.counts()) if rt.held is not None else set(), []
    referrals = []  # shares the law routes to a person: recorded before the offsets are committed (decisions.py)
    for event, token, msg in events:
        if event["event_type"] == NOTICE_TYPE:  # to every past recipient of the child, whatever the rules
            notice_sends, notice_marks, notice_audits = await deliver_notice(rt, event, token, sent, now, out)
            sends, marks, audits = sends + notice_sends, marks + notice_marks, audits + notice_audits
            continue
        if event["event_type"] == "person.linked":  # before this child's next decision: its case state carries over
            rt.cases.fold(event["payload"]["superseded_token"], into=token, event_id=event["event_id"])
        transition = case_transition(event)
        case_open = rt.cases.is_open(token)
        if transition is not None and case_open is not transition:
            # Written only when the case opens or closes: most social care events re-assert an open case, and a
            # write per event (a synced SQLite commit) was the largest single cost in the worker's profile.
            rt.cases.set(token, transition, event["event_id"])
            case_open = transition
        for decision, released in share(rt.protocol, event, consent=rt.consent_for(token),
                                        case_open=case_open, mask_key=rt.mask_key):
            rt.metrics.decisions.labels(decision.subscriber, decision.outcome).inc()
            audits.append(rt.audit_record("decision", time=now, actor="share", subject=token,
                                          record_id=decision.decision_id, **decision.to_record()))
            if released is None:
                # referred unless already sent (a redelivery decided again after an objection came in)
                if decision.human_decision is not None and (decision.subscriber, decision.event_id) not in sent:
                    referrals.append(referral_for(rt.protocol, decision, event, token, msg.partition, msg.offset,
                                                  now))
                continue
            key = (decision.subscriber, decision.event_id)
            if key in sent:
                rt.metrics.duplicates.labels(decision.subscriber).inc()
                continue
            sent.add(key)
            try:
                if decision.subscriber in holding:
                    raise SubscriberKeyError("earlier deliveries are held")
                sealed = rt.seal_for(decision.subscriber, released)
            except SEAL_FAULTS as exc:  # this subscriber's fault: held, never lost, and the batch goes on
                if decision.subscriber not in holding:
                    holding.add(decision.subscriber)
                    rt.subscriber_faults[decision.subscriber] = str(exc)
                    log.warning("deliveries_held", subscriber=decision.subscriber, detail=str(exc))
                held.append(Held(decision.subscriber, decision.event_id, msg.partition, msg.offset))
                audits.append(rt.audit_record("admin_action", time=now, actor="share", action="delivery.held",
                                              subject=token, subscriber=decision.subscriber,
                                              event_id=decision.event_id, decision_id=decision.decision_id,
                                              reason=HELD_REASON))
                continue
            headers = [("event_id", decision.event_id.encode()), ("decision_id", decision.decision_id.encode()),
                       ("protocol_version", str(rt.protocol.version).encode())]
            sends.append(await out.send(rt.settings.topics.deliver(decision.subscriber), sealed,
                                        key=token.encode(), headers=headers))
            marks.append((decision.subscriber, decision.event_id, decision.decision_id))
            audits.append(rt.audit_record("delivered", time=now, actor="share", subject=token,
                                          subscriber=decision.subscriber, event_id=decision.event_id,
                                          decision_id=decision.decision_id))
    await asyncio.gather(*sends)
    about = {event["event_id"]: token for event, token, *_ in events}  # who received what: for erasure notices
    pending = Pending(marks, {(about[event_id], subscriber) for subscriber, event_id, _ in marks})
    if producer is None:  # at-least-once: the duplicate filter before the offsets are committed
        pending.record(rt)
        pending = Pending()
    if held:  # before the batch's offsets are committed
        rt.held.hold(held, now)
    if referrals and rt.referrals is not None:  # likewise; a redelivered batch adds nothing (register docstring)
        rt.referrals.refer(referrals)
    await rt.emit_audit(audits, out)
    return pending


def delivery_view(msg: ConsumerRecord) -> dict[str, Any]:
    """How a delivery appears over HTTP: the sealed bytes (base64) and the operational headers."""
    return {"offset": msg.offset, "partition": msg.partition,
            "event_id": header(msg.headers, "event_id"), "decision_id": header(msg.headers, "decision_id"),
            "protocol_version": header(msg.headers, "protocol_version"),
            "sealed": base64.b64encode(msg.value or b"").decode()}
