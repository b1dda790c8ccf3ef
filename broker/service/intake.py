"""HTTP intake's shell: read the input off the event loop, plan every message of the request, then publish.

All or nothing per request, as far as the answer goes. Every event, dead-letter message and audit record of a
request is built, encrypted, sealed, validated and measured against Kafka's message limit BEFORE the first one is
sent; anything that cannot make a valid audit record becomes a value-free rejection, an input too large to keep as
a dead letter is refused (413) with nothing published. So once sending starts, only Kafka itself can fail: the
answer is 202 when Kafka acknowledged every message, else 503 and nothing is acknowledged. Without Kafka
transactions (the embedded broker has none) a failure half way can leave some of the request's messages on their
topics; the sender's resend carries the same deterministic event and dead-letter ids and is deduplicated downstream.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from adapters.kit.interface import AdaptContext, Rejection
from broker.audit.record import AUDIT_SCHEMA, AuditRecordError
from broker.clock import now_iso
from broker.crypto import CryptoError, ErasedData
from broker.crypto.split_seal import seal_split, sealed_overhead
from broker.logging import get_logger
from broker.pipeline.deadletter import (
    bounded,
    deadletter_record,
    input_key,
    input_message,
    sealed_input_size,
)
from broker.pipeline.erasure import ERASED_RESEND
from broker.pipeline.identify import Identity
from broker.pipeline.intake import Prepared, prepare
from broker.pipeline.resolve import Resolution, audit_fields, resolve_events
from broker.schema.loader import load_schema
from broker.service.erasure import erasure_blocks
from broker.service.messages import encode, event_headers

if TYPE_CHECKING:
    from broker.service.runtime import Runtime

PUBLISH_TIMEOUT_S = 15.0
# Reading an input (adapt, link, validate) runs on worker threads so that /healthz and every other request keep
# being answered while a large body is parsed. Few threads: the work is CPU-bound and the GIL is shared, so more
# would not be faster, only let hostile inputs take more of the machine.
PREPARE_WORKERS = 2
PREPARE_MAX_PENDING = 256  # inputs waiting for or being read; beyond it 503 (overload, resend later)
PREPARE_TIME_LIMIT_S = 30.0  # an input that takes longer to read is refused (413): it is too big to take at once
DEFAULT_MESSAGE_LIMIT = 1_048_576  # aiokafka's max_request_size default, if the producer does not say
log = get_logger("mash.intake")


class KeysUnavailable(RuntimeError):
    """A key needed to encrypt was missing or its KMS unreachable: 503, nothing accepted, never plaintext."""


class KafkaUnavailable(RuntimeError):
    """Kafka did not acknowledge in time: the caller gets 503 and must resend (nothing was acknowledged)."""


class IntakeBusy(RuntimeError):
    """Too many inputs are being read at once: 503, nothing read, resend later."""


class InputRefused(ValueError):
    """The input as a whole cannot be taken within a limit (Kafka's message size, the read time): 413, nothing
    published but the audit of the refusal. The message names the limit, never a value."""

    def __init__(self, reason: str, result: IntakeResult) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result


@dataclass(slots=True)
class IntakeResult:
    adapter: str | None
    event_ids: list[str] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    deadletter_ids: list[str] = field(default_factory=list)
    refused: str | None = None  # "media_type" or "body" when no adapter read the input (see Prepared.refused)
    skipped: dict[str, int] = field(default_factory=dict)  # records left out as no safeguarding fact, by kind


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    """Everything one request will put on Kafka, built and checked before the first send."""

    result: IntakeResult
    messages: list[Outgoing] = field(default_factory=list)  # events, then the dead-letter input, then its records
    audits: list[dict[str, Any]] = field(default_factory=list)
    resolutions: list[tuple[str, Resolution]] = field(default_factory=list)


async def ingest(rt: Runtime, agency: str, data: bytes, *, content_type: str | None, system: str | None,
                 actor: str, source: str = "request") -> IntakeResult:
    received_at = now_iso()
    ctx = AdaptContext(source=source, received_at=received_at, system=system,
                       attendance_threshold=rt.settings.attendance_threshold)
    content_hash = hashlib.sha256(data).hexdigest()
    common = {"time": received_at, "actor": actor, "agency": agency, "system": system}
    try:
        with rt.metrics.time("prepare"):
            prepared = await _prepare_off_loop(agency, data, ctx, rt, content_type)
        if prepared is None:
            raise InputRefused(f"input took longer than {PREPARE_TIME_LIMIT_S:g} s to read: send it in smaller "
                               "files", IntakeResult(None))
        events, resolutions = _resolve(rt, prepared.events, prepared.identities)
        events, refused = erasure_blocks(rt, events, source)  # an erased child's old records: refused, never kept
        prepared.rejections.extend(refused)

        plan = _plan(rt, prepared, events, resolutions, data, content_hash, common,
                     content_type=content_type, source=source)
    except InputRefused as refused:  # nothing is published; the refusal itself is audited
        # the answer names the records' own rejections too (why they were rejected), then why nothing was kept
        refused.result.rejections = [*refused.result.rejections, Rejection(source, "", "", refused.reason)]
        await _audit_refusal(rt, refused.reason, refused.result.adapter, common, len(data), content_hash)
        raise
    await _publish(rt, plan)
    # the register learns the links only once Kafka holds the events, person.linked included
    _apply_links(rt, plan.resolutions, received_at)
    rt.metrics.observe_intake(agency, len(plan.result.event_ids), plan.result.rejections)
    return plan.result


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


async def _prepare_off_loop(agency: str, data: bytes, ctx: AdaptContext, rt: Runtime,
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


def _resolve(rt: Runtime, events: list[dict[str, Any]],
             ids: list[list[Identity]]) -> tuple[list[dict[str, Any]], list[tuple[str, Resolution]]]:
    """The events under the tokens the identity register gives their children (see broker/pipeline/resolve.py)."""
    if not events:
        return events, []
    with rt.metrics.time("resolve"):
        known = rt.identities.known(identity.token for event_ids in ids for identity in event_ids)
        return resolve_events(events, ids, known)


# --- planning: nothing is sent until every message is built and checked ------------------------------------------
@cache
def _audit_patterns() -> dict[str, re.Pattern[str]]:
    """The audit schema's own patterns for where and why, so a rejection is made recordable before it is used."""
    props = load_schema(AUDIT_SCHEMA)["properties"]
    return {name: re.compile(props[name]["pattern"].removeprefix("^").removesuffix("$"))
            for name in ("position", "field", "reason")}


UNRECORDABLE = "rejected; where or why cannot be named without quoting the input"


def recordable(rejection: Rejection) -> Rejection:
    """The rejection if the audit log can hold its position, field and reason; else a value-free stand-in that keeps
    what it can. Adapters name positions and schema paths only, so this is the backstop, not the rule."""
    p = _audit_patterns()
    ok_position = p["position"].fullmatch(rejection.record) is not None
    ok_field = p["field"].fullmatch(rejection.field) is not None
    ok_reason = bool(rejection.reason) and p["reason"].fullmatch(rejection.reason) is not None
    if ok_position and ok_field and ok_reason:
        return rejection
    return Rejection(rejection.source, rejection.record if ok_position else "",
                     rejection.field if ok_field else "", rejection.reason if ok_reason else UNRECORDABLE)


def message_limit(rt: Runtime) -> int:
    """The largest message the producer sends (its max_request_size): a larger one fails MessageSizeTooLargeError."""
    return int(getattr(rt.producer, "_max_request_size", DEFAULT_MESSAGE_LIMIT) or DEFAULT_MESSAGE_LIMIT)


def _fits(message: Outgoing, limit: int) -> bool:
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(message.key, message.value, message.headers) <= limit


def _plan(rt: Runtime, prepared: Prepared, events: list[dict[str, Any]], resolutions: list[tuple[str, Resolution]],
          data: bytes, content_hash: str, common: dict[str, Any], *, content_type: str | None,
          source: str) -> Plan:
    """Every message of the request, built and checked. Raises KeysUnavailable or InputRefused, and nothing else
    for any input: an audit record the schema refuses becomes a value-free rejection."""
    topics, limit = rt.settings.topics, message_limit(rt)
    result = IntakeResult(prepared.adapter, refused=prepared.refused, skipped=dict(prepared.skipped))
    plan = Plan(result)
    rejections = list(prepared.rejections)
    audits: list[dict[str, Any]] = []
    published: set[str] = set()
    try:
        with rt.metrics.time("protect"):
            for index, event in enumerate(events):
                token = event["subject"]["linkage"]["token"]
                try:
                    protected = rt.protect(event)
                except ErasedData:  # the keystore will not protect an erased child's old record again
                    rejections.append(Rejection(source, f"event {index} ({event['event_type']})", "", ERASED_RESEND))
                    continue
                message = Outgoing(topics.events, token.encode(), encode(protected), event_headers(event))
                try:
                    audit = rt.audit_record("event_published", **common, event_id=event["event_id"],
                                            event_type=event["event_type"], subject=token,
                                            content_sha256=content_hash)
                except AuditRecordError:
                    audit = None
                if audit is None or not _fits(message, limit):
                    why = "cannot be audited" if audit is None else f"larger than Kafka's {limit}-byte message limit"
                    rejections.append(Rejection(source, f"event {index} ({event['event_type']})", "",
                                                f"canonical event {why}"))
                    continue
                plan.messages.append(message)
                audits.append(audit)
                published.add(event["event_id"])
                result.event_ids.append(event["event_id"])
                result.event_types.append(event["event_type"])
    except CryptoError as exc:  # fail closed: never plaintext; the sender resends once keys are back
        rt.metrics.key_failures.inc()
        raise KeysUnavailable(f"encryption keys unavailable ({type(exc).__name__}); nothing was accepted") from None
    result.rejections = [recordable(r) for r in rejections]
    plan.resolutions = [(event_id, r) for event_id, r in resolutions if event_id in published]
    head = [rt.audit_record("record_received", **common, size=len(data), content_sha256=content_hash,
                            adapter=prepared.adapter)]
    if result.event_ids:
        head.append(rt.audit_record("record_adapted", **common, adapter=prepared.adapter,
                                    count=len(result.event_ids), content_sha256=content_hash))
    if result.rejections:
        audits += _plan_deadletters(rt, plan, prepared, events, data, content_hash, common,
                                    content_type=content_type, limit=limit)
    audits += [rt.audit_record("identity_linked", **common, event_id=event_id, content_sha256=content_hash, **f)
               for event_id, resolution in plan.resolutions for f in audit_fields(resolution)]
    plan.audits = head + audits
    return plan


def _plan_deadletters(rt: Runtime, plan: Plan, prepared: Prepared, events: list[dict[str, Any]], data: bytes,
                      content_hash: str, common: dict[str, Any], *, content_type: str | None,
                      limit: int) -> list[dict[str, Any]]:
    """One sealed copy of the input, and bounded value-free records that reference it; their audit records."""
    result, agency, system, received_at = plan.result, common["agency"], common["system"], common["time"]
    if any(r.reason == ERASED_RESEND for r in result.rejections):
        kept_as: str | None = ""  # it holds an erased child's old record: not kept at all (broker/pipeline/erasure.py)
    else:
        plan.messages.append(_sealed_input(rt, prepared, events, data, content_hash, common,
                                           content_type=content_type, limit=limit, rejections=result.rejections))
        kept_as = None  # the records reference the sealed input by its hash
    listed, summary = bounded(result.rejections, result.rejections[0].source)
    audits: list[dict[str, Any]] = []
    for rejection in [*listed, *([summary] if summary else [])]:
        record = deadletter_record(rejection, agency=agency, system=system, content_type=content_type,
                                   received_at=received_at, content_sha256=content_hash, sealed_input=kept_as)
        audits += _rejection_audits(rt, rejection, record["deadletter_id"], common, prepared.adapter, content_hash)
        plan.messages.append(Outgoing(rt.settings.topics.deadletter, record["deadletter_id"].encode(),
                                      encode(record)))
        result.deadletter_ids.append(record["deadletter_id"])
    return audits


def _sealed_input(rt: Runtime, prepared: Prepared, events: list[dict[str, Any]], data: bytes, content_hash: str,
                  common: dict[str, Any], *, content_type: str | None, limit: int,
                  rejections: list[Rejection]) -> Outgoing:
    """The request's one dead-letter input message: the input sealed so that it opens only while the dead-letter
    scope and every child its events name keep their keys (broker/crypto/split_seal.py), with those children's
    tokens beside it so that reprocessing can refuse it after an erasure without opening it."""
    tokens = _input_tokens(prepared, events)
    erased = rt.erasures.erased_at(tokens) if rt.erasures is not None and tokens else {}
    # a child already erased gets no share: its scope must not be given new keys
    share_scopes = [t for t in tokens if t not in erased]
    overhead = sealed_overhead(len(share_scopes)) + 80 * len(tokens)
    if sealed_input_size(len(data), overhead) > limit:
        most = max(0, (limit - overhead - 1024) * 3 // 4 - 28)
        raise InputRefused(f"input has rejected records and is {len(data)} bytes: a dead letter keeps at most about "
                           f"{most} bytes of input (Kafka's {limit}-byte message limit); split it into smaller "
                           "files and resend", IntakeResult(prepared.adapter, rejections=list(rejections)))
    try:
        sealed = seal_split(data, f"deadletter:{content_hash}", rt.keys, share_scopes)
    except CryptoError as exc:
        rt.metrics.key_failures.inc()
        raise KeysUnavailable(f"encryption keys unavailable ({type(exc).__name__}); nothing was accepted") from None
    kept = Outgoing(rt.settings.topics.deadletter, input_key(content_hash), encode(input_message(
        content_sha256=content_hash, agency=common["agency"], system=common["system"], content_type=content_type,
        received_at=common["time"], size=len(data), tokens=tokens, sealed=sealed)))
    if not _fits(kept, limit):  # the estimate has room to spare; this is the exact check
        raise InputRefused(f"input has rejected records and, sealed, exceeds Kafka's {limit}-byte message limit: "
                           "split it into smaller files and resend",
                           IntakeResult(prepared.adapter, rejections=list(rejections)))
    return kept


def _input_tokens(prepared: Prepared, events: Sequence[dict[str, Any]]) -> list[str]:
    """The children the input's events name, one token each: the token each event is published under (the
    identity register's, which an erasure shreds with all the child's aliases), and the token of each event the
    schema refused. One per child keeps the seal small: a share costs ~200 bytes of the message limit."""
    found = {event["subject"]["linkage"]["token"] for event in events}
    return sorted(found | set(prepared.rejected_tokens))


def _rejection_audits(rt: Runtime, rejection: Rejection, deadletter_id: str, common: dict[str, Any],
                      adapter: str | None, content_hash: str) -> list[dict[str, Any]]:
    def build(r: Rejection) -> list[dict[str, Any]]:
        where = {"position": r.record or None, "field": r.field or None}
        return [rt.audit_record("record_rejected", **common, adapter=adapter, reason=r.reason,
                                content_sha256=content_hash, **where),
                rt.audit_record("deadlettered", **common, deadletter_id=deadletter_id, reason=r.reason,
                                content_sha256=content_hash, **where)]
    try:
        return build(rejection)
    except AuditRecordError:  # `recordable` should have caught it; never a 500 for it
        return build(Rejection(rejection.source, "", "", UNRECORDABLE))


async def _audit_refusal(rt: Runtime, reason: str, adapter: str | None, common: dict[str, Any], size: int,
                         content_hash: str) -> None:
    """The refused input's receipt and rejection in the audit log (the reasons are fixed texts with numbers)."""
    audits = [rt.audit_record("record_received", **common, size=size, content_sha256=content_hash, adapter=adapter),
              rt.audit_record("record_rejected", **common, adapter=adapter, reason=reason,
                              content_sha256=content_hash)]
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await rt.emit_audit(audits)
    except (KafkaError, TimeoutError) as exc:  # the refusal stands: it never depended on Kafka
        log.error("refusal_not_audited", reason=type(exc).__name__)


# --- publishing ----------------------------------------------------------------------------------------------------
async def _publish(rt: Runtime, plan: Plan) -> None:
    """Send every message, wait for Kafka's acknowledgement of all, then the audit records (which say so)."""
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            sends = [await rt.producer.send(m.topic, m.value, key=m.key, headers=m.headers or None)
                     for m in plan.messages]
            with rt.metrics.time("publish"):
                await asyncio.gather(*sends)
            await rt.emit_audit(plan.audits)
    except (KafkaError, TimeoutError) as exc:
        rt.metrics.kafka_unavailable.inc()
        raise KafkaUnavailable(f"Kafka did not acknowledge ({type(exc).__name__})") from exc


def _apply_links(rt: Runtime, resolved: list[tuple[str, Resolution]], at: str) -> None:
    """Write the links, carry consent over a merge, count (their audit records went with the request's)."""
    if not resolved:
        return
    rt.identities.apply((resolution for _, resolution in resolved), at)
    for _, resolution in resolved:
        if resolution.conflict:
            rt.metrics.identity.labels("conflict").inc()
        elif resolution.merged or resolution.links:
            rt.metrics.identity.labels("merged" if resolution.merged else "linked").inc()
        for absorbed in resolution.merged:
            rt.consent.fold(absorbed, into=resolution.token)

