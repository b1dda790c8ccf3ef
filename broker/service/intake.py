"""HTTP intake's shell: run the pure intake, then publish events and dead letters, acknowledged by Kafka first."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError

from adapters.kit.interface import AdaptContext, Rejection
from broker.clock import now_iso
from broker.pipeline.deadletter import deadletter_record
from broker.pipeline.intake import prepare
from broker.service.messages import encode, event_headers

if TYPE_CHECKING:
    from broker.service.runtime import Runtime

PUBLISH_TIMEOUT_S = 15.0


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
    prepared = prepare(agency, data, ctx, rt.linkage, content_type=content_type)
    result = IntakeResult(prepared.adapter, rejections=prepared.rejections)
    content_hash = hashlib.sha256(data).hexdigest()
    audits: list[dict[str, Any]] = [rt.audit_record(
        "record_received", time=received_at, actor=actor, agency=agency, system=system, size=len(data),
        content_sha256=content_hash, adapter=prepared.adapter)]
    topics = rt.settings.topics
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            sends = []
            for event in prepared.events:
                token = event["subject"]["linkage"]["token"]
                protected = rt.protect(event)
                sends.append(await rt.producer.send(topics.events, encode(protected), key=token.encode(),
                                                    headers=event_headers(event)))
                result.event_ids.append(event["event_id"])
                result.event_types.append(event["event_type"])
                audits.append(rt.audit_record(
                    "event_published", time=received_at, actor=actor, agency=agency, system=system,
                    event_id=event["event_id"], event_type=event["event_type"], subject=token,
                    content_sha256=content_hash))
            for rejection in prepared.rejections:
                record = deadletter_record(rejection, agency=agency, system=system, content_type=content_type,
                                           received_at=received_at, content_sha256=content_hash,
                                           sealed_input=rt.seal_deadletter_input(data, content_hash))
                sends.append(await rt.producer.send(topics.deadletter, encode(record),
                                                    key=record["deadletter_id"].encode()))
                result.deadletter_ids.append(record["deadletter_id"])
                audits.append(rt.audit_record(
                    "deadlettered", time=received_at, actor=actor, agency=agency, system=system,
                    deadletter_id=record["deadletter_id"], reason=str(rejection.reason),
                    position=rejection.record, field=rejection.field, content_sha256=content_hash))
            await asyncio.gather(*sends)
            await rt.emit_audit(audits)
    except (KafkaError, TimeoutError) as exc:
        rt.metrics.kafka_unavailable.inc()
        raise KafkaUnavailable(f"Kafka did not acknowledge ({type(exc).__name__})") from exc
    rt.metrics.observe_intake(agency, len(result.event_ids), result.rejections)
    return result
