"""Reprocessing a dead letter: find it on the dead-letter topic, open its sealed input, run intake again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.kafka.scan import scan_topic
from broker.service.intake import IntakeResult, ingest
from broker.service.messages import decode

if TYPE_CHECKING:
    from broker.service.runtime import Runtime


class DeadLetterNotFound(LookupError):
    pass


async def find_deadletter(rt: Runtime, deadletter_id: str) -> dict[str, Any]:
    """Scan the dead-letter topic for the record (newest wins). The topic is small and read rarely."""
    found: dict[str, Any] | None = None
    async for record in scan_topic(rt.bootstrap, rt.settings.topics.deadletter, **rt.kafka_security):
        if record.key == deadletter_id.encode():
            found = decode(record.value)
    if found is None:
        raise DeadLetterNotFound(deadletter_id)
    return found


async def reprocess(rt: Runtime, deadletter_id: str, actor: str) -> IntakeResult:
    """Run the dead letter's original input through intake again (after an adapter fix or a protocol change)."""
    record = await find_deadletter(rt, deadletter_id)
    if record.get("agency") not in ("police", "health", "education", "social_care"):
        raise DeadLetterNotFound(f"{deadletter_id} is a worker dead letter (no agency input to reprocess)")
    data = rt.open_deadletter_input(record["input"], record["content_sha256"])
    result = await ingest(rt, record["agency"], data, content_type=record.get("content_type"),
                          system=record.get("system"), actor=actor, source=f"reprocess:{deadletter_id}")
    await rt.emit_audit([rt.audit_record("admin_action", time=record["received_at"], actor=actor,
                                         action="deadletter.reprocess", target=deadletter_id,
                                         count=len(result.event_ids))])
    return result
