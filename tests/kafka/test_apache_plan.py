"""The Apache Kafka planner, pure: each node's server.properties and command line for 1 and 3 nodes."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from broker.kafka import apache
from broker.kafka.apache import (
    KAFKA_VERSION,
    format_command,
    java_major,
    layout_json,
    log4j2_config,
    maven_pom,
    new_cluster_id,
    plan_cluster,
    plan_from_layout,
    render_properties,
    server_command,
    server_properties,
)

DATA = Path("/srv/kafka-test")
ONE = [(19092, 19093)]
THREE = [(19092, 19093), (19094, 19095), (19096, 19097)]


def parse_properties(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


def test_one_node_properties() -> None:
    plan = plan_cluster(1, DATA, "cid", ONE)
    node = plan.node(1)
    props = server_properties(plan, node)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert Path(props["log.dirs"]).is_relative_to(DATA / "node-1")
    # One node: every internal topic at RF 1, else the group and transaction coordinators never come up.
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr", "min.insync.replicas", "default.replication.factor"):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["unclean.leader.election.enable"] == "false"
    assert plan.bootstrap_servers == "127.0.0.1:19092"


def test_three_node_properties() -> None:
    plan = plan_cluster(3, DATA, "cid", THREE)
    props = {n.node_id: server_properties(plan, n) for n in plan.nodes}
    assert sorted(props) == [1, 2, 3]
    voters = {p["controller.quorum.voters"] for p in props.values()}
    assert voters == {"1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"}  # one quorum, known to all
    assert [p["node.id"] for p in props.values()] == ["1", "2", "3"]
    assert len({p["listeners"] for p in props.values()}) == 3
    log_dirs = [Path(p["log.dirs"]) for p in props.values()]
    assert all(d.is_relative_to(DATA / f"node-{i}") for i, d in enumerate(log_dirs, start=1))
    for p in props.values():
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.replication.factor"] == "3"
        assert p["default.replication.factor"] == "3"
        # acks=all must still succeed with one node down, and never with only one copy written.
        assert p["min.insync.replicas"] == "2"
        assert p["transaction.state.log.min.isr"] == "2"
    assert plan.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"


@pytest.mark.parametrize("nodes", [0, 2, 4])
def test_only_one_or_three_nodes(nodes: int) -> None:
    with pytest.raises(ValueError, match="1, 3"):
        plan_cluster(nodes, DATA, "cid", [(1000 + 2 * i, 1001 + 2 * i) for i in range(nodes)])


def test_ports_must_differ() -> None:
    with pytest.raises(ValueError, match="differ"):
        plan_cluster(3, DATA, "cid", [(19092, 19093), (19094, 19093), (19096, 19097)])


def test_rendered_properties_read_back() -> None:
    plan = plan_cluster(3, DATA, "cid", THREE)
    props = server_properties(plan, plan.node(2))
    assert parse_properties(render_properties(props)) == props


def test_layout_round_trip_keeps_id_and_ports() -> None:
    plan = plan_cluster(3, DATA, new_cluster_id(), THREE)
    again = plan_from_layout(layout_json(plan), DATA)
    assert again == plan


def test_layout_with_gaps_in_node_ids_is_refused() -> None:
    text = '{"cluster_id": "x", "nodes": [{"id": 1, "broker_port": 1, "controller_port": 2},' \
           ' {"id": 3, "broker_port": 3, "controller_port": 4}]}'
    with pytest.raises(ValueError):
        plan_from_layout(text, DATA)


def test_cluster_id_is_a_kafka_uuid() -> None:
    ids = {new_cluster_id() for _ in range(2000)}  # about 31 of 2000 raw ids would start with '-'
    assert len(ids) == 2000
    assert not any(cid.startswith("-") for cid in ids)  # `kafka-storage format -t -x...` would read an option
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid)
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def heap_megabytes(flag: str) -> int:
    value = flag.removeprefix("-Xmx").lower()
    scale = {"k": 1 / 1024, "m": 1, "g": 1024}[value[-1]]
    return int(float(value[:-1]) * scale)


@pytest.mark.parametrize("nodes,ports", [(1, ONE), (3, THREE)])
def test_server_command_bounds_heap_and_logs_under_node_dir(nodes: int, ports: list[tuple[int, int]]) -> None:
    plan = plan_cluster(nodes, DATA, "cid", ports)
    jars = [Path("/cache/libs/kafka_2.13.jar"), Path("/cache/libs/kafka-clients.jar")]
    for node in plan.nodes:
        cmd = server_command("/usr/bin/java", jars, node)
        xmx = [a for a in cmd if a.startswith("-Xmx")]
        assert len(xmx) == 1 and heap_megabytes(xmx[0]) <= 512
        assert cmd[cmd.index("-cp") + 1] == "/cache/libs/kafka_2.13.jar:/cache/libs/kafka-clients.jar"
        assert cmd[-2:] == ["kafka.Kafka", str(node.node_dir / "server.properties")]
        log4j = next(a for a in cmd if a.startswith("-Dlog4j2.configurationFile="))
        assert Path(log4j.split("=", 1)[1]).is_relative_to(node.node_dir)


def test_node_jvm_is_small_with_one_collector_and_few_malloc_arenas() -> None:
    """Issue 24: a node's RSS under 250 MB. The cleaner's offset map lives on the heap (Kafka: 128 MiB), so it is
    bounded with the heap; one garbage collector; glibc's arenas capped unless the caller set their own."""
    plan = plan_cluster(3, DATA, "cid", THREE)
    for node in plan.nodes:
        cmd = server_command("/usr/bin/java", [Path("k.jar")], node)
        xmx = heap_megabytes(next(a for a in cmd if a.startswith("-Xmx")))
        assert [a for a in cmd if a.startswith("-XX:+Use") and a.endswith("GC")] == ["-XX:+UseSerialGC"]
        dedupe = int(server_properties(plan, node)["log.cleaner.dedupe.buffer.size"])
        assert dedupe <= xmx * 1024 * 1024 // 4
    assert apache.jvm_env({"PATH": "/bin"}) == {"PATH": "/bin", "MALLOC_ARENA_MAX": "2"}
    assert apache.jvm_env({"MALLOC_ARENA_MAX": "4"})["MALLOC_ARENA_MAX"] == "4"


def test_format_command_formats_with_the_cluster_id() -> None:
    plan = plan_cluster(3, DATA, "AAAAAAAAAAAAAAAAAAAAAA", THREE)
    cmd = format_command("java", [Path("k.jar")], plan, plan.node(3))
    i = cmd.index(apache.STORAGE_TOOL)
    assert cmd[i + 1:] == ["format", "-t", "AAAAAAAAAAAAAAAAAAAAAA", "-c", str(DATA / "node-3" / "server.properties")]


def test_log4j2_config_writes_under_the_node_logs() -> None:
    node = plan_cluster(1, DATA, "cid", ONE).node(1)
    root = ET.fromstring(log4j2_config(node))
    files = [e.get("fileName") for e in root.iter("RollingFile")]
    assert files == [str(DATA / "node-1" / "logs" / "server.log")]


def test_pom_pins_the_one_kafka_version() -> None:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.fromstring(maven_pom())
    deps = {(d.findtext("m:groupId", namespaces=ns), d.findtext("m:artifactId", namespaces=ns)):
            d.findtext("m:version", namespaces=ns) for d in root.iterfind("m:dependencies/m:dependency", ns)}
    assert deps[("org.apache.kafka", "kafka_2.13")] == KAFKA_VERSION
    assert re.fullmatch(r"4\.\d+\.\d+", KAFKA_VERSION)
    assert ("org.apache.logging.log4j", "log4j-core") in deps  # Kafka 4.x logs through log4j2


@pytest.mark.parametrize("text,major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "21" 2023-09-19', 21),
    ('java version "1.8.0_402"', 8),
    ('openjdk version "11.0.2" 2019-01-15', 11),
    ("no version here", None),
])
def test_java_major(text: str, major: int | None) -> None:
    assert java_major(text) == major


def test_the_stand_in_is_the_stopped_nodes_controller_alone() -> None:
    """The quorum stand-in stop() starts for a three-node cluster's last shutdown: the node's own id, controller port
    and metadata log, no broker listener (it must never serve or take partitions)."""
    plan = plan_cluster(3, DATA, "cid", THREE)
    node = plan.node(2)
    props = apache.controller_only_properties(plan, node)
    full = server_properties(plan, node)
    assert props["process.roles"] == "controller"
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == full["controller.quorum.voters"]
    assert props["listeners"] == "CONTROLLER://127.0.0.1:19095"
    assert props["log.dirs"] == full["log.dirs"]
    assert "PLAINTEXT" not in props["listeners"] and "advertised.listeners" not in props


def test_local_kafka_choice() -> None:
    assert [apache.local_kafka_choice(v) for v in (None, "", "auto", "Apache", " tansu ")] == \
        ["auto", "auto", "auto", "apache", "tansu"]
    with pytest.raises(apache.KafkaUnavailable, match="MASH_LOCAL_KAFKA must be one of"):
        apache.local_kafka_choice("zookeeper")
