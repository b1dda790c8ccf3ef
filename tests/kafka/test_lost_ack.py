"""A lost acknowledgement must not write an event twice (issue 24, brief G).

The fault, injected for real: a TCP proxy between our producer and the session's Apache Kafka node forwards every
request and every answer, except the first Produce answer, which it drops together with the connection, after the
broker has written the batch (a broker that wrote and then could not answer, a network cut on the way back). The
client cannot tell that from a request that never arrived, so it sends the batch again. Without idempotence the
broker writes it again; with it (producer id and sequence number) the broker answers the retry with the first
write's offset and writes nothing. Each test asserts that the fault really happened (the proxy saw the Produce twice
and dropped one answer), so it cannot pass because the fault missed.

The node's address in the answers that name it (Metadata, FindCoordinator) is rewritten to the proxy's, byte for
byte (same host, only the port's four bytes differ), so every connection the client opens after the bootstrap comes
through the proxy too. The topic is read back directly, past the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from broker.kafka import clients
from broker.kafka.admin import ensure_topics
from broker.kafka.clients import producer, start_producer
from broker.kafka.embedded import EmbeddedKafka
from broker.kafka.scan import scan_topic
from tests.integration.service import running_service

PRODUCE = 0  # the Kafka protocol's api key of Produce
FICTITIOUS = b'{"event_id": "lost-ack-test", "subject": "Fictitious Child"}'


class DropFirstProduceAnswer:
    """The proxy. Drops the answer of the first Produce request that writes to `topic` (set it when the fault is
    due: a service produces to other topics as it starts), and counts those requests and the answers dropped;
    nothing else is changed but the node's port in the answers that carry it."""

    def __init__(self, upstream: str, topic: str | None = None) -> None:
        host, port = upstream.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.topic = topic
        self.produce_requests = 0  # Produce requests to `topic` forwarded to the broker
        self.answers_dropped = 0
        self.addresses_rewritten = 0
        self._open: set[asyncio.Task[None]] = set()
        self._proxied = b""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._connection, self.host, 0)
        port = server.sockets[0].getsockname()[1]
        self._proxied = self.host.encode() + struct.pack(">i", port)
        try:
            yield f"{self.host}:{port}"
        finally:
            server.close()
            for task in list(self._open):
                task.cancel()
            await asyncio.gather(*self._open, return_exceptions=True)
            await server.wait_closed()

    @property
    def _node(self) -> bytes:
        return self.host.encode() + struct.pack(">i", self.port)  # a node's host string ends, its port follows

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        try:
            broker_r, broker_w = await asyncio.open_connection(self.host, self.port)
        except OSError:
            client_w.close()
            self._open.discard(task)
            return
        asked: dict[bytes, bool] = {}  # this connection's requests: correlation id -> whether it produces to `topic`
        pumps = [asyncio.create_task(self._requests(client_r, broker_w, asked)),
                 asyncio.create_task(self._answers(broker_r, client_w, asked))]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (client_w, broker_w):
                writer.close()
            self._open.discard(task)

    async def _requests(self, client: asyncio.StreamReader, broker: asyncio.StreamWriter,
                        asked: dict[bytes, bool]) -> None:
        while (frame := await _frame(client)) is not None:
            (api_key,) = struct.unpack_from(">h", frame)  # request header: api key, version, correlation id
            targeted = api_key == PRODUCE and self.topic is not None and self.topic.encode() in frame
            asked[frame[4:8]] = targeted
            self.produce_requests += targeted
            broker.write(struct.pack(">i", len(frame)) + frame)
            await broker.drain()

    async def _answers(self, broker: asyncio.StreamReader, client: asyncio.StreamWriter,
                       asked: dict[bytes, bool]) -> None:
        while (frame := await _frame(broker)) is not None:
            if asked.pop(frame[:4], False) and self.answers_dropped == 0:  # answer header: correlation id
                self.answers_dropped += 1
                return  # the batch is written; its acknowledgement goes nowhere, and the connection closes
            if self._node in frame:
                self.addresses_rewritten += 1
                frame = frame.replace(self._node, self._proxied)  # same length: no size field changes
            client.write(struct.pack(">i", len(frame)) + frame)
            await client.drain()


async def _frame(stream: asyncio.StreamReader) -> bytes | None:
    """One Kafka protocol frame (after its four-byte size), or None at the end of the connection."""
    try:
        (size,) = struct.unpack(">i", await stream.readexactly(4))
        return await stream.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def _new_topic(bootstrap: str) -> str:
    topic = f"lost-ack-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [(topic, 1)])
    return topic


async def _stored(bootstrap: str, topic: str) -> list[tuple[int, bytes | None]]:
    return [(r.offset, r.value) async for r in scan_topic(bootstrap, topic)]


async def _send_through(proxy: DropFirstProduceAnswer, out: AIOKafkaProducer, topic: str) -> int:
    """Send one event through the proxy and wait for its acknowledgement; its offset as the producer was told."""
    try:
        acked = await asyncio.wait_for(out.send_and_wait(topic, FICTITIOUS, key=b"fictitious-token"), 30)
    finally:
        await out.stop()
    _assert_the_fault_happened(proxy)
    return acked.offset


def _assert_the_fault_happened(proxy: DropFirstProduceAnswer) -> None:
    assert (proxy.answers_dropped, proxy.produce_requests) == (1, 2), "the fault did not happen as intended"
    assert proxy.addresses_rewritten >= 1  # the client spoke to the node through the proxy, never past it


async def test_without_idempotence_a_lost_acknowledgement_writes_the_event_twice(apache_bootstrap: str) -> None:
    """The defect, and what Tansu's producer still does: acks=all with retries is at-least-once. This is what makes
    the next test's single copy mean something: the same fault, the other producer, two copies."""
    topic = await _new_topic(apache_bootstrap)
    proxy = DropFirstProduceAnswer(apache_bootstrap, topic)
    async with proxy.running() as through:
        out = producer(through)
        await out.start()
        await _send_through(proxy, out, topic)
    assert await _stored(apache_bootstrap, topic) == [(0, FICTITIOUS), (1, FICTITIOUS)]


async def test_the_service_producer_writes_a_lost_acknowledgement_once(apache_bootstrap: str) -> None:
    """What open_runtime starts (start_producer) is idempotent on Apache Kafka: the retried batch is recognised by
    its producer id and sequence number, the send succeeds, with the offset of the one copy in the topic."""
    topic = await _new_topic(apache_bootstrap)
    proxy = DropFirstProduceAnswer(apache_bootstrap, topic)
    async with proxy.running() as through:
        out, refused = await start_producer(through)
        assert refused == ""
        offset = await _send_through(proxy, out, topic)
    assert await _stored(apache_bootstrap, topic) == [(offset, FICTITIOUS)]


async def test_the_broker_publishes_an_intake_event_once_when_its_acknowledgement_is_lost(
        apache_bootstrap: str, external_cases: Path, tmp_path: Path) -> None:
    """The whole service behind the proxy (open_runtime makes its producer): one record in, the answer of the
    produce to sg.events lost, the intake still answers 202 and sg.events holds the event once."""
    body = (external_cases / "health" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes()
    proxy = DropFirstProduceAnswer(apache_bootstrap)
    async with proxy.running() as through, running_service(tmp_path, through, share_workers=0) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        proxy.topic = events = svc.settings.topics.events  # armed now: the start's own produces pass untouched
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body, headers=svc.headers(
            "intake:health", **{"Content-Type": "application/fhir+xml"}))
        assert r.status_code == 202, r.status_code
    _assert_the_fault_happened(proxy)
    offsets = [offset for offset, _ in await _stored(apache_bootstrap, events)]  # never the values: no record's
    assert offsets == [0]  # content in a failure's output


async def test_the_service_producer_stops_while_kafka_is_unreachable(apache_bootstrap: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka's idempotent producer never gives a batch up, so its own stop() waits for an unreachable Kafka for as
    long as it is away (a shutdown during an outage would hang): ours gives up what is unacknowledged after
    STOP_FLUSH_S, and that send fails, as a plain producer's does after its request timeout."""
    monkeypatch.setattr(clients, "STOP_FLUSH_S", 0.5)  # 10 s in service: a test need not wait for it
    topic = await _new_topic(apache_bootstrap)
    proxy = DropFirstProduceAnswer(apache_bootstrap)  # no topic: it only forwards, until it is gone
    async with proxy.running() as through:
        out, refused = await start_producer(through)
        assert refused == ""
        await asyncio.wait_for(out.send_and_wait(topic, FICTITIOUS), 30)
    unacknowledged = await out.send(topic, FICTITIOUS)  # the proxy is gone: Kafka is unreachable
    await asyncio.wait_for(out.stop(), 30)  # a guard against the hang, far above the 0.5 s
    with pytest.raises(KafkaTimeoutError):
        await unacknowledged


@pytest.mark.tansu
async def test_on_tansu_the_service_producer_falls_back_and_still_sends() -> None:
    """Tansu grants no producer id: start_producer says why and starts the at-least-once producer, which delivers
    (the service still starts on the fallback broker; the delivered log drops its duplicates)."""
    with EmbeddedKafka() as tansu:
        topic = await _new_topic(tansu.bootstrap_servers)
        out, refused = await start_producer(tansu.bootstrap_servers)
        try:
            assert refused
            await asyncio.wait_for(out.send_and_wait(topic, FICTITIOUS), 30)
        finally:
            await out.stop()
        assert [v for _, v in await _stored(tansu.bootstrap_servers, topic)] == [FICTITIOUS]
