"""`mash-broker kafka`: a local Apache Kafka (KRaft, 1 or 3 combined nodes) for development, tests and drills."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

app = typer.Typer(help="A local Apache Kafka cluster (KRaft) from the Maven Central jars or KAFKA_HOME.",
                  no_args_is_help=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"mash-broker kafka: {message}", err=True)
    return typer.Exit(code)


class _Stopping(Exception):
    """Raised by the first SIGTERM/SIGINT, wherever the main thread is; later signals are ignored while nodes stop."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise _Stopping


@app.command()
def fetch() -> None:
    """Check Java 17+ and resolve the pinned Kafka jars into the cache now (CI runs this before the tests, so a cold
    machine pays once); one plain line and exit 2 when Java or the jars cannot be had."""
    from broker.kafka.apache import KAFKA_VERSION, KafkaUnavailable, find_java, resolve_jars

    try:
        java = find_java()
        jars = resolve_jars(announce=lambda note: typer.echo(f"mash-broker kafka: {note}", err=True))
    except KafkaUnavailable as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"Apache Kafka {KAFKA_VERSION}: {len(jars)} jars ready, {java}")


@app.command()
def run(
    data_dir: Annotated[Path, typer.Option(help="Each node's data, logs, config and pid under DIR/node-<id>/; "
                                           "the cluster's id and ports in DIR/cluster.json, kept across restarts.")],
    nodes: Annotated[int, typer.Option(help="Combined broker+controller nodes: 1 or 3.")] = 1,
    start_timeout: Annotated[float, typer.Option(help="Seconds to wait for every node to serve.")] = 180.0,
) -> None:
    """Run the cluster until SIGTERM or Ctrl-C; prints `bootstrap: host:port,...` once every node serves."""
    from broker.kafka.apache import SUPPORTED_NODES, ApacheKafka, KafkaUnavailable, find_java, resolve_jars

    if nodes not in SUPPORTED_NODES:
        raise _fail(f"--nodes must be 1 or 3, not {nodes}")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    cluster = ApacheKafka(nodes=nodes, data_dir=data_dir, start_timeout=start_timeout)
    reported: set[int] = set()
    try:
        cluster.java = find_java()
        cluster.classpath = resolve_jars(announce=lambda note: typer.echo(f"mash-broker kafka: {note}", err=True))
        cluster.start()
        typer.echo(f"bootstrap: {cluster.bootstrap_servers}")
        sys.stdout.flush()
        while True:
            time.sleep(1.0)
            # A node killed from outside (a drill, through its pid file) is reported, not restarted: the others
            # keep serving, as a real cluster would.
            for node_id, status in cluster.exited().items():
                if node_id not in reported:
                    reported.add(node_id)
                    typer.echo(f"mash-broker kafka: node {node_id} exited with status {status}", err=True)
    except _Stopping:
        pass
    except KafkaUnavailable as exc:
        raise _fail(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the nodes' clean stop short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        forced = cluster.stop()
    if forced:
        raise _fail(f"node {', '.join(map(str, forced))} did not stop within {cluster.stop_timeout:.0f}s and was "
                    "killed", code=1)
