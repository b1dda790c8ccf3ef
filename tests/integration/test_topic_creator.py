"""One topic creator: the topics the service creates at start carry the configs broker/kafka/topology.py gives them
(delivery topics keep 30 days, so an offline subscriber catches up; before issue 20 the service's own creator left
them at the cluster default), the same as `mash-broker config topics --create` and the compose init job."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from broker.config import Settings
from broker.kafka.admin import ensure_topics
from broker.kafka.topology import DAY_MS, topic_configs, topic_plan
from broker.ops.provision import create_topics
from broker.policy import load_protocol
from broker.service.topics import service_topic_plan

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"


async def topic_config(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's configs. A topic created a moment ago can be unknown to the broker that answers (KRaft applies
    its metadata asynchronously): that resource comes back with an error and no configs, so ask again, boundedly
    (a CI run met it once, session 13), rather than read an empty answer as the configs."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for _ in range(50):
            responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
            resources = [r for response in responses for r in response.resources]
            if all(r[0] == 0 for r in resources):  # r: (error code, error message, type, name, configs)
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"describe_configs still failing after 10 s: {[(r[3], r[0]) for r in resources]}")
    finally:
        await admin.close()
    return {r[3]: {e[0]: e[1] for e in r[4]} for r in resources}


def service_plan(prefix: str) -> list:
    return service_topic_plan(Settings(topic_prefix=prefix, event_partitions=2), load_protocol(SAMPLE))


def test_the_service_plans_exactly_the_layout() -> None:
    prefix = "t" + uuid.uuid4().hex[:8]
    protocol = load_protocol(SAMPLE)
    assert service_plan(prefix) == topic_plan(prefix, 2, protocol.subscribers)


async def test_the_service_creates_delivery_topics_with_the_layouts_retention(kafka_bootstrap: str) -> None:
    prefix = "t" + uuid.uuid4().hex[:8]
    plan = service_plan(prefix)
    assert await ensure_topics(kafka_bootstrap, plan, 1) == [t.name for t in plan]
    found = await topic_config(kafka_bootstrap, [t.name for t in plan])
    for spec in plan:
        assert found[spec.name]["retention.ms"] == topic_configs(spec, 1)["retention.ms"], spec.name
    assert found[f"{prefix}.deliver.mash_hub"]["retention.ms"] == str(30 * DAY_MS)
    assert found[f"{prefix}.events"]["retention.ms"] == str(7 * DAY_MS)
    # what the service's creator used to do: a bare (name, partitions) keeps the cluster's default retention, so
    # this test tells the two apart
    bare = f"{prefix}.deliver.bare"
    await ensure_topics(kafka_bootstrap, [(bare, 1)], 1)
    assert (await topic_config(kafka_bootstrap, [bare]))[bare]["retention.ms"] != str(30 * DAY_MS)


async def test_the_init_job_and_the_service_create_alike(kafka_bootstrap: str) -> None:
    a, b = ("t" + uuid.uuid4().hex[:8] for _ in range(2))
    await ensure_topics(kafka_bootstrap, service_plan(a), 1)
    await create_topics(Settings(kafka_bootstrap_servers=kafka_bootstrap), service_plan(b), 1)
    first = await topic_config(kafka_bootstrap, [t.name for t in service_plan(a)])
    second = await topic_config(kafka_bootstrap, [t.name for t in service_plan(b)])
    keys = ("retention.ms", "min.insync.replicas")
    assert [{k: c[k] for k in keys} for c in first.values()] == [{k: c[k] for k in keys} for c in second.values()]
