"""Reading a whole topic from the beginning, for rare administrative reads (reprocess, replay)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from broker.kafka.clients import reader

# Longer than the reader's fetch wait, so an in-flight long-poll is answered before a poll counts as empty.
EMPTY_POLL_MS = 400


async def scan_topic(bootstrap: str, topic: str, **security: Any) -> AsyncIterator[ConsumerRecord]:
    """Every record of every partition, to the first empty poll: the embedded broker's end offsets count record
    batches, not records, so they cannot mark the end."""
    consumer = reader(bootstrap, **security)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while batch := await consumer.getmany(*tps, timeout_ms=EMPTY_POLL_MS, max_records=1000):
            for records in batch.values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()
