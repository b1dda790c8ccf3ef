"""`mash-broker bench` end to end, small: the JSON report has every figure, and nothing was lost or duplicated."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from broker.cli.bench import app

pytestmark = pytest.mark.integration


def test_bench_cli_reports_pipeline_baseline_and_stages(monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)  # the embedded broker, as documented
    result = CliRunner().invoke(app, ["--events", "40", "--warmup", "10", "--stage-records", "20", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    pipeline = report["pipeline"]
    assert pipeline["events"] >= 40 and pipeline["missing_decisions"] == 0 and pipeline["duplicates"] == 0
    assert pipeline["http_errors"] == 0 and pipeline["rejected_records"] == 0
    assert pipeline["events_per_s"] > 0 and pipeline["latency_ms"]["p50"] <= pipeline["latency_ms"]["p99"]
    assert set(pipeline["memory_mb"]) == {"service", "worker-0", "audit indexer"}
    assert report["baseline"]["messages"] == pipeline["events"] and report["ratio_to_baseline"] > 0
    assert set(report["stages"]["us_per_event"]) == {"adapt", "identify", "validate", "protect", "reveal", "decide",
                                                      "release", "seal"}
    assert report["formats"]


def test_bench_cli_batches_records_and_measures_the_pipelines_own_traffic(monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(app, ["--events", "60", "--warmup", "10", "--batch", "5", "--no-stages", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    pipeline = report["pipeline"]
    assert report["batch"] == pipeline["batch"] == 5
    assert pipeline["records"] == 5 * pipeline["requests"]  # every request carried five records
    assert pipeline["missing_decisions"] == 0 and pipeline["duplicates"] == 0 and pipeline["http_errors"] == 0
    traffic = pipeline["kafka_traffic"]
    # every accepted event crossed the events topic, every delivery its subscriber's topic, decisions the audit topic
    assert traffic["events"]["messages"] >= pipeline["events"]
    assert traffic["deliver"]["messages"] == pipeline["deliveries"]
    assert traffic["audit"]["messages"] >= 1 and all(t["bytes"] > 0 for t in traffic.values())
    total = sum(t["messages"] for t in traffic.values())
    assert report["traffic_baseline"]["messages"] == total
    assert report["ratio_to_traffic_baseline"] > 0
    # with processing free, the pipeline would still have to move its own traffic: that bounds the ratio
    assert 0 < report["ratio_to_baseline"] <= report["ratio_ceiling"]


def test_bench_growth_follows_a_filling_partition_and_reports_the_brokers_cost(monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(app, ["growth", "--blocks", "2", "--per-block", "40", "--size", "100", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kafka"] == "embedded (Tansu)"
    assert [b["stored"] for b in report["blocks"]] == [40, 80]  # every message produced was read back
    assert all(b["messages_per_s"] > 0 and b["broker_cpu_ms_per_message"] >= 0 for b in report["blocks"])
