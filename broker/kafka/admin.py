"""Topic administration: create what the broker needs, idempotently."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


async def ensure_topics(bootstrap: str, topics: Iterable[tuple[str, int]], replication: int = 1,
                        **security: Any) -> list[str]:
    """Create each (name, partitions) that does not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mash-broker-admin", **security)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(name, parts, replication) for name, parts in topics if name not in existing]
        if not wanted:
            return []
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
            await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def list_topics(bootstrap: str, **security: Any) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mash-broker-health",
                                request_timeout_ms=3000, **security)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()
