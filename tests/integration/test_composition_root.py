"""The composition root (broker/service/root.py) on real Kafka: a start that fails half-way closes what it opened,
so a misconfigured start leaves no producer running behind its one-line error. Fictitious data only."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest

from broker.audit.store import AuditStoreError
from broker.config import Settings
from broker.kafka.clients import producer
from broker.service.root import load_local, open_kafka, open_runtime

FIXTURES = Path(__file__).parent / "fixtures"


def _running(before: set[asyncio.Task[object]]) -> list[str]:
    """Tasks started since `before` that still run (an AIOKafkaProducer keeps a sender task until it is stopped)."""
    return sorted(repr(t.get_coro()) for t in asyncio.all_tasks() - before if not t.done())


async def _settle() -> None:
    for _ in range(20):  # cancelled tasks finish on the next turns of the loop
        await asyncio.sleep(0.01)


async def test_a_start_failing_after_the_producer_started_stops_it(kafka_bootstrap: str, tmp_path: Path) -> None:
    before = set(asyncio.all_tasks())
    probe = producer(kafka_bootstrap)  # the detector sees a producer left running...
    await probe.start()
    assert _running(before)
    await probe.stop()
    await _settle()
    assert _running(before) == []  # ...and sees it gone once stopped

    protocol = shutil.copy(FIXTURES / "e2e-protocol.yaml", tmp_path / "e2e-protocol.yaml")
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, data_dir=tmp_path / "data", protocol_file=protocol,
                        dev_mode=True, topic_prefix=f"t{uuid.uuid4().hex[:8]}", event_partitions=1,
                        audit_url="mysql://audit.invalid/audit")  # refused after topics, producer and registers
    local = load_local(settings)
    kafka = await open_kafka(settings)
    with pytest.raises(AuditStoreError, match="audit URL"):
        await open_runtime(local, kafka)
    await _settle()
    assert _running(before) == []
    local.keys.close()
