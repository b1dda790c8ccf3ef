"""Audit records out to the audit topic, and the KMS unwraps they must carry.

The keystore is opened before Kafka (a bad key is reported before anything connects), so the unwraps it reports
are queued (`UnwrapAudit`) and sent with the next batch the emitter sends.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiokafka import AIOKafkaProducer

from broker.audit import audit_record
from broker.clock import now_iso
from broker.pipeline.messages import encode
from broker.service.metrics import Metrics

AUDIT_CHUNK = 200  # records per audit message: well under Kafka's default 1 MB message limit


class UnwrapAudit:
    """The keystore's on_unwrap hook: every KMS unwrap is counted and audit-logged with the event that needed it."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # unwraps happen in worker threads (broker/aio.py), take() on the loop

    def __call__(self, key_id: str, scope: str, reason: str) -> None:
        self._metrics.key_unwraps.inc()
        event_id = reason.removeprefix("event ") if reason.startswith("event ") else None
        record = audit_record(
            "key_unwrap", time=now_iso(), actor="keystore", key_id=key_id,
            subject=scope if scope.startswith("lt") else None, event_id=event_id,
            target=None if scope.startswith("lt") else scope.split(":", 1)[0])
        with self._lock:
            self._pending.append(record)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self._pending = self._pending, []
        return taken


class AuditEmitter:
    """One message per call (a JSON array: one produce, not one per record); the indexer chains them into the audit
    store. A share worker passes its transactional producer: the audit of a batch commits, or aborts, with it."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, unwraps: UnwrapAudit) -> None:
        self._producer = producer
        self._topic = topic
        self._unwraps = unwraps

    async def emit(self, records: list[dict[str, Any]], producer: AIOKafkaProducer | None = None) -> None:
        out = producer or self._producer
        records = [*self._unwraps.take(), *records]
        sends = [await out.send(self._topic, encode(records[i:i + AUDIT_CHUNK]))
                 for i in range(0, len(records), AUDIT_CHUNK)]
        await asyncio.gather(*sends)
