"""A slow subscriber gets backpressure, not a memory blow-up: pulls are bounded by `limit`, the SSE stream reads the
topic in pages and stops reading while the client is not reading."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from broker.kafka.clients import producer
from tests.integration.service import running_service

pytestmark = pytest.mark.integration

BACKLOG = 600
SEALED_BYTES = 20_000  # ~12 MB of backlog: more than the socket buffers between the service and a stalled client


async def _backlog(bootstrap: str, topic: str) -> None:
    """Sealed-size deliveries straight onto the subscriber's topic (only the read path is under test here)."""
    p = producer(bootstrap)
    await p.start()
    try:
        sends = [await p.send(topic, b"s" * SEALED_BYTES, key=b"lt1_backlog",
                              headers=[("event_id", str(uuid.uuid4()).encode()), ("decision_id", b"d"),
                                       ("protocol_version", b"1")]) for _ in range(BACKLOG)]
        await asyncio.gather(*sends)
    finally:
        await p.stop()


async def test_slow_subscriber_reads_in_bounded_pages(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        await _backlog(kafka_bootstrap, svc.settings.topics.deliver("test_hub"))
        reads: list[tuple[int, int]] = []  # (limit asked, records returned) for every read of the topic
        reader = svc.runtime.delivery_reader
        original = reader.read

        async def recording_read(topic, cursor, limit):
            records, position = await original(topic, cursor, limit)
            reads.append((limit, len(records)))
            return records, position

        reader.read = recording_read
        url = f"{svc.base_url}/v1/subscribers/test_hub"
        auth = svc.headers("subscriber:test_hub")

        r = await http.get(f"{url}/events", params={"limit": 5}, headers=auth)
        assert r.status_code == 200 and len(r.json()["deliveries"]) == 5
        r2 = await http.get(f"{url}/events", params={"limit": 5, "after": r.json()["next_cursor"]}, headers=auth)
        assert [d["offset"] for d in r2.json()["deliveries"]] == [5, 6, 7, 8, 9]
        assert (await http.get(f"{url}/events", params={"limit": 1001}, headers=auth)).status_code == 422
        assert reads == [(5, 5), (5, 5)]

        reads.clear()
        async with http.stream("GET", f"{url}/stream", headers=auth) as stream:
            lines = stream.aiter_lines()
            got = 0
            while got < 3:
                if (await anext(lines)).startswith("event: delivery"):
                    got += 1
            await asyncio.sleep(1.5)  # the subscriber stalls
            read_while_stalled = sum(n for _, n in reads)
        assert reads and all(limit == 100 and n <= 100 for limit, n in reads)
        assert read_while_stalled < BACKLOG  # the stream did not slurp the whole backlog into memory
