"""`mash-broker bench client`: aiokafka against confluent-kafka over the pipeline's Kafka work, on Apache Kafka
(broker/bench/client.py). No speed is asserted; what is checked is that every figure is there for both clients and
that each did all the work it is measured on (every message acknowledged or read, every transaction's offsets
committed), so neither client can look cheap by doing less."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from broker.bench.client import CLIENTS, NEEDS_CONFLUENT, SCENARIOS, Round, summarise
from broker.cli.bench import app
from tests.integration.conftest import apache_bootstrap  # noqa: F401  (transactions: Apache Kafka only)

SMALL = ["--rounds", "2", "--intake-messages", "40", "--share-events", "25", "--poll", "10", "--read-messages",
         "30", "--audit-messages", "3"]


def test_bench_client_measures_both_clients_over_all_the_work_on_apache_kafka(apache_bootstrap, tmp_path):  # noqa: F811
    result = CliRunner().invoke(app, ["client", *SMALL, "--bootstrap", apache_bootstrap, "--json",
                                      "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kafka"] == "external" and report["measured"] == list(CLIENTS)
    assert set(report["clients"]) == {"aiokafka", "confluent-kafka", "librdkafka"}  # their versions
    assert list(report["scenarios"]) == list(SCENARIOS)
    # 25 events in transactions of 10, 10, 5: 6 audit records an event in messages of 200 records: one each
    assert report["scenarios"]["share"]["expected_per_round"] == {"units": 25, "read": 25, "acked": 25 + 3,
                                                                  "committed": 25}
    for name, s in report["scenarios"].items():
        expected = s["expected_per_round"]
        for client in CLIENTS:
            done = s[client]
            assert len(done["rounds"]) == 2, (name, client)
            for key, want in expected.items():  # each timed round did exactly the work asked
                assert done["counts"][key] == [want, want], (name, client, key)
            assert done["complete"] is True and done["broker_cpu_us_per_unit"] is None
            assert all(r["cpu_s"] > 0 and r["wall_s"] > 0 for r in done["rounds"]), (name, client)
            for measure in ("cpu_us_per_unit", "wall_us_per_unit"):
                spread = done[measure]
                assert 0 < spread["min"] <= spread["median"] <= spread["max"], (name, client, measure)
        for compiled in CLIENTS[1:]:
            assert s["cpu_us_saved_per_unit"][compiled] == pytest.approx(
                s["aiokafka"]["cpu_us_per_unit"]["median"] - s[compiled]["cpu_us_per_unit"]["median"], abs=0.02)
            assert s["cpu_us_saved_with_kafka_node"][compiled] is None  # an external cluster's JVM is not known
    assert report["complete"] is True


def test_a_round_that_did_less_than_asked_is_reported_incomplete():
    full, short = Round(0.5, 1.0, None, 100, acked=103, read=100), Round(0.1, 0.2, None, 100, acked=90, read=100)
    expected = {"units": 100, "read": 100, "acked": 103, "committed": 100}
    out = summarise("share", {"aiokafka": [full], "confluent-kafka": [short]}, expected,
                    {"aiokafka": [100], "confluent-kafka": [100]})
    assert out["aiokafka"]["complete"] is True
    assert out["confluent-kafka"]["complete"] is False  # 90 of 103 sends acknowledged: its cheap figure is void
    uncommitted = summarise("share", {"aiokafka": [full], "confluent-kafka": [full]}, expected,
                            {"aiokafka": [100], "confluent-kafka": [0]})
    assert uncommitted["confluent-kafka"]["complete"] is False  # its transactions' offsets never committed


def test_without_confluent_kafka_the_command_says_it_needs_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # what `import confluent_kafka` meets when absent
    result = CliRunner().invoke(app, ["client", "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert NEEDS_CONFLUENT in " ".join(result.output.split())
