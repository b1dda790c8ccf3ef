"""Intake's decisions as pure functions: a request's prepared events and a snapshot of the register facts they need
-> every effect of the request, built and checked before anything is sent.

Two stages, because the second one's facts depend on the first one's answer:

- `resolve_intake(prepared, known)`: the events under the tokens the identity register gives their children, each
  `person.linked` just before the event that caused it (broker/pipeline/resolve.py). `known` is the register's view
  of the request's identities; it is not changed.
- `plan_intake(request, prepared, resolved, erasure, keys, params)`: erasure refusals, protection, audit records,
  dead letters and Kafka's message limit -> an `IntakePlan`: the messages to publish, in order; the audit records;
  the identity-register writes and consent folds to make once Kafka has the events; the answer to the caller. Or,
  when the input as a whole cannot be taken (a dead letter over Kafka's message limit), a refusal (413) whose only
  effect is its audit records.

Every message is built, encrypted, sealed, validated and measured against the limit here, so once the shell starts
sending only Kafka itself can fail: nothing is acknowledged before Kafka has it, nothing is published behind an error.
`keys` is the key handle: protection and sealing are pure functions of the keys and the data, so they happen here,
where a record that cannot be protected becomes a rejection instead of a half-published request. A key that cannot be
had raises CryptoError (the shell answers 503, nothing accepted); an erased child's old record is a rejection.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from adapters.kit.interface import Rejection
from broker.audit.record import AUDIT_SCHEMA, AuditRecordError, audit_record
from broker.crypto.envelope import seal, unsealed
from broker.crypto.errors import ErasedData
from broker.crypto.provider import KeyPreparer, KeyProvider
from broker.crypto.split_seal import seal_split, sealed_overhead
from broker.insight.facts import insight_facts
from broker.pipeline.deadletter import (
    bounded,
    deadletter_record,
    input_key,
    input_message,
    per_record,
    sealed_input_size,
    summary_reason,
)
from broker.pipeline.erasure import ERASED_RESEND, refuse_erased
from broker.pipeline.intake import Prepared
from broker.pipeline.messages import Outgoing, encode, event_headers
from broker.pipeline.resolve import Known, Resolution, audit_fields, resolve_events
from broker.schema.envelope import linkage_token
from broker.schema.loader import load_schema

DEFAULT_MESSAGE_LIMIT = 1_048_576  # aiokafka's max_request_size default, if the producer does not say
UNRECORDABLE = "rejected; where or why cannot be named without quoting the input"


@dataclass(slots=True)
class IntakeResult:
    """The answer to the caller (the HTTP body is built from it)."""

    adapter: str | None
    event_ids: list[str] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    deadletter_ids: list[str] = field(default_factory=list)
    refused: str | None = None  # "media_type" or "body" when no adapter read the input (see Prepared.refused)
    skipped: dict[str, int] = field(default_factory=dict)  # records left out as no safeguarding fact, by kind


@dataclass(frozen=True, slots=True)
class IntakeRequest:
    """What came in, and from whom: everything about the request the plan and its audit records name."""

    agency: str
    data: bytes = field(repr=False)
    received_at: str
    actor: str
    system: str | None = None
    content_type: str | None = None
    source: str = "request"  # "request", or "reprocess" for a dead letter taken again
    content_sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_sha256", hashlib.sha256(self.data).hexdigest())

    def common(self) -> dict[str, Any]:
        """The fields every audit record of the request carries."""
        return {"time": self.received_at, "actor": self.actor, "agency": self.agency, "system": self.system}


@dataclass(frozen=True, slots=True)
class IntakeParams:
    """Where the request's messages go, and the largest message the producer sends (its max_request_size)."""

    events_topic: str
    deadletter_topic: str
    message_limit: int = DEFAULT_MESSAGE_LIMIT


@dataclass(frozen=True, slots=True)
class Resolved:
    """The request's events under their children's tokens, and (event id, resolution) for the identity register."""

    events: tuple[dict[str, Any], ...]
    resolutions: tuple[tuple[str, Resolution], ...] = ()

    def tokens(self) -> set[str]:
        return {linkage_token(event) for event in self.events}


@dataclass(frozen=True, slots=True)
class ErasureFacts:
    """What the erasure register (and, for the newest events, the audit log) says of the request's children."""

    erased: Mapping[str, str] = field(default_factory=dict)  # token -> when it was erased, for the request's tokens
    received_before: frozenset[str] = frozenset()  # ids of the request's events received before their child's erasure


@dataclass(frozen=True, slots=True)
class IntakePlan:
    """Every effect of one request. The shell applies it in this order: publish `messages` and wait for every
    acknowledgement, then `audits`, then `links` and `consent_folds` (the register learns a link only once Kafka
    holds the events, `person.linked` included). With `refusal` set nothing is published but `audits`."""

    result: IntakeResult
    messages: tuple[Outgoing, ...] = ()  # events, then the dead-letter input, then its records
    audits: tuple[dict[str, Any], ...] = ()
    links: tuple[Resolution, ...] = ()  # identity-register writes, in order
    consent_folds: tuple[tuple[str, str], ...] = ()  # (absorbed token, surviving token), after a merge
    refusal: str | None = None  # why the input as a whole is refused (413); a fixed text with numbers, never a value


def resolve_intake(prepared: Prepared, known: Known) -> Resolved:
    """Stage one: the prepared events under their resolved tokens (`known` is copied, not changed)."""
    if not prepared.events:
        return Resolved(tuple(prepared.events))
    working = Known(dict(known.child_of), {child: dict(kinds) for child, kinds in known.members.items()})
    events, resolutions = resolve_events(prepared.events, prepared.identities, working)
    return Resolved(tuple(events), tuple(resolutions))


def erasure_tokens(prepared: Prepared, resolved: Resolved) -> set[str]:
    """The tokens whose erasure the plan needs to know: those the events go out under, and those of the events the
    schema refused (their dead letter's seal gets a share per child not erased)."""
    return resolved.tokens() | set(prepared.rejected_tokens)


def refused_plan(request: IntakeRequest, adapter: str | None, reason: str,
                 rejections: Sequence[Rejection] = ()) -> IntakePlan:
    """The input refused whole: the answer names the records' own rejections, then why nothing was kept; the audit
    log gets the receipt and the refusal."""
    common, digest = request.common(), request.content_sha256
    audits = (audit_record("record_received", **common, size=len(request.data), content_sha256=digest, adapter=adapter),
              audit_record("record_rejected", **common, adapter=adapter, reason=reason, content_sha256=digest))
    result = IntakeResult(adapter, rejections=[*rejections, Rejection(request.source, "", "", reason)])
    return IntakePlan(result, audits=audits, refusal=reason)


class _Refused(Exception):
    """Internal: the dead letter cannot be kept within Kafka's message limit."""


def plan_intake(request: IntakeRequest, prepared: Prepared, resolved: Resolved, erasure: ErasureFacts,
                keys: KeyProvider, params: IntakeParams) -> IntakePlan:
    """Stage two: every message of the request, built and checked. Raises CryptoError when a key cannot be had, and
    nothing else for any input: an audit record the schema refuses becomes a value-free rejection."""
    common, digest, limit = request.common(), request.content_sha256, params.message_limit
    events, erased_refusals = refuse_erased(resolved.events, erasure.erased, erasure.received_before, request.source)
    result = IntakeResult(prepared.adapter, refused=prepared.refused, skipped=dict(prepared.skipped))
    rejections = [*prepared.rejections, *erased_refusals]
    messages: list[Outgoing] = []
    audits: list[dict[str, Any]] = []
    published: set[str] = set()
    todo = [unsealed(event) for event in events]
    if isinstance(keys, KeyPreparer):  # the new children's keys made in one transaction, not one each
        keys.prepare_keys((t.scope, t.classifications, t.event_id) for t in todo)
    for index, (event, unsealed_event) in enumerate(zip(events, todo, strict=True)):
        where = f"event {index} ({event['event_type']})"
        token = linkage_token(event)
        try:
            protected = seal(unsealed_event, keys)
        except ErasedData:  # the keystore will not protect an erased child's old record again
            rejections.append(Rejection(request.source, where, "", ERASED_RESEND))
            continue
        message = Outgoing(params.events_topic, token.encode(), encode(protected), tuple(event_headers(event)))
        try:
            audit: dict[str, Any] | None = audit_record(
                "event_published", **common, event_id=event["event_id"], event_type=event["event_type"],
                subject=token, content_sha256=digest, insight=insight_facts(event))
        except AuditRecordError:
            audit = None
        if audit is None or not fits(message, limit):
            why = "cannot be audited" if audit is None else f"larger than Kafka's {limit}-byte message limit"
            rejections.append(Rejection(request.source, where, "", f"canonical event {why}"))
            continue
        messages.append(message)
        audits.append(audit)
        published.add(event["event_id"])
        result.event_ids.append(event["event_id"])
        result.event_types.append(event["event_type"])
    result.rejections = [recordable(r) for r in rejections]
    links = [(event_id, r) for event_id, r in resolved.resolutions if event_id in published]
    head = [audit_record("record_received", **common, size=len(request.data), content_sha256=digest,
                         adapter=prepared.adapter)]
    if result.event_ids:
        head.append(audit_record("record_adapted", **common, adapter=prepared.adapter, count=len(result.event_ids),
                                 content_sha256=digest))
    if result.rejections:
        try:
            kept, deadletter_audits = _deadletters(request, prepared, events, erasure, keys, params, result)
        except _Refused as refused:
            return refused_plan(request, prepared.adapter, str(refused), result.rejections)
        messages += kept
        audits += deadletter_audits
    audits += [audit_record("identity_linked", **common, event_id=event_id, content_sha256=digest, **f)
               for event_id, resolution in links for f in audit_fields(resolution)]
    folds = tuple((absorbed, r.token) for _, r in links for absorbed in r.merged)
    return IntakePlan(result, tuple(messages), (*head, *audits), tuple(r for _, r in links), folds)


# --- pieces ---------------------------------------------------------------------------------------------------------
@cache
def _audit_patterns() -> dict[str, re.Pattern[str]]:
    """The audit schema's own patterns for where and why, so a rejection is made recordable before it is used."""
    props = load_schema(AUDIT_SCHEMA)["properties"]
    return {name: re.compile(props[name]["pattern"].removeprefix("^").removesuffix("$"))
            for name in ("position", "field", "reason")}


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
                     rejection.field if ok_field else "", rejection.reason if ok_reason else UNRECORDABLE,
                     rejection.line)


def fits(message: Outgoing, limit: int) -> bool:
    """Whether Kafka takes the message: a larger one fails MessageSizeTooLargeError."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(message.key, message.value, list(message.headers))
    return size <= limit


def _deadletters(request: IntakeRequest, prepared: Prepared, events: Sequence[dict[str, Any]],
                 erasure: ErasureFacts, keys: KeyProvider, params: IntakeParams,
                 result: IntakeResult) -> tuple[list[Outgoing], list[dict[str, Any]]]:
    """One sealed copy of the input, and bounded value-free records that reference it; their audit records."""
    messages: list[Outgoing] = []
    if any(r.reason == ERASED_RESEND for r in result.rejections):
        kept_as: str | None = ""  # it holds an erased child's old record: not kept at all (broker/pipeline/erasure.py)
    else:
        messages.append(_sealed_input(request, prepared, events, erasure, keys, params))
        kept_as = None  # the records reference the sealed input by its hash
    # one dead letter per rejected input record, however many fields or events of it were refused
    listed, summary = bounded(per_record(result.rejections), result.rejections[0].source)
    audits: list[dict[str, Any]] = []
    for problems in [*listed, *([[summary]] if summary else [])]:
        rejection = problems[0]
        record = deadletter_record(rejection, agency=request.agency, system=request.system,
                                   content_type=request.content_type, received_at=request.received_at,
                                   content_sha256=request.content_sha256, sealed_input=kept_as, problems=problems)
        audits += _rejection_audits(request, replace(rejection, reason=summary_reason(problems)),
                                    record["deadletter_id"], prepared.adapter)
        messages.append(Outgoing(params.deadletter_topic, record["deadletter_id"].encode(), encode(record)))
        result.deadletter_ids.append(record["deadletter_id"])
    return messages, audits


def _sealed_input(request: IntakeRequest, prepared: Prepared, events: Sequence[dict[str, Any]],
                  erasure: ErasureFacts, keys: KeyProvider, params: IntakeParams) -> Outgoing:
    """The request's one dead-letter input message: the input sealed so that it opens only while the dead-letter
    scope and every child its events name keep their keys (broker/crypto/split_seal.py), with those children's
    tokens beside it so that reprocessing can refuse it after an erasure without opening it."""
    data, digest, limit = request.data, request.content_sha256, params.message_limit
    tokens = _input_tokens(prepared, events)
    share_scopes = [t for t in tokens if t not in erasure.erased]  # an erased child's scope gets no new keys
    overhead = sealed_overhead(len(share_scopes)) + 80 * len(tokens)
    if sealed_input_size(len(data), overhead) > limit:
        most = max(0, (limit - overhead - 1024) * 3 // 4 - 28)
        raise _Refused(f"input has rejected records and is {len(data)} bytes: a dead letter keeps at most about "
                       f"{most} bytes of input (Kafka's {limit}-byte message limit); split it into smaller files and "
                       "resend")
    sealed = seal_split(data, f"deadletter:{digest}", keys, share_scopes)
    kept = Outgoing(params.deadletter_topic, input_key(digest), encode(input_message(
        content_sha256=digest, agency=request.agency, system=request.system, content_type=request.content_type,
        received_at=request.received_at, size=len(data), tokens=tokens, sealed=sealed)))
    if not fits(kept, limit):  # the estimate has room to spare; this is the exact check
        raise _Refused(f"input has rejected records and, sealed, exceeds Kafka's {limit}-byte message limit: split "
                       "it into smaller files and resend")
    return kept


def _input_tokens(prepared: Prepared, events: Sequence[dict[str, Any]]) -> list[str]:
    """The children the input's events name, one token each: the token each event is published under (the
    identity register's, which an erasure shreds with all the child's aliases), and the token of each event the
    schema refused. One per child keeps the seal small: a share costs ~200 bytes of the message limit."""
    found = {linkage_token(event) for event in events}
    return sorted(found | set(prepared.rejected_tokens))


def _rejection_audits(request: IntakeRequest, rejection: Rejection, deadletter_id: str,
                      adapter: str | None) -> list[dict[str, Any]]:
    common, digest = request.common(), request.content_sha256

    def build(r: Rejection) -> list[dict[str, Any]]:
        position = r.position if len(r.position) <= 200 else r.record  # the line, where the audit schema has room
        where: dict[str, Any] = {"position": position or None, "field": r.field or None}
        return [audit_record("record_rejected", **common, adapter=adapter, reason=r.reason, content_sha256=digest,
                             **where),
                audit_record("deadlettered", **common, deadletter_id=deadletter_id, reason=r.reason,
                             content_sha256=digest, **where)]
    try:
        return build(rejection)
    except AuditRecordError:  # `recordable` should have caught it; never a 500 for it
        return build(Rejection(rejection.source, "", "", UNRECORDABLE))
