"""Reads by Kafka subscribers, on real Apache Kafka: a consumer group that reads its delivery topic and commits is
audited as having read (a `delivery_read_up_to` record), so the disclosures and the child's timeline say "read"; a
group that reads without committing told Kafka nothing and does not count. Not on the embedded Tansu: its answer to
the group listing cannot be read (broker/service/kafka_reads.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from broker.kafka.clients import ISOLATION
from tests.integration.service import running_service

pytestmark = pytest.mark.integration


async def _read(bootstrap: str, topic: str, group: str, *, commit: bool) -> int:
    """Read the topic as consumer group `group` until a record arrives; commit or not. Returns records read."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level=ISOLATION)
    await consumer.start()
    try:
        got = 0
        for _ in range(200):
            batch = await consumer.getmany(timeout_ms=200)
            got += sum(len(v) for v in batch.values())
            if got:
                break
        if commit:
            await consumer.commit()
        return got
    finally:
        await consumer.stop()


async def _until(check, attempts: int = 300):
    for _ in range(attempts):
        found = check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def test_a_committing_group_reads_and_a_peeking_group_does_not(kafka_bootstrap, external_cases, tmp_path):
    body = (external_cases / "health" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes()
    async with running_service(tmp_path, kafka_bootstrap, kafka_reads_interval_seconds=0.2) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+xml"}))
        assert r.status_code == 202, r.text
        store = svc.runtime.audit_store
        topic = svc.settings.topics.deliver("test_hub")
        [sent] = await _until(lambda: store.search(kind="delivered", subscriber="test_hub"))
        delivered = sent["record"]
        # the delivered record says where the delivery went: what a committed offset covers
        assert (delivered["topic"], delivered["partition"]) == (topic, 0) and delivered["offset"] >= 0
        [before] = store.disclosures(subscriber="test_hub")
        assert before.read_at is None

        assert await _read(kafka_bootstrap, topic, "peeker-without-commit", commit=False) == 1
        assert await _read(kafka_bootstrap, topic, "hub-reader", commit=True) == 1

        [read] = await _until(lambda: [d for d in store.disclosures(subscriber="test_hub") if d.read_at])
        assert read.read_via == "kafka" and read.read_at >= delivered["time"]
        ups = store.search(kind="delivery_read_up_to", subscriber="test_hub")
        # the peeking group had finished before the committing one started, and the poller saw the latter: a
        # group that never committed has no offset to find
        assert {u["record"]["group"] for u in ups} == {"hub-reader"}
        [up] = ups
        # past the delivery (a transaction's commit marker after it takes an offset too)
        assert up["record"]["offset"] > delivered["offset"] and up["record"]["topic"] == topic

        # the child's timeline shows the Kafka read of its delivery
        timeline = store.timeline(delivered["subject"])
        assert [e["record"]["group"] for e in timeline if e["record"]["kind"] == "delivery_read_up_to"] == [
            "hub-reader"]

