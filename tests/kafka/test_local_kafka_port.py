"""ApacheKafka(broker_port=...): the configured client port goes into a new layout and moves an existing one, while
the controller port and cluster id (which the static quorum and the formatted storage name) stay. No JVM: the
layout is planned and written, nothing is started."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.config import Settings
from broker.kafka.apache import ApacheKafka, KafkaUnavailable
from broker.kafka.embedded import free_port


def _layout(data_dir: Path, port: int | None) -> tuple[str, int, int]:
    plan = ApacheKafka(nodes=1, data_dir=data_dir, broker_port=port)._layout()
    on_disk = json.loads((data_dir / "cluster.json").read_text())
    node = plan.nodes[0]
    assert on_disk["nodes"] == [{"id": 1, "broker_port": node.broker_port, "controller_port": node.controller_port}]
    return plan.cluster_id, node.broker_port, node.controller_port


def test_the_configured_port_is_planned_moved_and_kept(tmp_path: Path) -> None:
    first, second = free_port(), free_port()
    cluster, broker, controller = _layout(tmp_path, first)
    assert broker == first and controller != first
    assert _layout(tmp_path, second) == (cluster, second, controller)  # moved: same cluster, same quorum
    assert _layout(tmp_path, None) == (cluster, second, controller)  # unset: the layout's own port, kept


def test_a_port_is_for_one_node_only(tmp_path: Path) -> None:
    with pytest.raises(KafkaUnavailable, match="1-node cluster only"):
        ApacheKafka(nodes=3, data_dir=tmp_path, broker_port=free_port(), java="java", classpath=[tmp_path])._prepare()


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASH_LOCAL_KAFKA_PORT", "9092")
    assert Settings().local_kafka_port == 9092
    monkeypatch.setenv("MASH_LOCAL_KAFKA_PORT", "70000")
    with pytest.raises(ValueError, match="local_kafka_port"):
        Settings()
    monkeypatch.delenv("MASH_LOCAL_KAFKA_PORT")
    assert Settings().local_kafka_port is None
