"""Replaying the events topic (decrypted) for `mash-broker policy diff --replay`."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from broker.config import Settings
from broker.crypto import open_key_provider, reveal_event
from broker.kafka.scan import scan_topic
from broker.kafka.security import kafka_client_options
from broker.service.messages import decode


async def replay_events(settings: Settings, limit: int = 100_000) -> list[dict[str, Any]]:
    """Every event on the events topic from the beginning (up to `limit`), opened with the local keys. An erased
    child's events (their data keys shredded) are left out: a replay must not read what erasure took away, and
    what is left of them (types, dates, risk level) would still be about the child."""
    if not settings.kafka_bootstrap_servers:
        raise ValueError("--replay needs KAFKA_BOOTSTRAP_SERVERS (the embedded broker keeps nothing between runs)")
    keys = open_key_provider(settings.data_dir)
    events: list[dict[str, Any]] = []
    records = scan_topic(settings.kafka_bootstrap_servers, settings.topics.events, **kafka_client_options(settings))
    async with aclosing(records):  # stopping early must still stop the consumer
        async for record in records:
            revealed = reveal_event(decode(record.value), keys, on_unavailable="mark")
            if not revealed.shredded:
                events.append(revealed.event)
            if len(events) >= limit:
                break
    return events
