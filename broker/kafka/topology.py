"""The Kafka layout a deployment needs: topics, and who may read or write each (Strimzi KafkaTopic/KafkaUser).
The one place: the topic creator (broker/kafka/admin.py), doctor and the manifests all read it.

Pure functions over names. The convention:
- <prefix>.events (partitioned by linkage token), <prefix>.deadletter, <prefix>.audit: the broker's own;
- <prefix>.deliver.<subscriber>: one per protocol subscriber, readable by that subscriber only;
- <prefix>.intake.<agency>: raw native records an agency system produces (Kafka intake), writable by that agency only;
- consumer groups: the broker's start with "mash-broker."; a subscriber's is <prefix>.subscriber.<subscriber>.
- transactional ids: the share workers' are <share group>.<worker>.<instance> (broker/service/share.py), so the
  broker's principal may write transactions under the same "mash-broker." prefix (and under a custom share group).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

STRIMZI_API = "kafka.strimzi.io/v1beta2"
BROKER_USER = "mash-broker"
BROKER_GROUP_PREFIX = "mash-broker."
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    purpose: str
    retention_days: int = 7


def topic_plan(prefix: str, event_partitions: int, subscribers: Iterable[str],
               agencies: Iterable[str] = ()) -> list[TopicSpec]:
    """Every topic the broker uses, in a stable order."""
    plan = [TopicSpec(f"{prefix}.events", event_partitions, "canonical events, key = linkage token"),
            TopicSpec(f"{prefix}.deadletter", 1, "rejected records, encrypted, with reason", 30),
            TopicSpec(f"{prefix}.audit", 1, "audit records before chaining into the audit store", 30)]
    # Delivery topics keep a month: a subscriber that was offline catches up from its cursor.
    plan += [TopicSpec(f"{prefix}.deliver.{s}", 1, f"what the protocol releases to {s}", 30) for s in subscribers]
    plan += [TopicSpec(f"{prefix}.intake.{a}", 3, f"raw records from {a} systems") for a in agencies]
    return plan


def min_insync_replicas(replicas: int) -> int:
    """The topic config every broker topic carries: with acks=all a write is acknowledged once this many replicas
    hold it, so on three replicas a 202 survives the loss of any one node, and with one node down writes go on.
    Set on the topic itself, never left to the cluster's default (Kafka's is 1: one copy)."""
    return min(2, replicas)


def topic_configs(spec: TopicSpec, replicas: int) -> dict[str, str]:
    """The configs a planned topic is created with, whoever creates it (broker/kafka/admin.py ensure_topics): the
    service at start, `mash-broker config topics --create` and the compose init job all give the same."""
    return {"min.insync.replicas": str(min_insync_replicas(replicas)),
            "retention.ms": str(spec.retention_days * DAY_MS)}


def subscriber_user(subscriber: str) -> str:
    return f"subscriber-{subscriber.replace('_', '-')}"


def agency_user(agency: str) -> str:
    return f"agency-{agency.replace('_', '-')}"


def resource_name(topic: str) -> str:
    """Kubernetes object names allow only [a-z0-9-.]: the Kafka name itself goes in spec.topicName."""
    return topic.replace("_", "-")


def _acl(kind: str, name: str, operations: list[str], pattern: str = "literal") -> dict[str, Any]:
    return {"resource": {"type": kind, "name": name, "patternType": pattern}, "operations": operations}


def _user(name: str, cluster: str, acls: list[dict[str, Any]], purpose: str) -> dict[str, Any]:
    return {"apiVersion": STRIMZI_API, "kind": "KafkaUser",
            "metadata": {"name": name, "labels": {"strimzi.io/cluster": cluster},
                         "annotations": {"mash-broker/purpose": purpose}},
            "spec": {"authentication": {"type": "scram-sha-512"},
                     "authorization": {"type": "simple", "acls": acls}}}


def kafka_topics(plan: Iterable[TopicSpec], cluster: str, replicas: int = 3) -> list[dict[str, Any]]:
    return [{"apiVersion": STRIMZI_API, "kind": "KafkaTopic",
             "metadata": {"name": resource_name(t.name), "labels": {"strimzi.io/cluster": cluster},
                          "annotations": {"mash-broker/purpose": t.purpose}},
             "spec": {"topicName": t.name, "partitions": t.partitions, "replicas": replicas,
                      "config": {"min.insync.replicas": min_insync_replicas(replicas),
                                 "retention.ms": t.retention_days * DAY_MS}}}
            for t in plan]


def kafka_users(prefix: str, subscribers: Iterable[str], agencies: Iterable[str], cluster: str,
                share_group: str = "mash-broker.share") -> list[dict[str, Any]]:
    """The broker's principal, one per subscriber (reads its own delivery topic), one per agency (writes its intake)."""
    broker_acls = [
        _acl("topic", f"{prefix}.", ["Read", "Write", "Describe", "DescribeConfigs", "Create"], "prefix"),
        _acl("group", BROKER_GROUP_PREFIX, ["Read", "Describe"], "prefix"),
        # exactly-once share workers: one transactional id per worker instance, all under the broker's prefix
        _acl("transactionalId", BROKER_GROUP_PREFIX, ["Write", "Describe"], "prefix"),
        {"resource": {"type": "cluster"}, "operations": ["Describe"]},
    ]
    if not share_group.startswith(BROKER_GROUP_PREFIX):
        broker_acls.insert(2, _acl("group", share_group, ["Read", "Describe"]))
        broker_acls.insert(3, _acl("transactionalId", f"{share_group}.", ["Write", "Describe"], "prefix"))
    users = [_user(BROKER_USER, cluster, broker_acls, "mash-broker API and share workers")]
    for s in subscribers:
        users.append(_user(subscriber_user(s), cluster, [
            _acl("topic", f"{prefix}.deliver.{s}", ["Read", "Describe"]),
            _acl("group", f"{prefix}.subscriber.{s}", ["Read"]),
        ], f"subscriber {s}: reads {prefix}.deliver.{s} only"))
    for a in agencies:
        users.append(_user(agency_user(a), cluster, [
            _acl("topic", f"{prefix}.intake.{a}", ["Write", "Describe"]),
        ], f"agency {a}: writes {prefix}.intake.{a} only"))
    return users
