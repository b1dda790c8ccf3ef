"""Topic administration: create what the broker needs, idempotently."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from broker.kafka.topology import TopicSpec, min_insync_replicas, topic_configs


async def ensure_topics(bootstrap: str, topics: Iterable[TopicSpec | tuple[str, int]], replication: int = 1,
                        **security: Any) -> list[str]:
    """The one topic creator: each topic that does not exist yet, created with the configs topology.py gives it
    (retention and min.insync.replicas; the service at start, `config topics --create` and the compose init job
    all come here). A bare (name, partitions) is a topic outside the layout (a benchmark's, a test's): it gets
    min.insync.replicas only. Returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mash-broker-admin", **security)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = []
        for topic in topics:
            if isinstance(topic, TopicSpec):
                name, parts, configs = topic.name, topic.partitions, topic_configs(topic, replication)
            else:
                (name, parts), configs = topic, {"min.insync.replicas": str(min_insync_replicas(replication))}
            if name not in existing:
                wanted.append(NewTopic(name, parts, replication, topic_configs=configs))
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
