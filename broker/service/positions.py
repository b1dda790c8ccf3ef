"""Records read back from a topic at known positions (partition, offset): held deliveries and decided shares are
remembered by where their event sits on the events topic, and read again from there when they can be sent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiokafka import ConsumerRecord, TopicPartition

from broker.kafka.clients import reader

if TYPE_CHECKING:
    from broker.service.ports import KafkaReads

EMPTY_POLLS = 3
POLL_MS = 400


async def read_positions(rt: KafkaReads, topic: str, wanted: Iterable[tuple[int, int]]) -> tuple[
        dict[tuple[int, int], ConsumerRecord], dict[int, int]]:
    """The records at the (partition, offset) positions wanted, read with an assigned (group-less) reader, and the
    highest offset seen per partition (a wanted offset below it that was not found is gone: retention, compaction)."""
    by_partition: dict[int, set[int]] = {}
    for partition, offset in wanted:
        by_partition.setdefault(partition, set()).add(offset)
    found: dict[tuple[int, int], ConsumerRecord] = {}
    highest: dict[int, int] = {}
    consumer = reader(rt.bootstrap, **rt.kafka_security)
    await consumer.start()
    try:
        for partition, offsets in sorted(by_partition.items()):
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, min(offsets))
            empty, last = 0, max(offsets)
            while empty < EMPTY_POLLS and not offsets <= {o for p, o in found if p == partition}:
                batch = await consumer.getmany(tp, timeout_ms=POLL_MS, max_records=1000)
                records = batch.get(tp, [])
                empty = 0 if records else empty + 1
                found.update(((partition, r.offset), r) for r in records if r.offset in offsets)
                if records:
                    highest[partition] = max(highest.get(partition, -1), records[-1].offset)
                if records and records[-1].offset >= last:
                    break
    finally:
        await consumer.stop()
    return found, highest
