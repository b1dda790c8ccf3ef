"""Share workers: consumer-group members on the events topic that deliver to each subscriber's topic.

Offsets are committed only after every delivery of a batch is acknowledged, so a crash redelivers (at-least-once);
the delivered log drops what a subscriber was already sent, so subscribers see each event once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import TYPE_CHECKING, Any

from adapters.kit.interface import Rejection
from broker.clock import now_iso
from broker.crypto import CryptoError, KeyUnavailable, KmsError
from broker.crypto.errors import SealError
from broker.kafka.clients import group_consumer
from broker.logging import get_logger
from broker.pipeline.cases import case_transition
from broker.pipeline.deadletter import deadletter_record
from broker.pipeline.erasure import NOTICE_TYPE
from broker.pipeline.share import share
from broker.policy import SubscriberKeyError
from broker.service.erasure import deliver_notice
from broker.service.messages import decode, encode, header
from broker.stores.held import Held

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

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


async def _share_loop(rt: Runtime, stop: asyncio.Event, name: str) -> None:
    group = rt.settings.group("share")
    consumer = group_consumer(rt.bootstrap, group, rt.settings.topics.events, **rt.kafka_security)
    await consumer.start()
    log.info("share_worker_started", worker=name)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            messages = [m for msgs in batch.values() for m in msgs]
            if messages:
                with rt.metrics.time("share_batch"):
                    await process_batch(rt, messages)
                await consumer.commit()
                for tp in batch:  # lag from the fetch's high-water mark (not ListOffsets: see delivery.py)
                    rt.metrics.consumer_lag.labels(group, tp.topic, str(tp.partition)).set(
                        max(0, (consumer.highwater(tp) or 0) - await consumer.position(tp)))
    finally:
        await consumer.stop()
        log.info("share_worker_stopped", worker=name)


async def _poison(rt: Runtime, msg: ConsumerRecord, why: str) -> Any:
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
    return await rt.producer.send(rt.settings.topics.deadletter, encode(record),
                                  key=record["deadletter_id"].encode())


async def process_batch(rt: Runtime, messages: list[ConsumerRecord]) -> None:
    assert rt.producer is not None and rt.delivered is not None and rt.protocol is not None
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
            sends.append(await _poison(rt, msg, f"undecodable event ({type(exc).__name__})"))
    # one delivered-log query for the batch; what this batch sends joins the set, so an event that appears twice in
    # one batch is still sent once
    sent = rt.delivered.sent(rt.protocol.subscribers, (event["event_id"] for event, _, _ in events))
    # A subscriber with held deliveries gets its new ones held behind them, so its events stay in order.
    holding, held = set(rt.held.counts()) if rt.held is not None else set(), []
    for event, token, msg in events:
        if event["event_type"] == NOTICE_TYPE:  # to every past recipient of the child, whatever the rules
            notice_sends, notice_marks, notice_audits = await deliver_notice(rt, event, token, sent, now)
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
            sends.append(await rt.producer.send(rt.settings.topics.deliver(decision.subscriber), sealed,
                                                key=token.encode(), headers=headers))
            marks.append((decision.subscriber, decision.event_id, decision.decision_id))
            audits.append(rt.audit_record("delivered", time=now, actor="share", subject=token,
                                          subscriber=decision.subscriber, event_id=decision.event_id,
                                          decision_id=decision.decision_id))
    await asyncio.gather(*sends)
    about = {event["event_id"]: token for event, token, *_ in events}  # who received what: for erasure notices
    rt.delivered.mark(marks, {(about[event_id], subscriber) for subscriber, event_id, _ in marks})
    if held:  # before the batch's offsets are committed
        rt.held.hold(held, now)
    await rt.emit_audit(audits)


def delivery_view(msg: ConsumerRecord) -> dict[str, Any]:
    """How a delivery appears over HTTP: the sealed bytes (base64) and the operational headers."""
    return {"offset": msg.offset, "partition": msg.partition,
            "event_id": header(msg.headers, "event_id"), "decision_id": header(msg.headers, "decision_id"),
            "protocol_version": header(msg.headers, "protocol_version"),
            "sealed": base64.b64encode(msg.value or b"").decode()}
