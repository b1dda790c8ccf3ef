"""Reading a subscriber's delivery topic by cursor, for HTTP pull and server-sent events."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from broker.kafka.clients import reader
from broker.kafka.scan import EMPTY_POLL_MS


class BadCursor(ValueError):
    pass


def encode_cursor(positions: Mapping[int, int]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({str(p): o for p, o in sorted(positions.items())})).decode()


def decode_cursor(cursor: str | None) -> dict[int, int]:
    if not cursor:
        return {}
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        positions = {int(p): int(o) for p, o in raw.items()}
    except (binascii.Error, orjson.JSONDecodeError, AttributeError, ValueError, TypeError):
        raise BadCursor("cursor is not one this API issued") from None
    if any(o < 0 for o in positions.values()):
        raise BadCursor("cursor is not one this API issued")
    return positions


class DeliveryReader:
    """One assigned (group-less) consumer per delivery topic, reused across requests under a lock."""

    def __init__(self, bootstrap: str, security: dict[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self.security = security or {}
        self._consumers: dict[str, tuple[AIOKafkaConsumer, asyncio.Lock, list[TopicPartition]]] = {}

    async def _consumer(self, topic: str) -> tuple[AIOKafkaConsumer, asyncio.Lock, list[TopicPartition]]:
        if topic not in self._consumers:
            consumer = reader(self.bootstrap, **self.security)
            await consumer.start()
            partitions = sorted(consumer.partitions_for_topic(topic) or {0})
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            self._consumers[topic] = (consumer, asyncio.Lock(), tps)
        return self._consumers[topic]

    async def read(self, topic: str, cursor: dict[int, int], limit: int) -> tuple[list[ConsumerRecord], dict[int, int]]:
        """Up to `limit` records after `cursor`, and the cursor after them (unchanged when nothing is new).

        Reads until a poll comes back empty rather than up to the end offsets: the embedded broker's ListOffsets
        counts record batches, not records, so its end offsets cannot be trusted.
        """
        consumer, lock, tps = await self._consumer(topic)
        async with lock:
            position = {tp.partition: cursor.get(tp.partition, 0) for tp in tps}
            for tp in tps:
                consumer.seek(tp, position[tp.partition])
            out: list[ConsumerRecord] = []
            while len(out) < limit:
                batch = await consumer.getmany(*tps, timeout_ms=EMPTY_POLL_MS, max_records=limit - len(out))
                if not batch:
                    break
                for records in batch.values():
                    for record in records[: limit - len(out)]:
                        out.append(record)
                        position[record.partition] = record.offset + 1
            return out, position

    async def close(self) -> None:
        for consumer, _, _ in self._consumers.values():
            await consumer.stop()
        self._consumers.clear()
