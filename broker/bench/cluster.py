"""Which Kafka a bench runs on, and the processes that are that Kafka (so their CPU and memory are counted).

By default the bench starts a single-node Apache Kafka of its own (broker.kafka.apache, the pinned version) under
its work directory: the engine production runs, durable and transactional, so the share workers run exactly once as
in production. `--embedded` runs on the embedded Tansu (the development fallback, labelled as such in every report);
`--bootstrap` (or KAFKA_BOOTSTRAP_SERVERS) on a cluster that already runs, whose JVMs are counted only when
`--kafka-data-dir` names the directory `mash-broker kafka run` keeps them in (their `node-<id>/pid` files).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

APACHE, EMBEDDED, EXTERNAL = "apache", "embedded", "external"


class BenchKafkaError(ValueError):
    """The bench was given contradictory or unusable Kafka options: one plain line for the user."""


def choose_kafka(*, embedded: bool, bootstrap: str | None, kafka_data_dir: Path | None) -> str:
    """apache (the default), embedded or external, from the command's options."""
    bootstrap = (bootstrap or "").strip() or None
    if embedded and bootstrap:
        raise BenchKafkaError("--embedded and --bootstrap (or KAFKA_BOOTSTRAP_SERVERS) name two Kafkas: give one")
    if kafka_data_dir is not None and not bootstrap:
        raise BenchKafkaError("--kafka-data-dir names the JVMs of a cluster given with --bootstrap: give both")
    return EMBEDDED if embedded else EXTERNAL if bootstrap else APACHE


def node_pids(data_dir: Path) -> dict[str, int]:
    """{"kafka node <id>": pid} for each DIR/node-<id>/pid of a live process (`mash-broker kafka run --data-dir`)."""
    pids: dict[str, int] = {}
    for pid_file in sorted(data_dir.glob("node-*/pid")):
        node = pid_file.parent.name.removeprefix("node-")
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if node.isdigit() and Path(f"/proc/{pid}").is_dir():
            pids[f"kafka node {node}"] = pid
    return pids


@dataclass
class BenchKafka:
    bootstrap: str
    kind: str  # what the report calls it
    pids: dict[str, int] = field(default_factory=dict)  # the Kafka's own processes, by name


@contextlib.contextmanager
def bench_kafka(choice: str, workdir: Path, *, bootstrap: str | None = None,
                kafka_data_dir: Path | None = None) -> Iterator[BenchKafka]:
    """The Kafka to bench on, started here (apache, embedded) and stopped afterwards, or the one given (external).
    Raises broker.kafka.apache.KafkaUnavailable when Apache Kafka cannot be had (Java, jars)."""
    if choice == EXTERNAL:
        assert bootstrap
        pids = node_pids(kafka_data_dir) if kafka_data_dir else {}
        if kafka_data_dir is not None and not pids:
            raise BenchKafkaError(f"{kafka_data_dir} has no node-<id>/pid of a running process")
        yield BenchKafka(bootstrap.strip(), "external", pids)
    elif choice == EMBEDDED:
        from broker.kafka.embedded import EmbeddedKafka

        with EmbeddedKafka() as kafka:
            yield BenchKafka(kafka.bootstrap_servers, "embedded (Tansu)", {"kafka (embedded)": kafka.pid or 0})
    else:
        from broker.kafka.apache import KAFKA_VERSION, ApacheKafka

        with ApacheKafka(nodes=1, data_dir=workdir / "kafka") as kafka:
            yield BenchKafka(kafka.bootstrap_servers, f"Apache Kafka {KAFKA_VERSION} (single node)",
                             {"kafka (JVM)": kafka.pid(1) or 0})
