"""Exactly once on Apache Kafka: share workers consume, produce and commit their offsets in one transaction per batch.

Read raw from the delivery topics with read_committed, as a subscriber's Kafka consumer would: a worker SIGKILLed
in the middle of a transaction leaves no duplicate on the topic and loses nothing; an aborted batch leaves nothing
visible. On the embedded Tansu (no transactions) the at-least-once mode is what runs, and says so. Skipped, with the
reason, only where Java 17+ or the Kafka jars cannot be had.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from broker.audit.store import open_audit_store
from broker.bench.e2e import Observer, Sent, post_mix, running, service_env, start_cli
from broker.bench.records import mix, usable_formats
from broker.bench.stages import install_protocol
from broker.config import Settings
from broker.kafka.clients import start_transactional
from broker.kafka.embedded import EmbeddedKafka, free_port
from broker.policy import load_protocol
from broker.service.messages import decode, header
from broker.service.share import next_offsets, process_batch, transaction_size
from tests.integration.service import running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
RECORDS = 150
RATE = 60  # events/s: a few seconds of stream, so the worker is caught mid-transaction while it runs


@pytest.fixture(scope="module")
def apache(apache_bootstrap: str) -> str:
    """The session's Apache Kafka node (tests/integration/conftest.py): every test here names its own topics."""
    return apache_bootstrap


async def read_raw(bootstrap: str, topic: str, isolation: str) -> list:
    """Every record of the topic as a reader at `isolation` sees it, to the end (end offsets at that isolation)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out = []
        deadline = time.monotonic() + 20
        while any([await consumer.position(tp) < ends[tp] for tp in tps]) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            out += [m for msgs in batch.values() for m in msgs]
        return out
    finally:
        await consumer.stop()


async def open_transactions(bootstrap: str, topics: list[str]) -> bool:
    """Whether any of the topics has a transaction still open: its last stable offset trails its high-water mark."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or {0})]
        stable = await consumer.end_offsets(tps)  # at read_committed: the last stable offsets
    finally:
        await consumer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        high = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return any(stable[tp] < high[tp] for tp in tps)


def test_transactions_are_found_on_apache_kafka_and_refused_by_tansu(apache):
    """The mode is never guessed: Apache Kafka grants a transactional producer, Tansu refuses one, and a refusal is
    an answer (at-least-once stays), not an exception."""
    async def probe(bootstrap: str) -> tuple[bool, str]:
        out, why = await start_transactional(bootstrap, f"probe.{uuid.uuid4().hex[:6]}")
        if out is not None:
            await out.stop()
        return out is not None, why

    assert asyncio.run(probe(apache)) == (True, "")
    with EmbeddedKafka() as tansu:
        granted, why = asyncio.run(probe(tansu.bootstrap_servers))
    assert not granted and why  # the reason is named (an error class, no value)


def test_transactions_are_bounded_by_count_and_time():
    """A transaction holds a whole poll unless its work would outlast the budget: a backlog drains in few commits,
    a slow host still cuts its batches, a fast one never past the cap."""
    assert transaction_size(0.0) == 500
    assert transaction_size(0.004) == 125  # 4 ms a message: 500 ms of work
    assert transaction_size(0.5) == 8  # a starved host's slow messages still share a commit (TX_MIN_MESSAGES)
    assert transaction_size(0.5, least=1) == 1
    assert transaction_size(0.00001) == 500


async def test_an_aborted_batch_leaves_nothing_for_read_committed_readers(apache, external_cases, tmp_path):
    """A share worker that fails after producing (before its commit) leaves no delivery, audit record or delivered
    mark behind; the redo, committed, delivers each release exactly once."""
    body = (external_cases / "health" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes()
    async with running_service(tmp_path, apache, share_workers=0) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+xml"}))
        assert r.status_code == 202, r.text
        [accepted] = r.json()["events"]
        rt, topics = svc.runtime, svc.settings.topics
        messages = await read_topic(apache, topics.events, 1)
        assert [decode(m.value)["event_id"] for m in messages] == [accepted["event_id"]]
        group = svc.settings.group("share")
        out, _ = await start_transactional(apache, f"{group}.test-abort")
        assert out is not None
        try:
            with pytest.raises(RuntimeError, match="after producing"):
                async with out.transaction():
                    await process_batch(rt, messages, out)
                    await out.send_offsets_to_transaction(next_offsets(messages), group)
                    raise RuntimeError("worker failed after producing")
            deliver = topics.deliver("test_hub")
            # it did produce: the aborted delivery sits on the topic, hidden from read_committed readers
            assert len(await read_raw(apache, deliver, "read_uncommitted")) == 1
            assert await read_raw(apache, deliver, "read_committed") == []
            audit = [rec for m in await read_raw(apache, topics.audit, "read_committed")
                     for rec in decode(m.value) if rec.get("event_id") == accepted["event_id"]]
            assert [rec for rec in audit if rec["kind"] in ("decision", "decisions_withheld", "delivered")] == []
            assert rt.delivered.sent(["test_hub"], [accepted["event_id"]]) == set()
            # HTTP pull serves nothing of the aborted batch
            r = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events",
                               headers=svc.headers("subscriber:test_hub"))
            assert r.status_code == 200 and r.json()["deliveries"] == []

            # the redo: committed with its offsets; the delivered mark comes after the commit
            async with out.transaction():
                pending = await process_batch(rt, messages, out)
                await out.send_offsets_to_transaction(next_offsets(messages), group)
            pending.record(rt)
        finally:
            await out.stop()
        committed = await read_raw(apache, deliver, "read_committed")
        assert [header(m.headers, "event_id") for m in committed] == [accepted["event_id"]]
        assert rt.delivered.sent(["test_hub"], [accepted["event_id"]]) == {("test_hub", accepted["event_id"])}
        [event] = await svc.pull_until(http, "test_hub", 1)
        assert event["event_id"] == accepted["event_id"]


def test_a_worker_sigkilled_mid_transaction_leaves_no_duplicate_and_loses_nothing(apache, tmp_path):
    """A share worker killed with a transaction open (produced, not committed) and restarted: read raw from the
    delivery topics with read_committed, every released event reaches its subscriber exactly once, every accepted
    event is decided, and the audit chain verifies."""
    formats, _, per_record = usable_formats()
    protocol_file, _ = install_protocol(tmp_path)
    prefix = f"eos{uuid.uuid4().hex[:6]}"
    env = service_env(apache, tmp_path, protocol_file, prefix, free_port())
    subscribers = list(load_protocol(protocol_file).subscribers)
    topics = {s: f"{prefix}.deliver.{s}" for s in subscribers}
    watched = [*topics.values(), f"{prefix}.audit"]
    caught_open = False
    with running(env, 1, tmp_path / "logs") as procs:
        observer = Observer(apache, topics, f"{prefix}.audit", len(subscribers)).start()
        try:
            warm = Sent()
            asyncio.run(post_mix(procs.base_url, procs.credentials, mix(formats, 5), rate=0, concurrency=4,
                                 events_per_record=per_record, sent=warm))
            deadline = time.monotonic() + 60
            while not all(e in observer.seen.decided_at for e in warm.accepted):
                assert time.monotonic() < deadline, "the worker never started delivering"
                time.sleep(0.05)
            sent = Sent()
            poster = threading.Thread(target=lambda: asyncio.run(post_mix(
                procs.base_url, procs.credentials, [(f, tuple(k + 1000 for k in n)) for f, n in mix(formats, RECORDS)],
                rate=RATE, concurrency=4, events_per_record=per_record, sent=sent, exclude=warm.accepted)))
            poster.start()
            deadline = time.monotonic() + 30
            while len(observer.seen.decided_at) < len(warm.accepted) + 20:
                assert time.monotonic() < deadline, "the first worker delivered nothing"
                time.sleep(0.05)
            victim = procs.workers[0]
            # Freeze the worker until it is caught with a transaction open, then kill it there.
            for attempt in range(200):
                victim.send_signal(signal.SIGSTOP)
                time.sleep(0.05)  # what it had sent reaches the broker
                if asyncio.run(open_transactions(apache, watched)):
                    caught_open = True
                    break
                victim.send_signal(signal.SIGCONT)
                time.sleep(0.01 + 0.03 * (attempt % 3))
            victim.send_signal(signal.SIGKILL)
            victim.wait(5)
            decided_at_kill = len(observer.seen.decided_at) - len(warm.accepted)
            replacement = start_cli(env, tmp_path / "logs" / "worker-restarted.log", "worker", "--no-audit-indexer")
            procs.workers.append(replacement)
            poster.join(90)
            assert sent.errors == 0 and sent.rejected == 0
            deadline = time.monotonic() + 60
            while not all(e in observer.seen.decided_at for e in sent.accepted):
                assert time.monotonic() < deadline, "events accepted at intake were never decided"
                time.sleep(0.1)
            time.sleep(1.0)  # let any late duplicate arrive before counting
        finally:
            observer.stop()
    assert caught_open, "the worker was never caught with a transaction open"
    accepted = set(sent.accepted)
    assert decided_at_kill < len(accepted), "the kill came after the stream had finished"
    counts = Counter({key: n for key, n in observer.seen.delivery_counts.items() if key[1] in accepted})
    duplicates = {key: n for key, n in counts.items() if n > 1}
    assert duplicates == {}, f"{len(duplicates)} deliveries are on a delivery topic more than once"
    # nothing lost: every accepted event was decided for every subscriber (a decision record once per subscriber,
    # since aborted ones are invisible), and every released decision's delivery is on the topic
    assert all(observer.seen.decisions[e] == len(subscribers) for e in accepted)
    deadline = time.monotonic() + 30  # the audit indexer may trail the topics by a moment
    while (released := _released(Path(env["MASH_DATA_DIR"]), accepted)) != set(counts) and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    assert released and released == set(counts)
    assert _verify_chain(Path(env["MASH_DATA_DIR"]))


def _released(data_dir: Path, accepted: set[str]) -> set[tuple[str, str]]:
    """(subscriber, event id) of every committed `delivered` audit record about an accepted event."""
    store = open_audit_store(data_dir)
    try:
        return {(r["record"]["subscriber"], r["record"]["event_id"])
                for r in store.search(kind="delivered", limit=100_000) if r["record"].get("event_id") in accepted}
    finally:
        store.close()


def _verify_chain(data_dir: Path) -> bool:
    store = open_audit_store(data_dir)
    try:
        result = store.verify()
        return bool(result.ok)
    finally:
        store.close()


INSTANCE_OF = ("import sys, time; from pathlib import Path; from broker.config import Settings; "
               "from broker.service.share import worker_instance; "
               "print(worker_instance(Settings(data_dir=Path(sys.argv[1]))), flush=True); "
               "time.sleep(float(sys.argv[2]))")


def test_instance_names_are_unique_while_alive_and_inherited_after_a_kill(tmp_path):
    """Two live worker processes on one host never share a transactional id (they would fence each other), and a
    process started after one was SIGKILLed takes the dead one's name, so its start aborts what the dead one left."""
    import subprocess
    import sys

    def spawn(hold: float) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", INSTANCE_OF, str(tmp_path), str(hold)],
                                stdout=subprocess.PIPE, text=True)

    first, second = spawn(60), spawn(60)
    try:
        a, b = first.stdout.readline().strip(), second.stdout.readline().strip()
        assert a != b and {a.rsplit(".", 1)[1], b.rsplit(".", 1)[1]} == {"0", "1"}
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        third = spawn(0)
        assert third.stdout.readline().strip() == a
        third.wait(10)
    finally:
        for p in (first, second):
            p.kill()
            p.wait(5)
    assert Settings(worker_instance="pod-3").worker_instance == "pod-3"


@pytest.mark.parametrize("kind", ["apache", "tansu"])
async def test_each_broker_kind_runs_its_mode_and_delivers_once(kind, request, external_cases, tmp_path):
    """The mode in force follows what the Kafka grants (exactly-once on Apache Kafka, at-least-once on Tansu), and
    either way a record sent twice reaches its subscriber once, read raw from the delivery topic."""
    body = (external_cases / "health" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes()
    with contextlib.ExitStack() as stack:
        bootstrap = request.getfixturevalue("apache") if kind == "apache" else \
            stack.enter_context(EmbeddedKafka()).bootstrap_servers
        async with running_service(tmp_path, bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
            for _ in range(2):
                r = await http.post(f"{svc.base_url}/v1/records/health", content=body, headers=svc.headers(
                    "intake:health", **{"Content-Type": "application/fhir+xml"}))
                assert r.status_code == 202, r.text
            [event] = await svc.pull_until(http, "test_hub", 1)
            await asyncio.sleep(1.0)  # a second copy, were there one, is on the topic by now
            assert svc.runtime.kafka_transactions is (kind == "apache")
            raw = await read_raw(bootstrap, svc.settings.topics.deliver("test_hub"), "read_committed")
            assert [header(m.headers, "event_id") for m in raw] == [event["event_id"]]
