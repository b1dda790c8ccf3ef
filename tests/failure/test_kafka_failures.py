"""Kafka failing under the service: paused at intake (503, nothing acknowledged that is not stored), the embedded
broker dying (readyz says so), and a poison message on the events topic (dead-lettered, the stream goes on)."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest

import broker.service.intake as service_intake
from broker.bench.records import fhir_patient
from broker.kafka.apache import unavailable_reason
from broker.kafka.clients import producer
from broker.kafka.embedded import EmbeddedKafka
from broker.service.messages import decode, header
from tests.integration.service import running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.mark.tansu  # SIGSTOPs the embedded Tansu it starts
async def test_kafka_unreachable_at_intake_gives_503_and_acknowledges_only_what_is_stored(tmp_path, monkeypatch):
    monkeypatch.setattr(service_intake, "PUBLISH_TIMEOUT_S", 2.0)  # the caller waits 2 s, not 15, in this test
    with EmbeddedKafka() as kafka:
        async with running_service(tmp_path, kafka.bootstrap_servers) as svc, httpx.AsyncClient(timeout=30) as http:
            headers = svc.headers("intake:health", **FHIR)

            async def post(n: int) -> httpx.Response:
                return await http.post(f"{svc.base_url}/v1/records/health", content=fhir_patient(n), headers=headers)

            before = [await post(n) for n in range(5)]
            assert [r.status_code for r in before] == [202] * 5
            os.kill(kafka.pid, signal.SIGSTOP)  # Kafka stops answering: sockets open, nothing acknowledged
            try:
                during = await asyncio.gather(*(post(n) for n in range(5, 10)))
            finally:
                os.kill(kafka.pid, signal.SIGCONT)
            assert {r.status_code for r in during} == {503}
            assert all(r.headers["retry-after"] == "5" for r in during)
            assert "did not acknowledge" in during[0].json()["detail"]
            after = [await post(n) for n in range(10, 13)]
            assert [r.status_code for r in after] == [202] * 3
            assert svc.runtime.metrics.kafka_unavailable._value.get() == 5

            acknowledged = {e["event_id"] for r in before + after for e in r.json()["events"]}
            stored = {header(m.headers, "event_id") for m in await read_topic(svc.runtime.bootstrap,
                                                                             svc.settings.topics.events)}
            assert acknowledged <= stored  # every 202 is on the events topic


@pytest.mark.parametrize("local", [pytest.param("tansu", marks=pytest.mark.tansu), "apache"])
async def test_embedded_broker_dying_is_reported_plainly_by_readyz(tmp_path, monkeypatch, local):
    """The Kafka the service started itself (no KAFKA_BOOTSTRAP_SERVERS) dies: /readyz says so (503) and intake
    refuses rather than acknowledging what it cannot store; on the embedded Tansu and on the local Apache Kafka."""
    if local == "apache" and (reason := unavailable_reason()):
        pytest.skip(f"Apache Kafka unavailable: {reason}")
    monkeypatch.setattr(service_intake, "PUBLISH_TIMEOUT_S", 2.0)
    monkeypatch.setenv("MASH_LOCAL_KAFKA", local)
    async with running_service(tmp_path, None) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{svc.base_url}/readyz")
        assert r.status_code == 200, r.text
        if local == "tansu":
            assert svc.runtime.embedded is not None and svc.runtime.local_kafka is None
            assert r.json()["kafka_in_use"].startswith("the embedded Tansu")
            svc.runtime.embedded.process.send_signal(signal.SIGKILL)
            svc.runtime.embedded.process.wait(5)
        else:
            assert svc.runtime.local_kafka is not None and svc.runtime.embedded is None
            assert r.json()["kafka_in_use"].startswith("Apache Kafka ")
            svc.runtime.local_kafka.kill(1)
        r = await http.get(f"{svc.base_url}/readyz")
        assert r.status_code == 503
        assert r.json()["status"] == "not ready"
        assert r.json()["checks"]["kafka"].startswith("embedded broker has exited" if local == "tansu" else
                                                      "the local Apache Kafka has exited")
        # intake says Kafka is unavailable rather than accepting what it cannot store
        r = await http.post(f"{svc.base_url}/v1/records/health", content=fhir_patient(1),
                            headers=svc.headers("intake:health", **FHIR))
        assert r.status_code == 503


async def test_poison_message_is_dead_lettered_and_the_stream_continues(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        topics = svc.settings.topics
        p = producer(kafka_bootstrap)
        await p.start()
        try:
            for poison in (b"\x00\xffnot json", b'{"event_id": "x"}', b"[]"):
                await p.send_and_wait(topics.events, poison, key=b"lt1_poison")
        finally:
            await p.stop()
        r = await http.post(f"{svc.base_url}/v1/records/health", content=fhir_patient(42),
                            headers=svc.headers("intake:health", **FHIR))
        assert r.status_code == 202, r.text
        [accepted] = r.json()["events"]
        [delivered] = await svc.pull_until(http, "test_hub", 1)  # the stream went on past the poison
        assert delivered["event_id"] == accepted["event_id"]

        letters = [decode(m.value) for m in await read_topic(kafka_bootstrap, topics.deadletter)]
        poisoned = [d for d in letters if d["agency"] == "unknown"]
        assert len(poisoned) == 3
        for letter in poisoned:
            assert letter["rejection"]["source"].startswith(f"{topics.events}/")
            assert letter["rejection"]["reason"].startswith("undecodable event")
            assert letter["deadletter_id"]
            assert b"not json" not in letter["input"].encode()  # the input is sealed
        assert svc.runtime.metrics.poison._value.get() == 3
        assert svc.runtime.workers_alive()
