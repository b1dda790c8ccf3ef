"""The HTTP pull's reader: an empty poll ends a read only once the end offsets are reached (Apache Kafka's first
fetches after a seek can come back empty on a busy host), and a topic's partitions come from its metadata."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from broker.kafka.admin import ensure_topics
from broker.kafka.clients import reader
from broker.service.delivery import DeliveryReader, _behind

pytestmark = pytest.mark.integration


async def _topic_with(bootstrap: str, partitions: int, records: int) -> str:
    topic = f"r{uuid.uuid4().hex[:8]}.deliver.test_hub"
    await ensure_topics(bootstrap, [(topic, partitions)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(records):
            await producer.send_and_wait(topic, f"delivery {i}".encode(), partition=i % partitions)
    finally:
        await producer.stop()
    return topic


async def test_behind_is_true_short_of_the_end_and_false_at_it(kafka_bootstrap):
    topic = await _topic_with(kafka_bootstrap, 1, 3)
    consumer = reader(kafka_bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, 0)]
        consumer.assign(tps)
        consumer.seek(tps[0], 0)
        assert await _behind(consumer, tps)
        consumer.seek(tps[0], 3)
        assert not await _behind(consumer, tps)
    finally:
        await consumer.stop()


async def test_a_pull_reads_every_partition_the_metadata_names(kafka_bootstrap):
    """Before, a fresh group-less consumer had no metadata yet, so a topic of several partitions was read as {0}."""
    topic = await _topic_with(kafka_bootstrap, 3, 9)
    deliveries = DeliveryReader(kafka_bootstrap)
    try:
        records, cursor = await deliveries.read(topic, {}, limit=100)
    finally:
        await deliveries.close()
    assert sorted(r.value for r in records) == sorted(f"delivery {i}".encode() for i in range(9))
    assert cursor == {0: 3, 1: 3, 2: 3}
