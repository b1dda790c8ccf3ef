"""Moved to broker/kafka/topology.py (issue 20): the layout is read by the Kafka edge (the one topic creator,
broker/kafka/admin.py) as well as by ops, so it lives below both. Re-exported here for existing callers."""

from broker.kafka.topology import (
    BROKER_GROUP_PREFIX,
    BROKER_USER,
    DAY_MS,
    STRIMZI_API,
    TopicSpec,
    agency_user,
    kafka_topics,
    kafka_users,
    min_insync_replicas,
    resource_name,
    subscriber_user,
    topic_configs,
    topic_plan,
)

__all__ = [
    "BROKER_GROUP_PREFIX",
    "BROKER_USER",
    "DAY_MS",
    "STRIMZI_API",
    "TopicSpec",
    "agency_user",
    "kafka_topics",
    "kafka_users",
    "min_insync_replicas",
    "resource_name",
    "subscriber_user",
    "topic_configs",
    "topic_plan",
]
