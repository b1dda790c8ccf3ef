"""`mash-broker run` as users start it: serves, tells the truth at /readyz, and leaves no broker behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from broker.kafka.embedded import NOTICE as EMBEDDED_NOTICE
from broker.kafka.embedded import free_port
from tests.integration.service import FIXTURES
from tests.integration.test_embedded_kafka import _gone

pytestmark = [pytest.mark.integration, pytest.mark.tansu]  # the embedded Tansu, the fallback without Java


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_and_stops_without_orphans(tmp_path, sig) -> None:
    shutil.copy(FIXTURES / "e2e-protocol.yaml", tmp_path / "protocol.yaml")
    port = free_port()
    env = {**os.environ, "MASH_DATA_DIR": str(tmp_path / "data"), "MASH_PORT": str(port),
           "MASH_PROTOCOL_FILE": str(tmp_path / "protocol.yaml"), "MASH_LOCAL_KAFKA": "tansu"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    proc = subprocess.Popen([sys.executable, "-m", "broker.cli.main", "run", "--dev"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = next((line for line in iter(proc.stderr.readline, "") if "/docs" in line), "")
        assert f"http://127.0.0.1:{port}/docs" in banner
        # the embedded broker is named as what it is: for development, with the setting for a real cluster
        # after the address subscribers connect to
        assert proc.stderr.readline().startswith("Kafka bootstrap: 127.0.0.1:")
        assert proc.stderr.readline().strip() == EMBEDDED_NOTICE
        ready = None
        for _ in range(200):
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert ready is not None and ready.status_code == 200, ready and ready.text
        assert ready.json()["checks"] == {"kafka": "ok", "stores": "ok", "workers": "ok", "subscribers": "ok",
                                          "kafka_epoch": "ok", "adapters": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 200
        assert "mash_records_received_total" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        brokers = [c for c in _children(proc.pid) if "tansu" in Path(f"/proc/{c}/cmdline").read_text()]
        assert len(brokers) == 1
    finally:
        proc.send_signal(sig)
        proc.wait(timeout=30)
    assert _gone(brokers[0]), "embedded broker left running after the service stopped"
