"""HTTP intake's shell: read, plan, apply. The decisions are pure, in broker/pipeline/intake_plan.py.

1. Read: the input (`prepare`: adapt, link, validate), on the event loop when it is one small record, else on the
   read pool; then, in one worker thread with the plan, the register facts the plan needs: the identity register's
   view of the request's identities, and what the erasure register says of its children.
2. Plan: `resolve_intake` and `plan_intake` build every event, dead-letter message and audit record of the request,
   encrypted, sealed, validated and measured against Kafka's message limit, BEFORE the first one is sent; anything
   that cannot make a valid audit record becomes a value-free rejection; an input too large to keep as a dead letter
   is refused (413) with nothing published but the audit of the refusal.
3. Apply, by flushes of the requests planned meanwhile (broker/service/group_commit.py, planned by
   broker/pipeline/intake_flush.py), in this order: send every message of the flush and wait for Kafka's acknowledgement
   of all, then the flush's audit records (which say so) in one audit message, then the register writes (identity links,
   consent carried over a merge, facts learned) of the requests that have any, in one worker-thread call for the flush
   that the next flush does not wait for, made only when one of them has a write (requests about known children have
   none), each request's writes on their own. A request planned while no flush is in flight is flushed at once; those
   planned while one is in flight go together in the next: a batch's cost (Kafka's round trips, an audit message and an
   indexer transaction, a thread hop) is paid once per flush instead of once per request, with no timer. So only Kafka
   itself can fail once sending starts: the answer is 202 when Kafka acknowledged every message of the request's flush,
   else 503 for every request of the flush and nothing is acknowledged, and the register never learns a link Kafka does
   not hold; a request whose register write fails gets its error, its neighbours in the flush their 202. Without Kafka
   transactions (the embedded broker has none) a failure half way can leave some of the flush's messages on their
   topics; the sender's resend carries the same deterministic event and dead-letter ids and is deduplicated downstream.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from aiokafka.errors import KafkaError

from adapters.kit.interface import AdaptContext
from broker.aio import blocking
from broker.clock import now_iso
from broker.crypto import CryptoError, KeyUnavailable
from broker.errors import InputRejected, Unavailable
from broker.logging import get_logger
from broker.pipeline.intake import Prepared, prepare
from broker.pipeline.intake_flush import plan_flush, writes_registers
from broker.pipeline.intake_plan import (
    DEFAULT_MESSAGE_LIMIT,
    UNRECORDABLE,
    ErasureFacts,
    IntakeParams,
    IntakePlan,
    IntakeRequest,
    IntakeResult,
    Resolved,
    erasure_tokens,
    plan_intake,
    recordable,
    refused_plan,
    resolve_intake,
)
from broker.pipeline.messages import Outgoing
from broker.pipeline.resolve import Known
from broker.schema.envelope import linkage_token
from broker.service.erasure import published_before
from broker.service.facts import facts_to_learn, learn_facts
from broker.service.group_commit import GroupCommit

if TYPE_CHECKING:
    from broker.service.ports import IntakePorts

__all__ = ["UNRECORDABLE", "InputRefused", "IntakeBusy", "IntakeResult", "KafkaUnavailable", "KeysUnavailable",
           "ingest", "ingest_prepared", "message_limit", "recordable"]

PUBLISH_TIMEOUT_S = 15.0
# Reading an input (adapt, link, validate) runs on worker threads so that /healthz and every other request keep
# being answered while a large body is parsed. Few threads: the work is CPU-bound and the GIL is shared, so more
# would not be faster, only let hostile inputs take more of the machine.
PREPARE_WORKERS = 2
PREPARE_MAX_PENDING = 256  # inputs waiting for or being read; beyond it 503 (overload, resend later)
PREPARE_TIME_LIMIT_S = 30.0  # an input that takes longer to read is refused (413): it is too big to take at once
# A body this small (one record: the bench's are 0.2-1.4 KB) is read on the event loop, in well under a millisecond:
# less than the thread hop costs in CPU (issue 24's profile: hops and the GIL contention of CPU work in a thread cost
# the service ~1.3 ms per event at one record per request). Larger ones (files of 20 records: 1-23 KB, 2-8 ms to
# read) go to the bounded, timed pool above, so that the loop is never held by a read for long.
INLINE_READ_BYTES = 4 * 1024
# Requests per flush: enough to take every request in flight at the bench's 16 concurrent callers many times over,
# few enough that one flush's audit message (3-4 records a one-record request) and register hop stay small.
FLUSH_MAX_REQUESTS = 128
log = get_logger("mash.intake")


# A key needed to encrypt was missing or its KMS unreachable: 503, nothing accepted, never plaintext. One class
# with the crypto layer's KeyUnavailable (issue 20: the two sat side by side); the name is kept for callers.
KeysUnavailable = KeyUnavailable


class KafkaUnavailable(Unavailable, RuntimeError):
    """Kafka did not acknowledge in time: the caller gets 503 and must resend (nothing was acknowledged)."""


class IntakeBusy(Unavailable, RuntimeError):
    """Too many inputs are being read at once: 503, nothing read, resend later."""


class InputRefused(InputRejected, ValueError):
    """The input as a whole cannot be taken within a limit (Kafka's message size, the read time): 413, nothing
    published but the audit of the refusal. The message names the limit, never a value."""

    def __init__(self, reason: str, result: IntakeResult) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result


async def ingest(rt: IntakePorts, agency: str, data: bytes, *, content_type: str | None, system: str | None,
                 actor: str, source: str = "request") -> IntakeResult:
    request = IntakeRequest(agency, data, now_iso(), actor, system, content_type, source)
    ctx = AdaptContext(source=source, received_at=request.received_at, system=system,
                       settings=rt.adapter_settings)
    with rt.metrics.time("prepare"):
        if len(data) <= INLINE_READ_BYTES:
            prepared: Prepared | None = prepare(agency, data, ctx, rt.linkage, content_type=content_type)
        else:
            prepared = await _prepare_off_loop(agency, data, ctx, rt, content_type)
    if prepared is None:
        await _refuse(rt, refused_plan(request, None, f"input took longer than {PREPARE_TIME_LIMIT_S:g} s to read: "
                                                      "send it in smaller files"))
    return await ingest_prepared(rt, request, prepared)


async def ingest_prepared(rt: IntakePorts, request: IntakeRequest, prepared: Prepared) -> IntakeResult:
    """Everything after reading: resolve, plan, publish, then the registers. The MASH hub's decisions come in here
    (broker/service/hub.py): built from the hub's request instead of an adapter, then published like any record."""
    agency = request.agency
    read = await blocking(_plan, rt, request, prepared)
    plan = read.plan
    if plan.refusal is not None:
        await _refuse(rt, plan)
    written = await _flusher(rt).submit(_Publishing(plan, read.resolved, request.received_at, read.learns_facts))
    if written is not None:  # Kafka holds the request's events; its register writes before its 202
        await written.done()
    _count_links(rt, plan)
    rt.metrics.observe_intake(agency, len(plan.result.event_ids), plan.result.rejections)
    return plan.result


# --- one thread hop for the registers and the plan, at most one after publishing -----------------------------------
@dataclass(frozen=True, slots=True)
class _Planned:
    """What the blocking call gives the shell: the register facts read, the plan, and whether the registers will
    learn facts (dates of birth...) from the published events."""

    resolved: Resolved
    plan: IntakePlan
    learns_facts: bool = False


def _plan(rt: IntakePorts, request: IntakeRequest, prepared: Prepared) -> _Planned:
    """The registers read, then the plan, whose protection may make or unwrap data keys (the key store): one
    blocking call (broker/aio.py). The plan stays in this thread rather than on the loop: measured on this 2-core
    host (broker/bench/RESULTS.md, Session 8), the loop planning while other requests' register calls wait in
    threads for the GIL made those calls wait a switch interval at each step, and intake slower at 20 records per
    request."""
    resolved = _resolve(rt, prepared)
    erasure = _erasure_facts(rt, prepared, resolved)
    plan = _plan_with_store(rt, request, prepared, resolved, erasure)
    published = set(plan.result.event_ids)
    return _Planned(resolved, plan, facts_to_learn(rt, [e for e in resolved.events if e["event_id"] in published]))


def _plan_with_store(rt: IntakePorts, request: IntakeRequest, prepared: Prepared, resolved: Resolved,
                     erasure: ErasureFacts) -> IntakePlan:
    """The plan with the key store itself, whose protection may make or unwrap data keys (blocking)."""
    try:
        with rt.metrics.time("protect"):
            return plan_intake(request, prepared, resolved, erasure, rt.keys, _params(rt))
    except CryptoError as exc:
        raise _keys_unavailable(rt, exc) from None


def _keys_unavailable(rt: IntakePorts, exc: CryptoError) -> KeysUnavailable:
    """Fail closed: never plaintext; the sender resends once keys are back."""
    rt.metrics.key_failures.inc()
    return KeysUnavailable(f"encryption keys unavailable ({type(exc).__name__}); nothing was accepted")


def _after_publish(rt: IntakePorts, plan: IntakePlan, resolved: Resolved, at: str) -> None:
    """The registers once Kafka holds the events (blocking): links, person.linked folds, dates of birth."""
    _apply_registers(rt, plan, at)
    # the children's dates of birth, from the published events that carry one (broker/stores/identities.py): before
    # the 202, so a later request's event without one is decided on the child's age
    published = set(plan.result.event_ids)
    learn_facts(rt, (e for e in resolved.events if e["event_id"] in published), at)


# --- reading the input, off the event loop -----------------------------------------------------------------------
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pending = 0


def _prepare_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(PREPARE_WORKERS, thread_name_prefix="mash-intake-read")
        return _pool


async def _prepare_off_loop(agency: str, data: bytes, ctx: AdaptContext, rt: IntakePorts,
                            content_type: str | None) -> Prepared | None:
    """`prepare` on a worker thread, within PREPARE_TIME_LIMIT_S; None when it took longer (the thread finishes its
    read in the background, its result unused: Python cannot stop a thread, the pool's size bounds the cost)."""
    global _pending
    with _pool_lock:
        if _pending >= PREPARE_MAX_PENDING:
            raise IntakeBusy(f"more than {PREPARE_MAX_PENDING} inputs are being read; resend later")
        _pending += 1

    def done(_: Any) -> None:
        global _pending
        with _pool_lock:
            _pending -= 1

    future = _prepare_pool().submit(prepare, agency, data, ctx, rt.linkage, content_type=content_type)
    future.add_done_callback(done)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), PREPARE_TIME_LIMIT_S)
    except TimeoutError:
        return None


def _resolve(rt: IntakePorts, prepared: Prepared) -> Resolved:
    """Read the identity register's view of the request's identities; resolve the events' tokens (pure)."""
    if not prepared.events:
        return resolve_intake(prepared, Known())
    with rt.metrics.time("resolve"):
        known = rt.identities.known(identity.token for event_ids in prepared.identities for identity in event_ids)
        return resolve_intake(prepared, known)


def _erasure_facts(rt: IntakePorts, prepared: Prepared, resolved: Resolved) -> ErasureFacts:
    """What the erasure register says of the request's children: one query when none of them is erased. For an
    erased child, which of the request's events were received before its erasure: the register's list, and the
    audit log for events published just before it, while the audit indexer had not stored them yet."""
    tokens = erasure_tokens(prepared, resolved)
    if rt.erasures is None or not tokens:
        return ErasureFacts()
    erased = rt.erasures.erased_at(tokens)
    mine = {e["event_id"] for e in resolved.events if linkage_token(e) in erased}
    if not mine:
        return ErasureFacts(erased)
    before = rt.erasures.erased_events(mine)
    if mine - before:
        before |= published_before(rt.audit_store, erased, mine)
    return ErasureFacts(erased, frozenset(before))


def message_limit(rt: IntakePorts) -> int:
    """The largest message the producer sends (its max_request_size): a larger one fails MessageSizeTooLargeError."""
    return int(getattr(rt.producer, "_max_request_size", DEFAULT_MESSAGE_LIMIT) or DEFAULT_MESSAGE_LIMIT)


def _params(rt: IntakePorts) -> IntakeParams:
    topics = rt.settings.topics
    return IntakeParams(topics.events, topics.deadletter, message_limit(rt))


# --- applying: Kafka first, then the audit, then the registers -----------------------------------------------------
async def _refuse(rt: IntakePorts, plan: IntakePlan) -> NoReturn:
    """Nothing is published; the refused input's receipt and rejection go to the audit log (the reasons are fixed
    texts with numbers), then the refusal is raised (413)."""
    assert plan.refusal is not None
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await rt.emit_audit(list(plan.audits))
    except (KafkaError, TimeoutError) as exc:  # the refusal stands: it never depended on Kafka
        log.error("refusal_not_audited", reason=type(exc).__name__)
    raise InputRefused(plan.refusal, plan.result)


@dataclass(frozen=True, slots=True)
class _Publishing:
    """A planned request waiting for its flush: what the flush publishes and, once Kafka holds it, writes."""

    plan: IntakePlan
    resolved: Resolved
    at: str  # when the request was received: the register writes' time, as before flushes
    learns_facts: bool


@dataclass(frozen=True, slots=True)
class _Written:
    """A request's register writes, made with those of the other requests of its flush in one thread hop."""

    writes: asyncio.Task[list[BaseException | None]]
    position: int  # the request's place among the flush's requests that write

    async def done(self) -> None:
        """Wait for the flush's writes (shielded: one caller giving up does not stop its neighbours'); raise this
        request's own error, if its write failed."""
        error = (await asyncio.shield(self.writes))[self.position]
        if error is not None:
            raise error


_writing: set[asyncio.Task[list[BaseException | None]]] = set()
# One flusher per runtime and event loop (a test may run several of each); weak: a runtime closed is let go.
_flushers: weakref.WeakKeyDictionary[IntakePorts, tuple[asyncio.AbstractEventLoop, GroupCommit[
    _Publishing, _Written | None]]] = weakref.WeakKeyDictionary()


def _flusher(rt: IntakePorts) -> GroupCommit[_Publishing, _Written | None]:
    loop = asyncio.get_running_loop()
    held = _flushers.get(rt)
    if held is None or held[0] is not loop:
        async def flush(group: Sequence[_Publishing]) -> list[BaseException | _Written | None]:
            return await _flush(rt, group)

        held = _flushers[rt] = (loop, GroupCommit(flush, max_items=FLUSH_MAX_REQUESTS))
    return held[1]


async def _flush(rt: IntakePorts, group: Sequence[_Publishing]) -> list[BaseException | _Written | None]:
    """Publish the group's messages and audit records; start the register writes of those that have any. Each
    request's answer: None (nothing to write: its 202), its writes to wait for, or KafkaUnavailable: Kafka failing
    fails every request of the flush (503), and none of their register writes is made.

    The writes run in a task of their own, not in the flush: the next flush does not wait for them, so a request
    about known children is never held behind another's write waiting on a locked register (as before flushes,
    when each request wrote in its own hop; tests/integration/test_intake_register_writes.py)."""
    flush = plan_flush([p.plan for p in group], [p.learns_facts for p in group])
    try:
        await _publish(rt, flush.messages, flush.audits)
    except (KafkaError, TimeoutError) as exc:
        rt.metrics.kafka_unavailable.inc(len(group))  # counted per request refused, as before flushes
        reason = f"Kafka did not acknowledge ({type(exc).__name__})"
        return [_kafka_unavailable(reason, exc) for _ in group]
    answers: list[BaseException | _Written | None] = [None] * len(group)
    if flush.writes:  # else no hop: nothing to write
        writes = asyncio.create_task(blocking(_after_flush, rt, [group[i] for i in flush.writes]))
        _writing.add(writes)  # held until done: the loop keeps only a weak reference to a task
        writes.add_done_callback(_writing.discard)
        for position, i in enumerate(flush.writes):
            answers[i] = _Written(writes, position)
    return answers


def _kafka_unavailable(reason: str, cause: BaseException) -> KafkaUnavailable:
    """One exception per request (each is raised in its own request's task, with its own traceback)."""
    error = KafkaUnavailable(reason)
    error.__cause__ = cause
    return error


async def _publish(rt: IntakePorts, messages: Sequence[Outgoing], audits: Sequence[dict[str, Any]]) -> None:
    """Send every message, wait for Kafka's acknowledgement of all, then the audit records (which say so)."""
    async with asyncio.timeout(PUBLISH_TIMEOUT_S):
        sends = [await rt.producer.send(m.topic, m.value, key=m.key, headers=list(m.headers) or None)
                 for m in messages]
        with rt.metrics.time("publish"):
            await asyncio.gather(*sends)
        await rt.emit_audit(list(audits))


def _after_flush(rt: IntakePorts, group: Sequence[_Publishing]) -> list[BaseException | None]:
    """The register writes of a flush's requests, each request's on its own and in the flush's order (blocking):
    one request's failed write (a register locked past its timeout...) is that request's error alone."""
    failed: list[BaseException | None] = []
    for p in group:
        try:
            _after_publish(rt, p.plan, p.resolved, p.at)
        except Exception as exc:  # answered to its own request, as when each request wrote alone
            failed.append(exc)
        else:
            failed.append(None)
    return failed


def _apply_registers(rt: IntakePorts, plan: IntakePlan, at: str) -> None:
    """Write the links, carry consent over a merge (their audit records went with the request's)."""
    if not writes_registers(plan):
        return
    rt.identities.apply(plan.links, at)
    for absorbed, into in plan.consent_folds:
        rt.consent.fold(absorbed, into=into)


def _count_links(rt: IntakePorts, plan: IntakePlan) -> None:
    """The identity metrics of the request's resolutions (on the loop: counting is not I/O)."""
    for resolution in plan.links:
        if resolution.conflict:
            rt.metrics.identity.labels("conflict").inc()
        elif resolution.merged or resolution.links:
            rt.metrics.identity.labels("merged" if resolution.merged else "linked").inc()
