"""Exactly once on Apache Kafka, attacked where it breaks in practice: a zombie worker that wakes after its successor
started, and readers that would see uncommitted work. Skipped, with the reason, where Java 17+ or the jars cannot be
had (the at-least-once fallback on Tansu is covered by tests/guarantees/test_no_duplicates.py)."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from broker.kafka.clients import reader, start_transactional
from broker.service.share import transactional_id


async def committed(bootstrap: str, topic: str) -> list[bytes]:
    """Everything a broker reader (clients.reader: read_committed) can read of the topic, to its stable end."""
    consumer = reader(bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            out += [m.value for m in batch.get(tp, [])]
        return out
    finally:
        await consumer.stop()


async def raw_count(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


async def test_a_zombie_worker_cannot_commit_after_its_successor_started(apache_bootstrap):
    """A share worker frozen mid-batch (GC pause, SIGSTOP, partition) that wakes after its restarted successor took
    its transactional id never gets its batch committed: its commit is fenced, and broker readers never see a copy."""
    # the session's Apache Kafka node: a topic and a transactional id of this test's own
    bootstrap, run = apache_bootstrap, uuid.uuid4().hex[:6]
    topic, group = f"z{run}.deliver.hub", f"mash-broker.zombie{run}.share"
    tid = transactional_id(group, "share-0", "host.0")
    zombie, _ = await start_transactional(bootstrap, tid)
    assert zombie is not None
    await zombie.begin_transaction()
    await (await zombie.send(topic, b"zombie copy of event 1"))
    assert await raw_count(bootstrap, topic) == 1  # on the log, uncommitted
    assert await committed(bootstrap, topic) == []  # and invisible while open

    successor, _ = await start_transactional(bootstrap, tid)  # the restarted instance: same id
    assert successor is not None
    try:
        async with successor.transaction():
            await (await successor.send(topic, b"event 1"))
        with pytest.raises(KafkaError):  # fenced: ProducerFenced / InvalidProducerEpoch
            await zombie.send_and_wait(topic, b"zombie copy of event 2")
            await zombie.commit_transaction()
    finally:
        await successor.stop()
        with contextlib.suppress(KafkaError):
            await zombie.stop()
    assert await committed(bootstrap, topic) == [b"event 1"]
