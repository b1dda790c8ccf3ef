"""Releasing held deliveries: once a subscriber's public key loads again, what was held for it is delivered, in order.

The share stage holds a delivery (broker/stores/held.py) when its subscriber cannot be sealed to, commits the batch
and goes on for everyone else. This loop, one per process that runs share workers, tries each held subscriber's key
every `Runtime.held_recheck_seconds`, and when it loads reads the held events again from the events topic (by
partition and offset), decides again and delivers. It also retries a person's decided shares whose delivery is
still owed (`retry_decided`, broker/service/decisions.py).

Decided again, not replayed: the release is the disclosure, so it follows the consent, case state, erasures and
protocol in force when it is made. A held delivery the protocol now withholds, whose child was erased, or whose
event the events topic no longer holds (its retention ran out while the key was broken: the agency must resend) is
dropped with an audit record saying why, so that it cannot hold the subscriber's later deliveries for ever. The
delivered log is checked before each release, so nothing is delivered twice by one process; two processes releasing
the same rows at the same instant can each send a copy, which HTTP pull serves once (broker/stores/served.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRecord, TopicPartition

from broker.clock import now_iso
from broker.crypto import KeyUnavailable, KmsError
from broker.kafka.clients import reader
from broker.logging import get_logger
from broker.pipeline.cases import case_transition
from broker.pipeline.share import share
from broker.schema.envelope import linkage_token
from broker.service.decisions import retry_decided
from broker.service.facts import read_facts
from broker.service.messages import decode
from broker.service.share import SEAL_FAULTS
from broker.stores.held import Held

if TYPE_CHECKING:
    from broker.service.runtime import Runtime

log = get_logger("mash.held")
EMPTY_POLLS = 3
POLL_MS = 400


async def run_held_release(rt: Runtime, stop: asyncio.Event) -> None:
    """Supervised like a share worker: an error is logged and the loop goes on after the next pause."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=rt.held_recheck_seconds)
        if stop.is_set():
            return
        try:
            await release_round(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("held_release_failed")


async def release_round(rt: Runtime) -> dict[str, int]:
    """One pass: refresh which subscribers cannot be sealed to, and release what the others have held."""
    assert rt.held is not None and rt.protocol is not None  # set by Runtime.start()
    faults = rt.check_subscriber_keys()
    released: dict[str, int] = {}
    for subscriber in sorted(rt.held.counts()):
        if subscriber in faults or subscriber not in rt.protocol.subscribers:
            continue  # still unusable (or removed from the protocol: kept, and named in /readyz, until it returns)
        while rows := rt.held.oldest(subscriber):
            done = await release_held(rt, subscriber, rows)
            released[subscriber] = released.get(subscriber, 0) + done
            if done < len(rows):  # some events could not be read back: stop here, keep order, try next round
                break
        if not rt.held.counts().get(subscriber):
            log.info("held_deliveries_released", subscriber=subscriber, count=released.get(subscriber, 0))
    # a person's decided shares still owed (broker/service/decisions.py)
    if getattr(rt, "referrals", None) is not None and (settled := await retry_decided(rt)):
        log.info("decided_deliveries_settled", count=settled)
    return released


async def read_positions(rt: Runtime, topic: str, wanted: Iterable[tuple[int, int]]) -> tuple[
        dict[tuple[int, int], ConsumerRecord], dict[int, int]]:
    """The records at the (partition, offset) positions wanted, read with an assigned (group-less) reader, and the
    highest offset seen per partition (a wanted offset below it that was not found is gone: retention, compaction)."""
    by_partition: dict[int, set[int]] = {}
    for partition, offset in wanted:
        by_partition.setdefault(partition, set()).add(offset)
    found: dict[tuple[int, int], ConsumerRecord] = {}
    highest: dict[int, int] = {}
    consumer = reader(rt.bootstrap, **rt.kafka_security)
    await consumer.start()
    try:
        for partition, offsets in sorted(by_partition.items()):
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, min(offsets))
            empty, last = 0, max(offsets)
            while empty < EMPTY_POLLS and not offsets <= {o for p, o in found if p == partition}:
                batch = await consumer.getmany(tp, timeout_ms=POLL_MS, max_records=1000)
                records = batch.get(tp, [])
                empty = 0 if records else empty + 1
                found.update(((partition, r.offset), r) for r in records if r.offset in offsets)
                if records:
                    highest[partition] = max(highest.get(partition, -1), records[-1].offset)
                if records and records[-1].offset >= last:
                    break
    finally:
        await consumer.stop()
    return found, highest


async def release_held(rt: Runtime, subscriber: str, rows: list[Held]) -> int:
    """Deliver (or drop, saying why) the held rows in order; returns how many are done. Stops at the first row
    whose event cannot be read back or revealed, so that what follows it stays behind it."""
    assert rt.producer is not None and rt.protocol is not None and rt.delivered is not None and rt.held is not None
    records, highest = await read_positions(rt, rt.settings.topics.events, ((h.partition, h.offset) for h in rows))
    done: list[str] = []
    audits: list[dict[str, Any]] = []
    now = now_iso()
    for row in rows:
        # checked row by row, just before the send: another process's release loop may have sent it meanwhile
        if rt.delivered.sent([subscriber], [row.event_id]):
            done.append(row.event_id)
            continue
        msg = records.get((row.partition, row.offset))
        if msg is None and highest.get(row.partition, -1) > row.offset:
            # Gone from the events topic (retention ran out while the key was broken): cannot be delivered from
            # here; dropped with a record saying so, so the subscriber's later deliveries are not held for ever.
            log.warning("held_event_gone", subscriber=subscriber, event_id=row.event_id,
                        position=f"{row.partition}/{row.offset}")
            audits.append(rt.audit_record(
                "admin_action", time=now, actor="share", action="delivery.held_dropped", subscriber=subscriber,
                event_id=row.event_id, reason="event no longer on the events topic: the agency must resend it"))
            done.append(row.event_id)
            continue
        if msg is None:  # not readable now: keep the order, try again next round
            break
        try:
            event = rt.reveal(decode(msg.value)).event
        except (KeyUnavailable, KmsError):
            break  # an outage: try again next round
        token = linkage_token(event)
        outcome = await _release_one(rt, subscriber, event, token, now, audits)
        if outcome is None:  # the key failed again between the check and the seal
            break
        done.append(row.event_id)
    await rt.emit_audit(audits)
    rt.held.release(subscriber, done)
    return len(done)


async def _release_one(rt: Runtime, subscriber: str, event: dict[str, Any], token: str, now: str,
                       audits: list[dict[str, Any]]) -> str | None:
    """Decide again for `subscriber` and deliver, or drop with an audit record: "delivered", "dropped", or None if
    the subscriber still cannot be sealed to."""
    assert rt.protocol is not None and rt.producer is not None and rt.delivered is not None and rt.cases is not None
    erasures = getattr(rt, "erasures", None)
    if erasures is not None and erasures.is_erased(token):
        audits.append(_dropped(rt, now, subscriber, event, token, "child erased while the delivery was held"))
        return "dropped"
    transition = case_transition(event)
    case_open = transition if transition is not None else rt.cases.is_open(token)
    facts = read_facts(rt, [token]).for_event(token, case_open)  # the registers' facts at release, as consent
    for decision, released in share(rt.protocol, event, consent=rt.consent_for(token), facts=facts,
                                    mask_key=rt.mask_key):
        if decision.subscriber != subscriber:
            continue
        if released is None:
            audits.append(_dropped(rt, now, subscriber, event, token, "decided again at release: withheld",
                                   decision_id=decision.decision_id))
            return "dropped"
        try:
            sealed = rt.seal_for(subscriber, released)
        except SEAL_FAULTS:
            return None
        headers = [("event_id", decision.event_id.encode()), ("decision_id", decision.decision_id.encode()),
                   ("protocol_version", str(rt.protocol.version).encode())]
        await rt.producer.send_and_wait(rt.settings.topics.deliver(subscriber), sealed, key=token.encode(),
                                        headers=headers)
        rt.delivered.mark([(subscriber, decision.event_id, decision.decision_id)])
        audits.append(rt.audit_record("delivered", time=now, actor="share", subject=token, subscriber=subscriber,
                                      event_id=decision.event_id, decision_id=decision.decision_id))
        return "delivered"
    audits.append(_dropped(rt, now, subscriber, event, token, "decided again at release: no decision"))
    return "dropped"


def _dropped(rt: Runtime, now: str, subscriber: str, event: dict[str, Any], token: str, reason: str,
             decision_id: str | None = None) -> dict[str, Any]:
    return rt.audit_record("admin_action", time=now, actor="share", action="delivery.held_dropped", subject=token,
                           subscriber=subscriber, event_id=event["event_id"], decision_id=decision_id, reason=reason)
