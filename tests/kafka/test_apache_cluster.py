"""A real Apache Kafka (KRaft) from the pinned jars: served, durable across restarts and crashes, and writable with
acks=all after losing a node of three. Skipped, with the reason, only where Java 17+ or the jars cannot be had."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from broker.kafka.apache import CLEAN_SHUTDOWN_MARKER, ApacheKafka, unavailable_reason
from tests.integration.conftest import TEST_JVM_FLAGS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _needs_apache_kafka() -> None:
    reason = unavailable_reason()  # resolves the jars through Maven on first use (cold: about 20 s)
    if reason:
        pytest.skip(f"Apache Kafka unavailable: {reason}")


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # a zombie no longer runs


async def produce(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                request_timeout_ms=10_000)
    await producer.start()
    try:
        for value in values:
            await asyncio.wait_for(producer.send_and_wait(topic, value), 60)
    finally:
        # A write the cluster keeps refusing (NotEnoughReplicas) is retried for ever and would hold stop() too.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(producer.stop(), 15)


async def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, isolation_level="read_committed")
    await consumer.start()
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            got += [m.value for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    return got


def start_cli(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "broker.cli.main", "kafka", "run", "--nodes", "1",
                             "--data-dir", str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the CLI says every node serves (or exits)
    if not line.startswith("bootstrap: "):
        proc.kill()
        pytest.fail(f"no bootstrap line; stderr: {proc.communicate(timeout=30)[1][-2000:]}")
    return proc, line.removeprefix("bootstrap: ").strip()


async def test_one_node_serves_stops_cleanly_and_keeps_messages(tmp_path: Path) -> None:
    """Promise: a record Kafka acknowledged survives a clean stop, a restart and a SIGKILL of the node."""
    # 1. the CLI: bootstrap line once served, a real produce and consume, SIGTERM stops the node cleanly
    cli, bootstrap = await asyncio.to_thread(start_cli, tmp_path)
    try:
        pid = int((tmp_path / "node-1" / "pid").read_text())
        assert not pid_gone(pid)
        assert bootstrap.startswith("127.0.0.1:")
        await produce(bootstrap, "durable", b"first")
        assert await read_all(bootstrap, "durable", 1) == [b"first"]
    finally:
        cli.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(cli.wait, 90)
    assert code == 0, cli.stderr.read() if cli.stderr else ""
    assert pid_gone(pid)
    assert not (tmp_path / "node-1" / "pid").exists()
    assert (tmp_path / "node-1" / "data" / CLEAN_SHUTDOWN_MARKER).is_file()  # Kafka's own clean-shutdown mark

    # 2. the API, same data dir: same address, the record is still there; then a crash and a restart of the node
    async with ApacheKafka(nodes=1, data_dir=tmp_path) as kafka:
        assert kafka.bootstrap_servers == bootstrap
        assert await read_all(kafka.bootstrap_servers, "durable", 1) == [b"first"]
        await produce(kafka.bootstrap_servers, "durable", b"second")
        crashed = kafka.pid(1)
        assert crashed is not None
        kafka.kill(1)
        assert pid_gone(crashed)
        await kafka.astart_node(1)
        assert await read_all(kafka.bootstrap_servers, "durable", 2) == [b"first", b"second"]


async def test_three_nodes_survive_losing_the_leader(tmp_path: Path) -> None:
    """Promise: on three nodes with RF 3 and min ISR 2, acks=all writes go on after the partition leader is killed,
    and nothing acknowledged before is lost."""
    # C1 only, as every test JVM (tests/integration/conftest.py): C2 compiles a short-lived node never repays
    async with ApacheKafka(nodes=3, data_dir=tmp_path, jvm_flags=TEST_JVM_FLAGS) as kafka:
        pids = {i: int((tmp_path / f"node-{i}" / "pid").read_text()) for i in (1, 2, 3)}
        assert pids == {i: kafka.pid(i) for i in (1, 2, 3)}
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("drill", 1, 3)])
            await produce(kafka.bootstrap_servers, "drill", b"before")
            (described,) = await admin.describe_topics(["drill"])
            (partition,) = described["partitions"]
            assert sorted(partition["replicas"]) == [1, 2, 3]
            leader = partition["leader"]
        finally:
            await admin.close()

        kafka.kill(leader)
        assert pid_gone(pids[leader])
        survivors = ",".join(kafka.address(i) for i in (1, 2, 3) if i != leader)
        await produce(survivors, "drill", b"after")
        assert await read_all(survivors, "drill", 2) == [b"before", b"after"]

        await kafka.astart_node(leader)  # back on its ports, rejoining the static quorum
        pids[leader] = kafka.pid(leader)
        assert pids[leader] is not None
        assert await read_all(kafka.address(leader), "drill", 2) == [b"before", b"after"]
        began = time.monotonic()
        forced = await kafka.astop()
        took = time.monotonic() - began
    # All three stopped on SIGTERM, none had to be killed, and promptly: a node left without a quorum to grant its
    # controlled shutdown would wait Kafka's 5 minutes (stop_timeout, 60 s, kills it first).
    assert forced == []
    assert took < kafka.stop_timeout, f"stopping three nodes took {took:.0f}s"
    assert all(pid_gone(p) for p in pids.values())
    assert all((tmp_path / f"node-{i}" / "data" / CLEAN_SHUTDOWN_MARKER).is_file() for i in (1, 2, 3))
