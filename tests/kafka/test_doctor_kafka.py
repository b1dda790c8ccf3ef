"""`mash-broker doctor` on the Kafka it is pointed at: its kind and version, whether transactions work, and each
topic's replication factor and min.insync.replicas, on a real Apache Kafka and on the embedded Tansu."""

from __future__ import annotations

import uuid

from broker.config import Settings
from broker.kafka.admin import ensure_topics
from broker.kafka.embedded import EmbeddedKafka
from broker.ops import checks
from broker.ops.checks import TopicDurability, durability_result, kafka_kind

SUBSCRIBERS = ["test_hub"]


def settings_for(bootstrap: str, prefix: str, replication: int = 1) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, event_partitions=2,
                    kafka_replication_factor=replication)


async def engine_report(settings: Settings) -> dict[str, checks.CheckResult]:
    plan = [(f"{settings.topic_prefix}.events", 2), (f"{settings.topic_prefix}.deadletter", 1),
            (f"{settings.topic_prefix}.audit", 1), (f"{settings.topic_prefix}.deliver.test_hub", 1)]
    await ensure_topics(settings.kafka_bootstrap_servers, plan, 1)
    found = await checks.check_kafka(settings)
    return {r.check: r for r in await checks.check_kafka_engine(settings, found.topics, SUBSCRIBERS)}


def test_kind_is_read_from_the_api_levels_not_guessed():
    """A broker is never called Apache Kafka 4 on a cluster id or a name alone: the API levels decide."""
    kafka4 = {0: (0, 13), 1: (4, 18)}
    assert kafka_kind(kafka4, "CZeJTq1HTbKKCUxs8bCwtw").startswith("Apache Kafka 4.x")
    assert kafka_kind({0: (0, 11), 1: (0, 17)}, "abc").startswith("Apache Kafka 2.8-3.x")
    assert kafka_kind({0: (0, 7), 1: (0, 11)}, "abc").startswith("an older Kafka")
    assert "Tansu" in kafka_kind(kafka4, "mash-broker-embedded")


def test_durability_names_thin_topics():
    """A topic with fewer replicas than configured is a problem; min.insync.replicas 1 on replicated topics is a
    warning (an acknowledged write on one node only); an unreported setting is said so, not invented."""
    ok = [TopicDurability("sg.events", 3, 2)]
    assert durability_result(ok, 3).status == "ok"
    assert durability_result([TopicDurability("sg.events", 1, 1)], 3).status == "problem"
    weak = durability_result([TopicDurability("sg.audit", 3, 1)], 3)
    assert weak.status == "warning" and "sg.audit" in weak.detail
    assert "not reported" in durability_result([TopicDurability("sg.audit", 1, None)], 1).detail


async def test_doctor_on_apache_kafka_reports_kind_transactions_and_durability(apache_bootstrap):
    """On Apache Kafka the doctor says it is Apache Kafka 4, that transactions work, and the real replication and
    min.insync.replicas of every broker topic."""
    report = await engine_report(settings_for(apache_bootstrap, f"doc{uuid.uuid4().hex[:6]}"))
    assert report["kafka kind"].detail.startswith("Apache Kafka 4.x")
    assert report["transactions"].status == "ok"
    durability = report["topic durability"]
    assert durability.status == "ok" and durability.detail.count("replication 1, min.insync.replicas 1") == 4


async def test_doctor_on_tansu_reports_no_transactions():
    """On the embedded Tansu the doctor names it, says transactions are refused (at-least-once), and reports the
    min.insync.replicas each topic was created with (broker/kafka/admin.py sets it on every topic, Tansu included)."""
    with EmbeddedKafka() as tansu:
        report = await engine_report(settings_for(tansu.bootstrap_servers, f"doc{uuid.uuid4().hex[:6]}"))
    assert "Tansu" in report["kafka kind"].detail
    assert report["transactions"].status == "info" and "at-least-once" in report["transactions"].detail
    assert report["topic durability"].detail.count("replication 1, min.insync.replicas 1") == 4
