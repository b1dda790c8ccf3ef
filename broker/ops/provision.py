"""Create the planned topics on a real cluster with a replication factor (the compose topic-init job)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from broker.config import Settings
from broker.kafka.security import kafka_client_options
from broker.ops.topology import DAY_MS, TopicSpec


async def create_topics(settings: Settings, plan: Iterable[TopicSpec], replication: int) -> list[str]:
    """Create each planned topic that is absent; returns the names created. Idempotent."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="mash-broker-init",
                                **kafka_client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(t.name, t.partitions, replication, topic_configs={
            "min.insync.replicas": str(min(2, replication)), "retention.ms": str(t.retention_days * DAY_MS)})
            for t in plan if t.name not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another init job won the race
                await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()
