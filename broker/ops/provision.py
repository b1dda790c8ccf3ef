"""Create the planned topics on a real cluster with a replication factor (the compose topic-init job)."""

from __future__ import annotations

from collections.abc import Iterable

from broker.config import Settings
from broker.kafka.admin import ensure_topics
from broker.kafka.security import kafka_client_options
from broker.kafka.topology import TopicSpec


async def create_topics(settings: Settings, plan: Iterable[TopicSpec], replication: int) -> list[str]:
    """Create each planned topic that is absent, with topology's configs; returns the names created. Idempotent.
    The creator is broker/kafka/admin.py ensure_topics, the service's own: one place applies the configs."""
    if not settings.kafka_bootstrap_servers:  # the CLI says so first; never aiokafka's default of localhost
        raise ValueError("KAFKA_BOOTSTRAP_SERVERS is not set: nothing to create topics on")
    return await ensure_topics(settings.kafka_bootstrap_servers, plan, replication, **kafka_client_options(settings))
