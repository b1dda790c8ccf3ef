"""The topics this service needs, for its protocol: the layout's (broker/kafka/topology.py: names, partitions,
retention) and the epoch marker topic (broker/service/epoch.py). One creator ensures them (broker/kafka/admin.py)."""

from __future__ import annotations

from broker.config import Settings
from broker.kafka.topology import TopicSpec, topic_plan
from broker.policy import Protocol
from broker.service.epoch import epoch_topic


def service_topic_plan(settings: Settings, protocol: Protocol) -> list[TopicSpec]:
    return topic_plan(settings.topic_prefix, settings.event_partitions, protocol.subscribers)


def required_topics(settings: Settings, protocol: Protocol) -> list[str]:
    """What /readyz checks exists: the layout's topics and the epoch marker topic (created at start, not planned)."""
    return [t.name for t in service_topic_plan(settings, protocol)] + [epoch_topic(settings.topic_prefix)]
