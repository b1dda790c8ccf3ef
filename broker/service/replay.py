"""Replaying the events topic (decrypted) for `mash-broker policy diff --replay`."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from broker.config import Settings
from broker.crypto import open_key_provider, reveal_event
from broker.kafka.clients import reader
from broker.kafka.security import kafka_client_options
from broker.service.delivery import EMPTY_POLL_MS
from broker.service.messages import decode


async def replay_events(settings: Settings, limit: int = 100_000) -> list[dict[str, Any]]:
    """Every event on the events topic from the beginning (up to `limit`), opened with the local keys. Shredded
    fields come back as the shredded marker; the policy treats them as present but unreadable."""
    if not settings.kafka_bootstrap_servers:
        raise ValueError("--replay needs KAFKA_BOOTSTRAP_SERVERS (the embedded broker keeps nothing between runs)")
    keys = open_key_provider(settings.data_dir)
    consumer = reader(settings.kafka_bootstrap_servers, **kafka_client_options(settings))
    await consumer.start()
    try:
        topic = settings.topics.events
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        events: list[dict[str, Any]] = []
        while len(events) < limit:
            batch = await consumer.getmany(*tps, timeout_ms=EMPTY_POLL_MS, max_records=1000)
            if not batch:
                break
            for records in batch.values():
                events += [reveal_event(decode(r.value), keys, on_unavailable="mark").event for r in records]
        return events[:limit]
    finally:
        await consumer.stop()
