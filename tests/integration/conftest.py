"""Kafka for integration tests, from one fixture: KAFKA_BOOTSTRAP_SERVERS if set, testcontainers' Kafka where a
Docker engine runs, else ONE single-node Apache Kafka for the session (the engine production runs, from the pinned
jars; data under the session's tmp dir) where Java 17+ and the jars can be had, else the embedded Tansu.

A smoke subset keeps the Tansu fallback working: `tansu_bootstrap` is always the embedded Tansu, and `either_kafka`
runs a test on both (ids `kafka` and `tansu`). Which Kafka the session uses, and why not Apache Kafka when it is
not, is printed in the report header and at the end of the run."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from broker.kafka.apache import LOCAL_KAFKA_ENV, ApacheKafka, unavailable_reason
from broker.kafka.embedded import EmbeddedKafka

# What the session's kafka_bootstrap turned out to be, for the terminal summary.
SESSION_KAFKA: dict[str, str] = {}


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SESSION_KAFKA:
        terminalreporter.write_line(f"integration Kafka: {SESSION_KAFKA['kind']}"
                                    + (f" ({SESSION_KAFKA['why']})" if SESSION_KAFKA.get("why") else ""))


def _apache_unavailable() -> str | None:
    """Why the session cannot run on Apache Kafka; MASH_LOCAL_KAFKA=tansu asks for the embedded Tansu (a whole run
    on the fallback, as on a machine without Java)."""
    if os.environ.get(LOCAL_KAFKA_ENV, "").strip().lower() == "tansu":
        return f"{LOCAL_KAFKA_ENV}=tansu"
    return unavailable_reason()


# C1 only: a test node's JIT work is mostly start-up, and C2 compiling hot paths it never runs long enough to use
# costs a 2-core CI host about 40% of the JVM's CPU (measured on the 3-node drills, tests/failure/cluster.py).
TEST_JVM_FLAGS = ("-XX:TieredStopAtLevel=1",)
# The session's node idles through most of a run (one per xdist worker, each for the whole run): its idle work, not
# what a test sees. Measured on one node that had served a group and a transaction, CPU per idle minute 2.70 s as
# Kafka ships it, 1.53 s with these (its start and first use 15.9 -> 11.8 s): the controller writes its idle no-op
# metadata record every 30 s, not every 0.5 s (they show other nodes the log advancing: there are none), and the
# internal topics have a few partitions, not 50 each to create, load and tend (as tests/failure/cluster.py's drills).
# Replication, acks, min ISR, transactions and every topic a test creates are Kafka's own defaults still.
SHARED_NODE_PROPERTIES = {
    "metadata.max.idle.interval.ms": "30000",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
    "share.coordinator.state.topic.num.partitions": "1",
}

_APACHE: dict[str, object] = {}  # the session's one Apache Kafka and how many conftests' fixtures hold it


@contextlib.contextmanager
def _shared_apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One JVM for the whole run: the failure, fuzz and guarantee conftests import kafka_bootstrap, which makes each
    its own session fixture; they share this node, started by the first and stopped when the last lets go."""
    if not _APACHE:
        _APACHE["kafka"] = ApacheKafka(nodes=1, data_dir=tmp_path_factory.mktemp("apache-kafka"),
                                       overrides=SHARED_NODE_PROPERTIES, jvm_flags=TEST_JVM_FLAGS).start()
        _APACHE["holders"] = 0
    kafka = _APACHE["kafka"]
    assert isinstance(kafka, ApacheKafka)
    _APACHE["holders"] = int(_APACHE["holders"]) + 1  # type: ignore[call-overload]
    try:
        yield kafka.bootstrap_servers
    finally:
        _APACHE["holders"] = int(_APACHE["holders"]) - 1  # type: ignore[call-overload]
        if _APACHE["holders"] == 0:
            _APACHE.clear()
            kafka.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        SESSION_KAFKA["kind"] = "KAFKA_BOOTSTRAP_SERVERS"
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    elif _docker_available():
        from testcontainers.kafka import KafkaContainer

        SESSION_KAFKA["kind"] = "testcontainers"
        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
    elif (why := _apache_unavailable()) is None:
        SESSION_KAFKA["kind"] = "Apache Kafka (single node)"
        with _shared_apache_kafka(tmp_path_factory) as bootstrap:
            yield bootstrap
    else:
        SESSION_KAFKA.update(kind="embedded Tansu", why=f"Apache Kafka unavailable: {why}")
        print(f"\nintegration tests on the embedded Tansu: Apache Kafka unavailable: {why}")
        with EmbeddedKafka() as kafka:
            yield kafka.bootstrap_servers


@pytest.fixture(scope="session")
def apache_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Apache Kafka whatever kafka_bootstrap is (for tests of what only Apache Kafka does: transactions, fencing, the
    doctor's report): the session's one node, shared with kafka_bootstrap, rather than a JVM of each test's own.
    Tests on it use topic names and transactional ids of their own. Skipped, with the reason, without Java."""
    if (why := unavailable_reason()) is not None:
        pytest.skip(f"Apache Kafka unavailable: {why}")
    with _shared_apache_kafka(tmp_path_factory) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def tansu_bootstrap() -> Iterator[str]:
    """The embedded Tansu, whatever kafka_bootstrap is: the fallback `make run` uses without Java stays tested."""
    with EmbeddedKafka() as kafka:
        yield kafka.bootstrap_servers


@pytest.fixture(params=["kafka", "tansu"])
def either_kafka(request: pytest.FixtureRequest) -> str:
    """A test on the session's Kafka (Apache Kafka where Java is to hand) and again on the embedded Tansu."""
    if request.param == "tansu":
        request.applymarker(pytest.mark.tansu)
        return request.getfixturevalue("tansu_bootstrap")
    return request.getfixturevalue("kafka_bootstrap")
