"""Recorded human decisions, the shell: refer a withheld share to a person, record what they decide, and deliver
when they decide to share (all or in part).

The share worker refers (`referral_for`, in the same batch as its decision record and before the offsets are
committed); the decisions API (broker/api/decisions.py) and `mash-broker decisions` decide (`decide_referral`).
A share or share in part is the disclosure, made when the person decides: the event is read again from the events
topic at the position the referral kept (the machinery held deliveries use, broker/service/held.py), revealed,
released under the rule's field rules minus what the person withheld, sealed to the subscriber, delivered, marked
in the delivered log (and among the child's recipients, for erasure notices) and audited. An erased child's event
is never delivered: the decision is recorded all the same, and the answer and the audit say nothing was sent.

A decided share is owed until it is settled (broker/stores/held.py `decided`, written before the decision itself):
when the subscriber's key is unusable, Kafka is down or the event cannot be read yet, the answer says "decided,
delivery pending" and the held-deliveries loop (broker/service/held.py) tries again each round until it is
delivered or can never be (erased, gone from the topic, rule or subscriber gone: audited as not sent). Audited once
as decided (`human_decision`) and once as delivered; sent once: the delivered log is checked before each send, one
attempt runs per decision in a process, a claim keeps two processes apart, and an attempt that sent without hearing
back is looked for on the delivery topic before sending again. The limit: a process killed after Kafka took the
message but before the delivered log was marked sends it again on the retry (HTTP pull serves it once:
broker/stores/served.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition

from broker.aio import blocking
from broker.clock import now_iso
from broker.crypto.errors import SealError
from broker.errors import BrokerError
from broker.kafka.clients import reader
from broker.logging import get_logger
from broker.policy import Decision, SubscriberKeyError, key_problems, release
from broker.policy.decision import delivered_record_id
from broker.policy.errors import PolicyError
from broker.policy.referral import (
    Withholding,
    deciders,
    human_decision_id,
    human_decision_record,
    person_decision,
    reason_problem,
    withholding_problems,
)
from broker.policy.thresholds import assessed
from broker.service.messages import decode, header
from broker.service.positions import read_positions
from broker.stores.decisions import AlreadyDecided, Referral

if TYPE_CHECKING:
    from broker.policy import Protocol
    from broker.service.ports import DecisionPorts

log = get_logger("mash.decisions")
__all__ = ["AlreadyDecided", "DecisionRefused", "Outcome", "decide_referral", "referral_for", "retry_decided"]


def referral_for(protocol: Protocol, decision: Decision, event: dict[str, Any], token: str, partition: int,
                 offset: int, now: str) -> Referral:
    """The pending referral a withholding decision with `human_decision` set raises (pure)."""
    needed = decision.human_decision
    assert needed is not None
    agency = (event.get("source") or {}).get("agency")
    return Referral(decision.decision_id, decision.subscriber, decision.event_id, decision.event_type, token,
                    needed.rule_id, needed.restriction, needed.recorded_on, tuple(needed.basis), decision.reason,
                    agency, deciders(protocol, agency), partition, offset, now)


class DecisionRefused(BrokerError):
    """A decision that cannot be recorded or acted on: `status` is the HTTP status, the message value-free."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Outcome:
    referral: Referral
    delivered: bool
    note: str  # value-free: what happened to the delivery

    @property
    def pending(self) -> bool:
        """Decided to share, not delivered yet: the broker goes on trying."""
        return self.note.startswith(PENDING)

    def view(self) -> dict[str, Any]:
        return {**self.referral.view(), "delivered": self.delivered, "delivery": self.note,
                "delivery_pending": self.pending}


def may_decide(referral: Referral, partners: set[str]) -> bool:
    """A decision_maker acts for one partner (its scope); it may decide the referrals that partner is named for."""
    return bool(partners & set(referral.deciders))


async def decide_referral(rt: DecisionPorts, referral_id: str, *, choice: str, reason: str, withholding: Withholding,
                          actor: str, partners: set[str]) -> Outcome:
    """Record one person's decision on one referral, audit it, and deliver on share / share in part.

    Checked in this order, each a DecisionRefused with a value-free message: the referral exists (404), the caller
    acts for a partner named for it (403), the choice and the reason can stand (422), it is still pending (409)."""
    decided, now = await blocking(_decide, rt, referral_id, choice, reason, withholding, actor, partners)
    if choice == "withhold":
        await rt.emit_audit([_record(rt, decided, now, actor, reason, withholding, None)])
        return Outcome(decided, False, "withheld by the decision: nothing sent")
    return await _share(rt, decided)


def _decide(rt: DecisionPorts, referral_id: str, choice: str, reason: str, withholding: Withholding, actor: str,
            partners: set[str]) -> tuple[Referral, str]:
    """The registers' part of decide_referral (blocking: broker/aio.py): the referral decided, and when."""
    referral = rt.referrals.get(referral_id)
    if referral is None:
        raise DecisionRefused(404, "no such referral")
    if not may_decide(referral, partners):
        raise DecisionRefused(403, "this credential acts for a partner that is not named to decide this referral "
                                   f"(deciders: {', '.join(referral.deciders)})")
    problems = withholding_problems(referral.event_type, choice, withholding)
    if why := reason_problem(reason):
        problems.append(f"reason: {why}")
    if problems:
        raise DecisionRefused(422, "; ".join(problems))
    if referral.status != "pending":
        raise DecisionRefused(409, f"this referral was already decided ({referral.status})")
    now = now_iso()
    decision_id = human_decision_id(referral.referral_id)
    kept_back = withholding.to_record() if choice == "share_in_part" else None
    if choice != "withhold":
        # owed before it is decided: a crash between the two leaves a row the retry skips while the referral is
        # pending, never a decided share nobody will deliver
        rt.held.owe(referral.referral_id, referral.subscriber, referral.event_id, now)
    try:
        decided = rt.referrals.decide(referral_id, status=choice, decision_id=decision_id, decided_at=now,
                                      decided_by=actor, reason=reason.strip(), withheld=kept_back)
    except AlreadyDecided:
        raise DecisionRefused(409, "this referral was already decided") from None
    return decided, now


def _record(rt: DecisionPorts, referral: Referral, now: str, actor: str, reason: str, withholding: Withholding,
            decision: Decision | None) -> dict[str, Any]:
    """The `human_decision` audit record: who decided, what, why; with the fields disclosed once they are known
    (a share whose event could not be released records the choice without them)."""
    p = rt.protocol
    rule = p.rule(referral.rule_id)
    fields: dict[str, Any] = {"purpose": rule.purpose} if rule is not None else {}
    if decision is not None:
        fields = {"fields_released": list(decision.released), "fields_masked": dict(decision.masked),
                  "fields_withheld": list(decision.withheld), "purpose": decision.purpose}
    return rt.audit_record(
        "human_decision", time=now, actor=actor, subject=referral.subject, subscriber=referral.subscriber,
        event_id=referral.event_id, event_type=referral.event_type, decision_id=referral.decision_id,
        outcome="withhold" if referral.status == "withhold" else "deliver", rule_id=referral.rule_id,
        lawful_basis=list(referral.basis), protocol_id=p.id, protocol_version=p.version, reason=reason.strip(),
        human_decision=human_decision_record(
            referral_id=referral.referral_id, choice=referral.status, restriction=referral.restriction,
            recorded_on=referral.recorded_on, basis=referral.basis, decided_by_partners=referral.deciders,
            withholding=withholding),
        **fields)


def _not_sent(rt: DecisionPorts, referral: Referral, now: str, why: str) -> dict[str, Any]:
    return rt.audit_record("admin_action", time=now, actor="decisions", action="delivery.not_sent",
                           subject=referral.subject, subscriber=referral.subscriber, event_id=referral.event_id,
                           decision_id=referral.decision_id, reason=why)


ERASED = "child erased: an erased child's data is never delivered"
GONE = "event no longer on the events topic: the agency must resend it, and the share is referred again"
PENDING = "decided, delivery pending"
# How long the decider's request waits for the delivery before answering "decided, delivery pending" (the delivery
# goes on behind the answer), and after how long a process's claim on a decided delivery is taken to be a process
# that died mid-delivery (longer than any one attempt: Kafka's request timeout is 10 s, a read a few more).
DELIVERY_WAIT_S = 10.0
CLAIM_LEASE_S = 300.0
SEARCH_EMPTY_POLLS = 25


class _Pending(Exception):
    """A decided delivery that cannot be made now and will be retried (key unusable, Kafka down, event unreadable)."""


# The attempts running in this process, per runtime: the decider's request and the retry loop share one attempt.
_attempts: weakref.WeakKeyDictionary[DecisionPorts, dict[str, asyncio.Task[tuple[bool, str]]]] = \
    weakref.WeakKeyDictionary()


def _owner(rt: DecisionPorts) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{id(rt)}"


def _withholding(referral: Referral) -> Withholding:
    kept = referral.withheld or {}
    return Withholding(tuple(kept.get("classifications", ())), tuple(kept.get("paths", ())))


def _attempt(rt: DecisionPorts, referral_id: str) -> asyncio.Task[tuple[bool, str]]:
    """The running attempt to settle this decided delivery, or a new one. It runs to its end whoever stops waiting
    for it: a Kafka send abandoned half way could land after a retry had sent it again."""
    running = _attempts.setdefault(rt, {})
    if (task := running.get(referral_id)) is not None and not task.done():
        return task
    task = asyncio.create_task(_settle(rt, referral_id))
    running[referral_id] = task

    def forget(done: asyncio.Task[tuple[bool, str]]) -> None:
        if running.get(referral_id) is done:
            del running[referral_id]
        if not done.cancelled() and (exc := done.exception()) is not None and not isinstance(exc, _Pending):
            log.warning("human_decision_delivery_failed", referral_id=referral_id, error=type(exc).__name__)

    task.add_done_callback(forget)
    return task


async def _share(rt: DecisionPorts, referral: Referral) -> Outcome:
    """The disclosure a share decision makes, attempted at once; whatever stops it now (the subscriber's key, Kafka,
    the event not readable yet) leaves it owed, and the retry loop (`retry_decided`) makes it later. The answer
    says which, honestly: delivered, not sent for good and why, or decided with the delivery pending."""
    task = _attempt(rt, referral.referral_id)
    try:
        delivered, note = await asyncio.wait_for(asyncio.shield(task), DELIVERY_WAIT_S)
    except TimeoutError:
        delivered, note = False, f"{PENDING}: Kafka did not answer in time; the broker retries until it is delivered"
    except _Pending as exc:
        delivered, note = False, f"{PENDING}: {exc}; the broker retries until it is delivered"
    except Exception as exc:  # an outage while delivering (Kafka): owed, retried
        delivered, note = False, (f"{PENDING}: delivery failed ({type(exc).__name__}); the broker retries until "
                                  "it is delivered")
    now_held = await blocking(rt.referrals.get, referral.referral_id)
    return Outcome(now_held or referral, delivered, note)


async def retry_decided(rt: DecisionPorts) -> int:
    """One pass over the decided deliveries still owed (run by the held-deliveries loop): each attempted again
    unless this process is already at it, its referral is not decided yet (the row was written just before the
    decision), or its subscriber's key is still unusable and its decision already audited. Returns how many were
    settled (delivered, or not sent for good with the reason audited)."""
    running = _attempts.get(rt, {})
    settled = 0
    for owed in await blocking(rt.held.owed):
        if owed.referral_id in running:
            continue
        referral = await blocking(rt.referrals.get, owed.referral_id)
        if referral is not None and referral.status == "pending":
            continue
        if owed.audited_at is not None and owed.sent_at is None and owed.subscriber in rt.subscriber_faults:
            continue
        try:
            done, _ = await _attempt(rt, owed.referral_id)
        except _Pending:
            continue
        except Exception:  # an outage: logged by the attempt, tried again next round
            continue
        settled += bool(done) or await blocking(rt.held.owed_one, owed.referral_id) is None
    return settled


async def _settle(rt: DecisionPorts, referral_id: str) -> tuple[bool, str]:
    """One attempt, under this process's claim on the row (another process at it: pending)."""
    owner, now = _owner(rt), now_iso()
    stale = (datetime.fromisoformat(now.replace("Z", "+00:00")) - timedelta(seconds=CLAIM_LEASE_S)).isoformat()
    if not await blocking(rt.held.claim, referral_id, owner, now, stale.replace("+00:00", "Z")):
        raise _Pending("another broker process is delivering it")
    try:
        return await _settle_claimed(rt, referral_id)
    finally:
        await blocking(rt.held.unclaim, referral_id, owner)


async def _settle_claimed(rt: DecisionPorts, referral_id: str) -> tuple[bool, str]:
    """Audit the decision (once), then deliver (once), then audit the delivery (once), each step recorded in the
    owed row as it is done, so that an attempt stopped anywhere is taken up where it stopped."""
    owed, referral = await blocking(lambda: (rt.held.owed_one(referral_id), rt.referrals.get(referral_id)))
    if owed is None:  # settled meanwhile
        return (referral is not None and referral.delivered_at is not None), "delivered"
    if referral is not None and referral.status == "pending":
        raise _Pending("not decided yet")
    if referral is None or referral.status not in ("share", "share_in_part"):
        # decided otherwise (withhold), or gone from the register: nothing owed
        await blocking(rt.held.settled, referral_id)
        return False, "nothing to deliver"
    now = now_iso()
    withholding = _withholding(referral)
    if owed.sent_at is not None:  # sent and marked: only its `delivered` audit record is left to emit
        decision, event, final = None, None, None
    else:
        decision, event, final = await _prepare(rt, referral, withholding)
    if owed.audited_at is None:
        await rt.emit_audit([_record(rt, referral, referral.decided_at or now, referral.decided_by or "decisions",
                                     referral.decision_reason or "", withholding, decision)])
        await blocking(rt.held.audited, referral_id, now)
    if final is not None:  # never to be sent: say why, once, and owe nothing more
        await rt.emit_audit([_not_sent(rt, referral, now, final)])
        await blocking(rt.held.settled, referral_id)
        return False, final
    if owed.sent_at is None:
        assert decision is not None and event is not None
        await _send(rt, referral, decision, event, now)
    delivered = delivered_record_id(referral.decision_id or referral_id, referral.subscriber)  # a re-run's is dropped
    await rt.emit_audit([rt.audit_record("delivered", time=now, actor="decisions", subject=referral.subject,
                                         record_id=delivered, subscriber=referral.subscriber,
                                         event_id=referral.event_id, decision_id=referral.decision_id)])
    await blocking(rt.held.settled, referral_id)
    log.info("human_decision_delivered", subscriber=referral.subscriber, event_id=referral.event_id)
    return True, "delivered"


async def _prepare(rt: DecisionPorts, referral: Referral, withholding: Withholding) -> tuple[
        Decision | None, dict[str, Any] | None, str | None]:
    """The event read again and the person's decision over it: (decision, event, None) to deliver, (None, None, why)
    when it is never to be sent. Raises _Pending (or Kafka's error) when the event cannot be read now."""
    assert referral.decision_id is not None
    if await blocking(rt.erasures.is_erased, referral.subject):
        return None, None, ERASED
    if referral.subscriber not in rt.protocol.subscribers:
        return None, None, "not sent: the subscriber is no longer in the protocol"
    if await blocking(rt.delivered.sent, [referral.subscriber], [referral.event_id]) and referral.delivered_at is None:
        return None, None, "already delivered to this subscriber"  # by a rule, after the objection was lifted
    records, highest = await read_positions(rt, rt.settings.topics.events, [(referral.partition, referral.position)])
    msg = records.get((referral.partition, referral.position))
    if msg is None:
        if highest.get(referral.partition, -1) > referral.position:
            return None, None, GONE  # retention ran out or the topic was compacted: it will not come back
        raise _Pending("the event cannot be read from the events topic now")
    revealed = await blocking(rt.reveal, decode(msg.value))  # the key store
    if revealed.event.get("event_id") != referral.event_id:
        return None, None, GONE
    if revealed.shredded:
        return None, None, ERASED
    try:
        decision = person_decision(rt.protocol, revealed.event, subscriber=referral.subscriber,
                                   rule_id=referral.rule_id, decision_id=referral.decision_id,
                                   choice=referral.status, withholding=withholding,
                                   consent=await blocking(rt.consent_for, referral.subject))
    except PolicyError as exc:
        return None, None, f"not sent: {exc}"
    return decision, revealed.event, None


async def _send(rt: DecisionPorts, referral: Referral, decision: Decision, event: dict[str, Any], now: str) -> None:
    """Release, seal, send, mark. Before sending, the delivery topic is searched for this decision's message if an
    earlier attempt got as far as sending without hearing back (Kafka may have written it after all)."""
    assert referral.decision_id is not None
    sub = rt.protocol.subscribers[referral.subscriber]
    if problems := key_problems([sub]):  # checked at each attempt: a cached sealer outlives a key file removed
        raise _Pending(f"subscriber public key unusable ({problems[0].split(':')[0]})")
    # on the common risk scale, as every other delivery (broker/policy/thresholds.py)
    released = release(dict(assessed(rt.protocol.risk_scales, event)), decision, mask_key=rt.mask_key)
    # the subscriber learns that a person decided, and despite what (codes only), so it can handle it accordingly
    released["delivery"]["human_decision"] = {"decision_id": referral.decision_id, "choice": referral.status,
                                              "restriction": referral.restriction}
    try:
        sealed = rt.seal_for(referral.subscriber, released)
    except (SubscriberKeyError, SealError):
        raise _Pending("subscriber public key unusable") from None
    topic = rt.settings.topics.deliver(referral.subscriber)
    owed = await blocking(rt.held.owed_one, referral.referral_id)
    if owed is not None and owed.attempted_from is not None and \
            await _already_on(rt, topic, owed.attempted_from, referral.decision_id):
        pass  # an earlier attempt's message reached Kafka after all: marked below, never sent twice
    else:
        await blocking(rt.held.attempting, referral.referral_id, await _end_offset(rt, topic))
        headers = [("event_id", referral.event_id.encode()), ("decision_id", referral.decision_id.encode()),
                   ("protocol_version", str(rt.protocol.version).encode())]
        await rt.producer.send_and_wait(topic, sealed, key=referral.subject.encode(), headers=headers)
    await blocking(_mark_sent, rt, referral, now)


def _mark_sent(rt: DecisionPorts, referral: Referral, now: str) -> None:
    assert referral.decision_id is not None
    rt.delivered.mark([(referral.subscriber, referral.event_id, referral.decision_id)],
                      [(referral.subject, referral.subscriber)])
    rt.referrals.delivered(referral.referral_id, now)
    rt.held.sent(referral.referral_id, now)


async def _end_offset(rt: DecisionPorts, topic: str) -> int:
    """Where the subscriber's (one-partition) delivery topic ends now: a later search for this message starts here."""
    consumer = reader(rt.bootstrap, **rt.kafka_security)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def _already_on(rt: DecisionPorts, topic: str, start: int, decision_id: str) -> bool:
    """Whether a message carrying this decision id is on the delivery topic at or after `start`."""
    consumer = reader(rt.bootstrap, **rt.kafka_security)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = int((await consumer.end_offsets([tp]))[tp])
        consumer.seek(tp, start)
        empty = 0
        while await consumer.position(tp) < end and empty < SEARCH_EMPTY_POLLS:
            records = (await consumer.getmany(tp, timeout_ms=400, max_records=500)).get(tp, [])
            empty = 0 if records else empty + 1
            if any(header(r.headers, "decision_id") == decision_id for r in records):
                return True
        if empty >= SEARCH_EMPTY_POLLS:  # could not read to the end: not known, so not sent again now
            raise _Pending("the delivery topic could not be searched for an earlier attempt")
        return False
    finally:
        await consumer.stop()
