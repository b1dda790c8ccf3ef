"""Reading a whole topic from the beginning, for rare administrative reads (reprocess, replay)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from broker.kafka.clients import reader

# Longer than the reader's fetch wait, so an in-flight long-poll is answered before a poll counts as empty.
EMPTY_POLL_MS = 400


MAX_EMPTY_POLLS = 25  # 10 s of empty polls before the end offsets are reached: give up waiting, never hang


async def scan_topic(bootstrap: str, topic: str, **security: Any) -> AsyncGenerator[ConsumerRecord, None]:
    """Every record of every partition, read until a poll comes back empty with every partition at its end offset.

    Both halves matter. Apache Kafka's end offsets are exact, but its first fetches after a seek can come back empty
    on a busy host, so an empty poll alone would end the scan early. The embedded broker's end offsets count record
    batches, not records, so they can lie below the true end: there the empty poll past them ends the scan."""
    consumer = reader(bootstrap, **security)
    await consumer.start()
    try:
        # a group-less consumer knows a topic's partitions only once it has asked for that topic's metadata
        partitions = await consumer._client._wait_on_metadata(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        empty = 0
        while empty < MAX_EMPTY_POLLS:
            batch = await consumer.getmany(*tps, timeout_ms=EMPTY_POLL_MS, max_records=1000)
            for records in batch.values():
                for record in records:
                    yield record
            if batch:
                empty = 0
                continue
            positions = [await consumer.position(tp) for tp in tps]
            if all(at >= ends.get(tp, 0) for at, tp in zip(positions, tps, strict=True)):
                return
            empty += 1
    finally:
        await consumer.stop()
