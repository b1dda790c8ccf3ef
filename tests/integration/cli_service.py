"""`mash-broker run --dev` as a real process on the embedded broker, for restart tests: start, kill -9 or stop, start
again on the same data directory (and so with a new, empty embedded broker)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from broker.crypto.client import SubscriberClient
from broker.kafka.embedded import free_port
from tests.integration.service import FIXTURES

CHILDREN_GONE_S = 60.0  # a bound on waiting for a killed service's children (a Kafka node's clean stop), not a pause


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...), or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie no longer runs


def children_of(pid: int) -> list[int]:
    """The running processes whose parent is pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(entry.name))
    return found


@dataclass
class CliService:
    root: Path
    protocol: Path = FIXTURES / "e2e-protocol.yaml"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    # MASH_LOCAL_KAFKA for the service: tansu (memory only: a restart loses the topics, what the reconcile tests
    # need) or apache (a durable node under <data_dir>/kafka, what `make run` uses on Java 17+).
    local_kafka: str = "tansu"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, start: int | None = None) -> str:
        """The stderr of one start (default: the latest)."""
        return (self.root / f"run-{start or self.starts}.log").read_text()

    def start(self, timeout: float = 60) -> httpx.Response:
        if not (self.root / "protocol.yaml").exists():
            shutil.copy(self.protocol, self.root / "protocol.yaml")
        self.starts += 1
        env = {**os.environ, "MASH_DATA_DIR": str(self.data_dir), "MASH_PORT": str(self.port),
               "MASH_PROTOCOL_FILE": str(self.root / "protocol.yaml"), "MASH_LOCAL_KAFKA": self.local_kafka}
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the local broker the service starts and stops itself
        with open(self.root / f"run-{self.starts}.log", "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "broker.cli.main", "run", "--dev"], env=env,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"mash-broker run exited: {self.log()[-2000:]}"
            try:
                ready = httpx.get(f"{self.base_url}/readyz", timeout=2)
                if ready.status_code == 200:
                    return ready
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout}s: {self.log()[-2000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        children = children_of(self.proc.pid)  # before the signal: once it is dead, init is their parent
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        self.proc = None
        # What it started (the embedded broker, a local Kafka node, share workers) dies with it (PR_SET_PDEATHSIG):
        # wait for that, not a fixed half second, so the next start finds their ports and files let go.
        deadline = time.monotonic() + CHILDREN_GONE_S
        while any(map(running, children)) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.kill(signal.SIGTERM)

    def credentials(self) -> dict[str, str]:
        return json.loads((self.data_dir / "dev-credentials.json").read_text())

    def headers(self, actor: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials()[actor]}", **extra}

    def open(self, subscriber: str, delivery: dict[str, Any]) -> dict[str, Any]:
        client = SubscriberClient.from_file(self.data_dir / "subscriber-keys" / f"{subscriber}.key", subscriber)
        return client.open(base64.b64decode(delivery["sealed"]))

    def post(self, agency: str, body: bytes, content_type: str) -> httpx.Response:
        return httpx.post(f"{self.base_url}/v1/records/{agency}", content=body, timeout=30,
                          headers=self.headers(f"intake:{agency}", **{"Content-Type": content_type}))

    def pull(self, subscriber: str, after: str | None = None) -> httpx.Response:
        params: dict[str, Any] = {"limit": 1000} | ({"after": after} if after is not None else {})
        return httpx.get(f"{self.base_url}/v1/subscribers/{subscriber}/events", params=params, timeout=30,
                         headers=self.headers(f"subscriber:{subscriber}"))

    def pull_until(self, subscriber: str, want: int, attempts: int = 150) -> dict[str, Any]:
        """Pull (from the acknowledged cursor, without acknowledging) until `want` deliveries are there."""
        for _ in range(attempts):
            r = self.pull(subscriber)
            assert r.status_code == 200, r.text
            if len(r.json()["deliveries"]) >= want:
                return r.json()
            time.sleep(0.1)
        raise AssertionError(f"{subscriber} got fewer than {want} deliveries")

    def ack(self, subscriber: str, cursor: Any) -> httpx.Response:
        return httpx.post(f"{self.base_url}/v1/subscribers/{subscriber}/ack", json={"cursor": cursor}, timeout=30,
                          headers=self.headers(f"subscriber:{subscriber}"))

    def audit(self, kind: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.base_url}/v1/ig/search", params={"kind": kind, "limit": 1000}, timeout=30,
                      headers=self.headers("ig_auditor"))
        assert r.status_code == 200, r.text
        return r.json()["entries"]
