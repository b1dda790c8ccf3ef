"""deploy/ runs the Kafka the tests and drills ran: Apache Kafka at the one pinned version (broker/kafka/apache.py
KAFKA_VERSION), with the durability and transaction settings of the three-node drill cluster
(broker/kafka/apache.py server_properties), every topic with the configs broker/kafka/topology.py gives it, and the
broker principal's ACLs (transactional ids included) as topology.py grants them, in compose as in Strimzi."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from adapters.kit.registry import AGENCIES
from broker.kafka.apache import KAFKA_VERSION, plan_cluster, server_properties
from broker.kafka.topology import kafka_users, topic_configs, topic_plan
from tests.deploy.conftest import DEPLOY, K8S

CLUSTER = K8S / "kafka" / "cluster.yaml"
ACCESS = K8S / "kafka" / "access.yaml"
KAFKA_USERS_SCRIPT = DEPLOY / "compose" / "kafka-users.sh"
# What makes a 202 survive the loss of a node, and a transaction's state with it: the drills ran with these.
DURABILITY = ("default.replication.factor", "min.insync.replicas", "offsets.topic.replication.factor",
              "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
              "unclean.leader.election.enable")


def drill_properties() -> dict[str, str]:
    """server.properties of a node of the three-node cluster the failure drills run (tests/failure)."""
    plan = plan_cluster(3, Path("/drill"), "drill-cluster-id", [(19092, 19093), (29092, 29093), (39092, 39093)])
    return server_properties(plan, plan.nodes[0])


def env_name(prop: str) -> str:
    """The apache/kafka image's environment name for a server property (`_` doubled, `-` tripled, `.` to `_`)."""
    return "KAFKA_" + prop.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def strimzi_kafka() -> dict:
    return next(d for d in yaml.safe_load_all(CLUSTER.read_text()) if d and d["kind"] == "Kafka")


def text(value: object) -> str:
    """A YAML scalar as Kafka reads it from a properties file (booleans lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_the_kafka_version_is_the_pinned_one_everywhere(compose: dict) -> None:
    assert int(KAFKA_VERSION.split(".")[0]) >= 4  # KRaft only: no ZooKeeper anywhere
    images = {name: s["image"] for name, s in compose["services"].items() if "apache/kafka" in s.get("image", "")}
    assert set(images) == {"kafka-1", "kafka-2", "kafka-3", "kafka-users"}
    assert set(images.values()) == {f"apache/kafka:{KAFKA_VERSION}"}
    kafka = strimzi_kafka()["spec"]["kafka"]
    assert text(kafka["version"]) == KAFKA_VERSION
    # a metadata version of an older Kafka would hold the cluster to that release's features
    major_minor = ".".join(KAFKA_VERSION.split(".")[:2])
    assert "metadataVersion" not in kafka or str(kafka["metadataVersion"]).startswith(f"{major_minor}-")


@pytest.mark.parametrize("key", DURABILITY)
def test_the_clusters_durability_is_what_the_drills_ran(compose: dict, key: str) -> None:
    want = drill_properties()[key]
    assert text(strimzi_kafka()["spec"]["kafka"]["config"][key]) == want, f"cluster.yaml {key}"
    assert text(compose["x-kafka-env"][env_name(key)]) == want, f"compose.yaml {env_name(key)}"


def test_strimzi_topics_carry_topologys_configs() -> None:
    """Every KafkaTopic is a topic of the plan, with its partitions, the drills' replication and exactly the configs
    topology.py creates it with (retention, min.insync.replicas); no planned topic is missing."""
    docs = [d for d in yaml.safe_load_all(ACCESS.read_text()) if d and d["kind"] == "KafkaTopic"]
    topics = {d["spec"]["topicName"]: d["spec"] for d in docs}
    subscribers = [t.removeprefix("sg.deliver.") for t in topics if t.startswith("sg.deliver.")]
    replicas = int(drill_properties()["default.replication.factor"])
    plan = topic_plan("sg", 6, subscribers, AGENCIES)
    assert set(topics) == {t.name for t in plan}
    for spec in plan:
        got = topics[spec.name]
        assert got["partitions"] == spec.partitions and got["replicas"] == replicas, spec.name
        assert {k: text(v) for k, v in got["config"].items()} == topic_configs(spec, replicas), spec.name


def test_compose_creates_its_topics_with_the_same_replication(compose: dict) -> None:
    """compose's topic-init job is `mash-broker config topics --create`, which creates through the service's own
    creator (topology's configs); its replication is the drills'."""
    command = compose["services"]["topic-init"]["command"]
    assert command[:3] == ["config", "topics", "--create"]
    replication = command[command.index("--replication") + 1]
    assert replication == drill_properties()["default.replication.factor"]
    assert compose["services"]["kafka-users"]["environment"]["MASH_TOPIC_PREFIX"] == "sg"


def script_acls(script: str) -> set[tuple[str, str, str, frozenset[str]]]:
    """(resource type, name, pattern type, operations) of every kafka-acls.sh --add in the script, with the
    topic prefix variable expanded to its default."""
    joined = script.replace("\\\n", " ")
    out = set()
    for line in joined.splitlines():
        if "kafka-acls.sh" not in line or "--add" not in line:
            continue
        words = shlex.split(line.replace('"$prefix."', "sg.").replace('"${admin[@]}"', ""))
        ops = frozenset(words[i + 1] for i, w in enumerate(words) if w == "--operation")
        pattern = words[words.index("--resource-pattern-type") + 1] if "--resource-pattern-type" in words else ""
        pattern = {"prefixed": "prefix", "": "literal"}.get(pattern, pattern)
        for flag, kind in (("--topic", "topic"), ("--group", "group"), ("--transactional-id", "transactionalId")):
            if flag in words:
                out.add((kind, words[words.index(flag) + 1], pattern, ops))
        if "--cluster" in words:
            out.add(("cluster", "", "", ops))
    return out


def test_compose_grants_the_broker_principal_what_topology_grants() -> None:
    """The compose ACL script and Strimzi's KafkaUser give the broker's principal the same ACLs, transactional ids
    included: a worker that may open transactions in the tests may in both deployments, and nothing more."""
    [broker] = [u for u in kafka_users("sg", [], [], "mash-kafka") if u["metadata"]["name"] == "mash-broker"]
    want = {(a["resource"]["type"], a["resource"].get("name", ""),
             a["resource"].get("patternType", "") if a["resource"]["type"] != "cluster" else "",
             frozenset(a["operations"])) for a in broker["spec"]["authorization"]["acls"]}
    assert script_acls(KAFKA_USERS_SCRIPT.read_text()) == want
    strimzi = next(d for d in yaml.safe_load_all(ACCESS.read_text())
                   if d and d["kind"] == "KafkaUser" and d["metadata"]["name"] == "mash-broker")
    assert strimzi["spec"]["authorization"]["acls"] == broker["spec"]["authorization"]["acls"]
    assert any(kind == "transactionalId" for kind, *_ in want)


def test_the_script_parser_sees_a_missing_grant() -> None:
    """The comparison above has teeth: the script without its transactional-id grant no longer matches."""
    script = KAFKA_USERS_SCRIPT.read_text()
    cut = re.sub(r'"\$bin/kafka-acls\.sh"[^\n]*\\\n[^\n]*--transactional-id[^\n]*\n', "", script)
    assert cut != script
    assert not any(kind == "transactionalId" for kind, *_ in script_acls(cut))


def test_the_environment_names_follow_the_images_rule() -> None:
    assert env_name("transaction.state.log.min.isr") == "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"
    assert env_name("listener.name.client.scram-sha-512.sasl.jaas.config") == (
        "KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG")
