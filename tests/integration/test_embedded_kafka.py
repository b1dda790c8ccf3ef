"""The embedded broker starts, serves Kafka, and never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from broker.kafka.admin import ensure_topics, list_topics
from broker.kafka.embedded import EmbeddedKafka

pytestmark = [pytest.mark.integration, pytest.mark.tansu]  # the embedded Tansu, the fallback without Java


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of ours counts as gone once reaped
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


async def test_produce_consume_and_stop_leaves_no_process() -> None:
    kafka = EmbeddedKafka().start()
    pid = kafka.pid
    try:
        assert await ensure_topics(kafka.bootstrap_servers, [("t.one", 2)]) == ["t.one"]
        assert await ensure_topics(kafka.bootstrap_servers, [("t.one", 2)]) == []
        assert "t.one" in await list_topics(kafka.bootstrap_servers)
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        await producer.send_and_wait("t.one", b"hello", key=b"k")
        await producer.stop()
        consumer = AIOKafkaConsumer("t.one", bootstrap_servers=kafka.bootstrap_servers, group_id="g",
                                    auto_offset_reset="earliest")
        await consumer.start()
        got = await consumer.getone()
        await consumer.stop()
        assert got.value == b"hello"
    finally:
        kafka.stop()
    assert pid is not None and _gone(pid)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_broker_dies_with_its_parent(sig: signal.Signals) -> None:
    script = ("import sys, time, signal\n"
              "from broker.kafka.embedded import EmbeddedKafka\n"
              "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
              "k = EmbeddedKafka().start()\n"
              "try:\n    print(k.pid, flush=True)\n    time.sleep(60)\nfinally:\n    k.stop()\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    broker_pid = int(parent.stdout.readline())
    os.kill(broker_pid, 0)  # running
    parent.send_signal(sig)
    parent.wait(timeout=10)
    assert _gone(broker_pid), f"embedded broker outlived its parent after {sig.name}"
