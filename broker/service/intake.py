"""HTTP intake's shell: run the pure intake, then publish events and dead letters, acknowledged by Kafka first."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError

from adapters.kit.interface import AdaptContext, Rejection
from broker.clock import now_iso
from broker.crypto import CryptoError
from broker.logging import get_logger
from broker.pipeline.deadletter import deadletter_record
from broker.pipeline.identify import Identity
from broker.pipeline.intake import prepare
from broker.pipeline.resolve import Resolution, audit_fields, resolve_events
from broker.service.messages import encode, event_headers

if TYPE_CHECKING:
    from broker.service.runtime import Runtime

PUBLISH_TIMEOUT_S = 15.0
log = get_logger("mash.intake")


class KeysUnavailable(RuntimeError):
    """A key needed to encrypt was missing or its KMS unreachable: 503, nothing accepted, never plaintext."""


class KafkaUnavailable(RuntimeError):
    """Kafka did not acknowledge in time: the caller gets 503 and must resend (nothing was acknowledged)."""


@dataclass(slots=True)
class IntakeResult:
    adapter: str | None
    event_ids: list[str] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    deadletter_ids: list[str] = field(default_factory=list)


async def ingest(rt: Runtime, agency: str, data: bytes, *, content_type: str | None, system: str | None,
                 actor: str, source: str = "request") -> IntakeResult:
    received_at = now_iso()
    ctx = AdaptContext(source=source, received_at=received_at, system=system,
                       attendance_threshold=rt.settings.attendance_threshold)
    with rt.metrics.time("prepare"):
        prepared = prepare(agency, data, ctx, rt.linkage, content_type=content_type)
    result = IntakeResult(prepared.adapter, rejections=prepared.rejections)
    content_hash = hashlib.sha256(data).hexdigest()
    common = {"time": received_at, "actor": actor, "agency": agency, "system": system}
    audits: list[dict[str, Any]] = [rt.audit_record("record_received", **common, size=len(data),
                                                    content_sha256=content_hash, adapter=prepared.adapter)]
    if prepared.events:
        audits.append(rt.audit_record("record_adapted", **common, adapter=prepared.adapter,
                                      count=len(prepared.events), content_sha256=content_hash))
    events, resolutions = _resolve(rt, prepared.events, prepared.identities)
    try:
        with rt.metrics.time("protect"):
            protected = [(event, rt.protect(event)) for event in events]
            sealed_input = rt.seal_deadletter_input(data, content_hash) if prepared.rejections else ""
    except CryptoError as exc:  # fail closed: never plaintext; the sender resends once keys are back
        rt.metrics.key_failures.inc()
        await _deadletter_unkept_input(rt, agency, system, content_type, received_at, content_hash, source, exc)
        raise KeysUnavailable(f"encryption keys unavailable ({type(exc).__name__}); nothing was accepted") from None
    topics = rt.settings.topics
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            sends = []
            for event, sealed in protected:
                token = event["subject"]["linkage"]["token"]
                sends.append(await rt.producer.send(topics.events, encode(sealed), key=token.encode(),
                                                    headers=event_headers(event)))
                result.event_ids.append(event["event_id"])
                result.event_types.append(event["event_type"])
                audits.append(rt.audit_record("event_published", **common, event_id=event["event_id"],
                                              event_type=event["event_type"], subject=token,
                                              content_sha256=content_hash))
            for rejection in prepared.rejections:
                record = deadletter_record(rejection, agency=agency, system=system, content_type=content_type,
                                           received_at=received_at, content_sha256=content_hash,
                                           sealed_input=sealed_input)
                sends.append(await rt.producer.send(topics.deadletter, encode(record),
                                                    key=record["deadletter_id"].encode()))
                result.deadletter_ids.append(record["deadletter_id"])
                where = {"position": rejection.record or None, "field": rejection.field or None}
                audits.append(rt.audit_record("record_rejected", **common, adapter=prepared.adapter,
                                              reason=rejection.reason, content_sha256=content_hash, **where))
                audits.append(rt.audit_record("deadlettered", **common, deadletter_id=record["deadletter_id"],
                                              reason=rejection.reason, content_sha256=content_hash, **where))
            with rt.metrics.time("publish"):
                await asyncio.gather(*sends)
            # only once Kafka holds the events, person.linked included
            audits += _record_links(rt, resolutions, received_at, **common, content_sha256=content_hash)
            await rt.emit_audit(audits)
    except (KafkaError, TimeoutError) as exc:
        rt.metrics.kafka_unavailable.inc()
        raise KafkaUnavailable(f"Kafka did not acknowledge ({type(exc).__name__})") from exc
    rt.metrics.observe_intake(agency, len(result.event_ids), result.rejections)
    return result


def _resolve(rt: Runtime, events: list[dict[str, Any]],
             ids: list[list[Identity]]) -> tuple[list[dict[str, Any]], list[tuple[str, Resolution]]]:
    """The events under the tokens the identity register gives their children (see broker/pipeline/resolve.py)."""
    if not events:
        return events, []
    with rt.metrics.time("resolve"):
        known = rt.identities.known(identity.token for event_ids in ids for identity in event_ids)
        return resolve_events(events, ids, known)


def _record_links(rt: Runtime, resolved: list[tuple[str, Resolution]], at: str,
                  **common: Any) -> list[dict[str, Any]]:
    """Write the links, carry consent over a merge, count; the `identity_linked` audit records to emit."""
    rt.identities.apply((resolution for _, resolution in resolved), at)
    audits = []
    for event_id, resolution in resolved:
        if resolution.conflict:
            rt.metrics.identity.labels("conflict").inc()
        elif resolution.merged or resolution.links:
            rt.metrics.identity.labels("merged" if resolution.merged else "linked").inc()
        for absorbed in resolution.merged:
            rt.consent.fold(absorbed, into=resolution.token)
        audits += [rt.audit_record("identity_linked", **common, event_id=event_id, **fields)
                   for fields in audit_fields(resolution)]
    return audits


async def _deadletter_unkept_input(rt: Runtime, agency: str, system: str | None, content_type: str | None,
                                   received_at: str, content_hash: str, source: str, exc: Exception) -> None:
    """Record the refusal on the dead-letter topic; the input itself is not kept, since it could not be sealed."""
    rejection = Rejection(source, "", "", f"encryption key unavailable ({type(exc).__name__}): input not kept, "
                          "the sender must resend")
    record = deadletter_record(rejection, agency=agency, system=system, content_type=content_type,
                               received_at=received_at, content_sha256=content_hash, sealed_input="")
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await (await rt.producer.send(rt.settings.topics.deadletter, encode(record),
                                          key=record["deadletter_id"].encode()))
    except (KafkaError, TimeoutError):
        log.error("deadletter_unavailable", reason=rejection.reason)
