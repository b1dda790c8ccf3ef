"""MASH_LOCAL_KAFKA_PORT (issue 23): `mash-broker run` without KAFKA_BOOTSTRAP_SERVERS starts its local Kafka on the
port given, prints it in the start banner, and the service's own topics are served there; for the local Apache Kafka
and for the embedded Tansu. A port in use is one plain line, not a broker's exit status."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from broker.kafka.apache import unavailable_reason
from broker.kafka.embedded import free_port
from tests.integration.service import FIXTURES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 300.0  # a bound on waiting for the banner while a JVM starts on a loaded machine, never a duration asserted
PREFIX = "portcheck"


def _start(tmp_path: Path, kind: str, port: int) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    shutil.copy(FIXTURES / "e2e-protocol.yaml", tmp_path / "protocol.yaml")
    env = {**os.environ, "MASH_DATA_DIR": str(tmp_path / "data"), "MASH_PROTOCOL_FILE": str(tmp_path / "protocol.yaml"),
           "MASH_TOPIC_PREFIX": PREFIX, "MASH_LOCAL_KAFKA": kind, "MASH_LOCAL_KAFKA_PORT": str(port)}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("MASH_KAFKA_BOOTSTRAP_SERVERS", None)
    proc = subprocess.Popen([sys.executable, "-m", "broker.cli.main", "run", "--dev", "--port", str(free_port())],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _until(proc: subprocess.Popen[str], lines: queue.Queue[str], wanted: str) -> str:
    """The start lines up to the one starting with `wanted`, or all of them once the process has ended."""
    seen: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if seen[-1].startswith(wanted):
            break
    return "".join(seen)


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _serves_on(kind: str, tmp_path: Path) -> None:
    port = free_port()
    proc, lines = _start(tmp_path, kind, port)
    try:
        text = _until(proc, lines, "Kafka bootstrap:")
        assert f"Kafka bootstrap: 127.0.0.1:{port}  (delivery topics {PREFIX}.deliver.<name>" in text, text
        # the service's own topics are on that port: it is the Kafka the service uses, not a coincidence
        assert {f"{PREFIX}.events", f"{PREFIX}.deadletter"} <= asyncio.run(_topics(f"127.0.0.1:{port}"))
    finally:
        proc.terminate()
        proc.wait(timeout=120)


@pytest.mark.skipif(unavailable_reason() is not None, reason=f"Apache Kafka unavailable: {unavailable_reason()}")
def test_the_local_apache_kafka_listens_on_the_configured_port(tmp_path: Path) -> None:
    _serves_on("apache", tmp_path)


@pytest.mark.tansu
def test_the_embedded_tansu_listens_on_the_configured_port(tmp_path: Path) -> None:
    _serves_on("tansu", tmp_path)


@pytest.mark.tansu
def test_a_configured_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc, lines = _start(tmp_path, "tansu", port)
        try:
            text = _until(proc, lines, "mash-broker cannot start")
            assert proc.wait(timeout=120) == 2, text
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=120)
    assert f"port {port} on 127.0.0.1 is in use" in text and "MASH_LOCAL_KAFKA_PORT" in text, text
