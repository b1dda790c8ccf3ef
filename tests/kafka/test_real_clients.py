"""A hub application's own Kafka consumer group reads `<prefix>.deliver.<subscriber>` on Apache Kafka and opens the
deliveries, with the two clients hub applications use: confluent-kafka (librdkafka) and aiokafka.

What a hub relies on, each checked: its group commits its offsets, so a restarted consumer resumes after what it
opened and sees nothing twice; it reads `read_committed`, so a batch aborted on the topic is never opened (the copy
is put there by an aborted transaction of the test's own, and is seen raw by a read_uncommitted reader, so the check
has teeth); and each opened delivery is the record that was sent (NHS number, name, the date of birth masked to its
year as the protocol says, the phone withheld), sealed to this subscriber alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, KafkaError

from broker.bench.records import BY_NAME, nhs_number
from broker.crypto.client import SubscriberClient
from broker.crypto.errors import NotForThisSubscriber
from broker.kafka.topology import kafka_users, subscriber_user
from tests.integration.conftest import SESSION_KAFKA, kafka_bootstrap  # noqa: F401 (the session's one Kafka)
from tests.integration.service import Service, running_service

pytestmark = pytest.mark.integration
HUB = "test_hub"
WAIT_S = 90.0  # a bound on each wait for a condition on a loaded machine, never a duration that is asserted


@pytest.fixture
def apache(kafka_bootstrap: str) -> str:  # noqa: F811 (the fixture imported above)
    if SESSION_KAFKA.get("kind") == "embedded Tansu":
        pytest.skip(f"needs Apache Kafka (transactions, read_committed): {SESSION_KAFKA.get('why', '')}")
    return kafka_bootstrap


def acl_group(prefix: str, subscriber: str) -> str:
    """The consumer group a subscriber's principal may use (its KafkaUser's group ACL, broker/kafka/topology.py)."""
    [user] = [u for u in kafka_users(prefix, [subscriber], [], "mash-kafka")
              if u["metadata"]["name"] == subscriber_user(subscriber)]
    [group] = [a["resource"]["name"] for a in user["spec"]["authorization"]["acls"] if a["resource"]["type"] == "group"]
    return group


def expected(n: int) -> dict[str, Any]:
    """What the hub must find in the delivery of the n-th synthetic FHIR Patient (broker/bench/records.py)."""
    c = n % 200
    return {"nhs_number": nhs_number(c), "family_name": f"Example{c}", "date_of_birth": f"20{10 + c % 8:02d}"}


async def post_patients(svc: Service, http: httpx.AsyncClient, numbers: range) -> dict[str, dict[str, Any]]:
    """POST one FHIR Patient per number; returns event id -> what its delivery must hold."""
    sent = {}
    for n in numbers:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=BY_NAME["health.fhir"].make(n),
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 202, r.text
        [event] = r.json()["events"]
        sent[event["event_id"]] = expected(n)
    return sent


def check_opened(client: SubscriberClient, values: list[bytes], sent: dict[str, dict[str, Any]]) -> None:
    """Every value opens with the hub's key, each event exactly once, and each is what was sent."""
    opened = [client.open(v) for v in values]
    assert sorted(e["event_id"] for e in opened) == sorted(sent)  # each sent event once, nothing else
    for event in opened:
        child = event["subject"]["child"]
        want = sent[event["event_id"]]
        assert {k: child.get(k) for k in want} == want
        assert "phones" not in child  # contact withheld by the protocol
        assert event["delivery"]["rule_id"] == "hub-person-and-health"


# --- the two clients, each as a hub application would write it -----------------------------------------------------
def confluent_read(bootstrap: str, topic: str, group: str, want: int) -> list[bytes]:
    """librdkafka: subscribe as a member of `group`, read committed messages until `want`, commit them, leave."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "client.id": "hub-app"})
    values: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + WAIT_S
        while len(values) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                continue
            values.append(msg.value())
        if values:
            consumer.commit(asynchronous=False)
        drain_end = time.monotonic() + 3  # anything beyond `want` would be a duplicate: read on a little
        while time.monotonic() < drain_end:
            msg = consumer.poll(0.3)
            if msg is not None and not msg.error():
                values.append(msg.value())
        return values
    finally:
        consumer.close()


async def aiokafka_read(bootstrap: str, topic: str, group: str, want: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=6000,
                                client_id="hub-app")
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + WAIT_S
        while len(values) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            values += [m.value for msgs in batch.values() for m in msgs]
        if values:
            await consumer.commit()
        drain_end = time.monotonic() + 3
        while time.monotonic() < drain_end:
            batch = await consumer.getmany(timeout_ms=300)
            values += [m.value for msgs in batch.values() for m in msgs]
        return values
    finally:
        await consumer.stop()


async def read_as_hub(kind: str, bootstrap: str, topic: str, group: str, want: int) -> list[bytes]:
    if kind == "confluent-kafka":  # a blocking client: off the event loop, which runs the service under test
        return await asyncio.to_thread(confluent_read, bootstrap, topic, group, want)
    return await aiokafka_read(bootstrap, topic, group, want)


# --- an aborted transaction on the delivery topic, and a raw look at it ------------------------------------------
async def abort_a_copy(bootstrap: str, topic: str, value: bytes) -> None:
    """Produce `value` onto the topic inside a transaction, then abort it: a read_committed reader must skip it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"hub-test.{uuid.uuid4().hex[:8]}",
                                enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_and_wait(topic, value, key=b"aborted-copy")
        await producer.abort_transaction()
    finally:
        await producer.stop()


async def raw_values(bootstrap: str, topic: str) -> list[bytes]:
    """Every value on the topic as read_uncommitted sees it, to the high-water mark."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_uncommitted",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = await consumer._client._wait_on_metadata(topic)
        tps = [AioTopicPartition(topic, p) for p in sorted(partitions or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        values: list[bytes] = []
        deadline = time.monotonic() + WAIT_S
        while any([await consumer.position(tp) < ends[tp] for tp in tps]) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            values += [m.value for msgs in batch.values() for m in msgs]
        return values
    finally:
        await consumer.stop()


@pytest.mark.parametrize("kind", ["confluent-kafka", "aiokafka"])
async def test_a_hub_consumer_group_reads_and_opens_its_deliveries(apache, tmp_path, kind):
    async with running_service(tmp_path, apache) as svc, httpx.AsyncClient(timeout=30) as http:
        topic = svc.settings.topics.deliver(HUB)
        group = acl_group(svc.settings.topic_prefix, HUB)
        client = svc.client_for(HUB)

        # first run of the hub: what was sent so far, opened and committed
        first = await post_patients(svc, http, range(0, 4))
        values = await read_as_hub(kind, apache, topic, group, len(first))
        check_opened(client, values, first)

        # an aborted batch lands on the topic (a copy of a real delivery): there raw, never read by the hub
        await abort_a_copy(apache, topic, values[0])
        assert (await raw_values(apache, topic)).count(values[0]) == 2

        # the hub restarts: its group resumes after its commit, so it reads only what came since, once each
        second = await post_patients(svc, http, range(4, 7))
        again = await read_as_hub(kind, apache, topic, group, len(second))
        check_opened(client, again, second)

        # the other subscriber's key opens none of the hub's deliveries (its client told no name: the key decides)
        other = SubscriberClient.from_file(svc.settings.data_dir / "subscriber-keys" / "test_other.key")
        for value in again:
            with pytest.raises(NotForThisSubscriber):
                other.open(value)
