"""`mash-broker run`'s start lines (issue 23): the Kafka bootstrap address a hub's consumer needs, with the delivery
topic and group names, and one line per adapter plug-in installed but not loaded."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from broker.kafka.embedded import free_port
from tests.adapters.plugins import BROKEN_ENTRY_POINT, install_broken_plugin
from tests.integration.service import FIXTURES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 180.0  # a bound on waiting for the start lines on a loaded machine, never a duration asserted


def test_the_start_banner_names_the_bootstrap_and_a_broken_plugin(kafka_bootstrap: str, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "e2e-protocol.yaml", tmp_path / "protocol.yaml")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "MASH_DATA_DIR": str(tmp_path / "data"),
           "MASH_PROTOCOL_FILE": str(tmp_path / "protocol.yaml"), "MASH_TOPIC_PREFIX": "banner",
           "PYTHONPATH": str(install_broken_plugin(tmp_path / "site"))}
    proc = subprocess.Popen([sys.executable, "-m", "broker.cli.main", "run", "--dev", "--port", str(free_port())],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    seen: list[str] = []
    try:
        deadline = time.monotonic() + WAIT_S
        while not any(line.startswith("adapter not loaded") for line in seen) and time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, "".join(seen)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    text = "".join(seen)
    assert f"Kafka bootstrap: {kafka_bootstrap}  (delivery topics banner.deliver.<name>, consumer group " \
           "banner.subscriber.<name>)" in text, text
    assert f"adapter not loaded: {BROKEN_ENTRY_POINT}: cannot load" in text, text
