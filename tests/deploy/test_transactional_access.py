"""deploy/ carries what exactly-once share workers need on a secured Apache Kafka: the broker's principal may write
transactions under the prefix every worker's transactional id starts with, nobody else may, and the transaction
state log is as durable as the topics."""

from __future__ import annotations

from pathlib import Path

import yaml

from broker.config import Settings
from broker.ops.topology import kafka_users
from broker.service.share import transactional_id

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def transactional_grants(acls: list[dict]) -> list[tuple[str, str, set[str]]]:
    return [(a["resource"]["name"], a["resource"]["patternType"], set(a["operations"])) for a in acls
            if a["resource"].get("type") == "transactionalId"]


def covers(grants: list[tuple[str, str, set[str]]], tid: str) -> bool:
    return any({"Write", "Describe"} <= ops and (tid.startswith(name) if pattern == "prefix" else tid == name)
               for name, pattern, ops in grants)


def test_the_broker_principal_alone_may_write_the_share_workers_transactions():
    """Every transactional id a share worker uses, under the default and another topic prefix, is granted to the
    broker's principal by a prefix ACL; no subscriber or agency principal can open (or fence) a transaction."""
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "kafka" / "access.yaml").read_text()))
    users = {d["metadata"]["name"]: d["spec"]["authorization"]["acls"] for d in docs if d["kind"] == "KafkaUser"}
    broker = transactional_grants(users.pop("mash-broker"))
    for prefix in ("sg", "partnership2"):
        group = Settings(topic_prefix=prefix).group("share")
        assert covers(broker, transactional_id(group, "share-3", "worker-7c9f.0"))
        assert covers(broker, f"{group}.doctor")  # the doctor's probe
    assert all(transactional_grants(acls) == [] for acls in users.values())


def test_a_custom_share_group_gets_its_own_transactional_prefix():
    """A share group outside the broker's prefix (MASH_SHARE_GROUP) still has its workers' transactions granted."""
    [broker] = kafka_users("sg", [], [], "mash-kafka", share_group="hub-east.share")
    assert covers(transactional_grants(broker["spec"]["authorization"]["acls"]),
                  transactional_id("hub-east.share", "share-0", "host.0"))


def test_compose_grants_transactions_and_keeps_their_log_replicated():
    """The compose cluster's ACL script grants the same prefix, and its transaction log survives a node loss."""
    script = (DEPLOY / "compose" / "kafka-users.sh").read_text()
    assert "--transactional-id mash-broker. --resource-pattern-type prefixed" in script
    assert "--operation Write --operation Describe --transactional-id" in script
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    env = compose["x-kafka-env"]  # every Kafka node's environment
    assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == 3
    assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 2
    cluster = next(d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "kafka" / "cluster.yaml").read_text())
                   if d and d.get("kind") == "Kafka")
    config = cluster["spec"]["kafka"]["config"]
    assert config["transaction.state.log.replication.factor"] == 3 and config["transaction.state.log.min.isr"] == 2
