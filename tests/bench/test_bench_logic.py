"""The bench's own logic, no Kafka and no timing: which Kafka it runs on, how it finds the JVMs to count, the mix it
sends, the soak's verdict and rows, and the options it refuses before doing any work."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest
from stdnum.gb import nhs
from typer.testing import CliRunner

from broker.bench.cluster import APACHE, EMBEDDED, EXTERNAL, BenchKafkaError, choose_kafka, node_pids
from broker.bench.e2e import Sent, bodies, soak_row
from broker.bench.records import (
    CHILDREN,
    SPELL,
    fhir_patient,
    gp_ods,
    nhs_number,
    pole_incident,
    postcode,
    usable_formats,
)
from broker.cli.bench import app, soak_line, soak_summary


def test_apache_kafka_is_the_default_and_the_others_are_asked_for():
    assert choose_kafka(embedded=False, bootstrap=None, kafka_data_dir=None) == APACHE
    assert choose_kafka(embedded=False, bootstrap="  ", kafka_data_dir=None) == APACHE  # an empty env var
    assert choose_kafka(embedded=True, bootstrap=None, kafka_data_dir=None) == EMBEDDED
    assert choose_kafka(embedded=False, bootstrap="127.0.0.1:9092", kafka_data_dir=None) == EXTERNAL


def test_two_kafkas_at_once_or_jvms_without_their_cluster_are_refused(tmp_path):
    with pytest.raises(BenchKafkaError, match="--embedded and --bootstrap"):
        choose_kafka(embedded=True, bootstrap="127.0.0.1:9092", kafka_data_dir=None)
    with pytest.raises(BenchKafkaError, match="--kafka-data-dir"):
        choose_kafka(embedded=False, bootstrap=None, kafka_data_dir=tmp_path)


def test_the_jvms_of_a_running_cluster_are_found_by_their_pid_files(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for node, content in {"1": str(os.getpid()), "2": f"{dead.pid}\n", "3": "not a pid", "x": str(os.getpid())}.items():
        (tmp_path / f"node-{node}").mkdir()
        (tmp_path / f"node-{node}" / "pid").write_text(content)
    (tmp_path / "node-4").mkdir()  # a node that never started: no pid file
    assert node_pids(tmp_path) == {"kafka node 1": os.getpid()}


def test_the_mix_stops_once_its_bodies_carry_the_events_asked_for():
    formats, _, per_record = usable_formats()
    for batch in (1, 20):
        sent = list(bodies(formats, 500, per_record, batch))
        events = [per_record[f.name] * len(numbers) for f, numbers in sent]
        assert sum(events) >= 500 and sum(events) - events[-1] < 500  # the last body is the one that got there
        numbers = [n for _, ns in sent for n in ns]
        assert numbers == list(range(len(numbers)))  # every record new: each makes new event ids
        assert all(len(ns) == batch for _, ns in sent)


def pipeline(**overrides):
    base = {"events": 6000, "missing_decisions": 0, "duplicates": 0, "http_errors": 0, "stalls": [],
            "sending_s": 60.0, "memory_mb": {
                "service": {"start": 120, "quarter": 125, "peak": 126, "end": 126, "slope_mb_per_hour": 1.0,
                            "flat": True, "growth_after_quarter": 1.0},
                "kafka (JVM)": {"start": 400, "quarter": 420, "peak": 430, "end": 425, "slope_mb_per_hour": 4.0,
                                "flat": True, "growth_after_quarter": 5.0}}}
    return base | overrides


def _nhs(body: bytes) -> str:
    return orjson.loads(body)["identifier"][0]["value"]


def test_the_mix_s_children_turn_over_so_a_long_soak_crowds_no_child():
    first = [_nhs(fhir_patient(n)) for n in range(SPELL - CHILDREN, SPELL)]
    second = [_nhs(fhir_patient(n)) for n in range(SPELL, SPELL + CHILDREN)]
    later = [_nhs(fhir_patient(n)) for n in range(40 * SPELL, 40 * SPELL + CHILDREN)]
    assert len(set(first)) == len(set(second)) == len(set(later)) == CHILDREN  # a pool of CHILDREN at a time
    assert not set(first) & set(second) and not set(second) & set(later)  # and the next spell is about others
    assert [_nhs(fhir_patient(n)) for n in (0, CHILDREN, 2 * CHILDREN)] == [first[0]] * 3  # repeats within one
    # every agency's record is about the same pool: a police incident names the same child as the patient record
    incident = orjson.loads(pole_incident(SPELL + 7))["records"][0]
    assert incident["persons"][0]["nhs_number"] == second[7]
    # and a record number says where its child lives, whatever the spell: the demo places its contacts by it
    for n in (5, SPELL + 5, 40 * SPELL + 5):
        patient = orjson.loads(fhir_patient(n))
        assert (patient["address"][0]["postalCode"], patient["generalPractitioner"][0]["identifier"]["value"]) == \
            (postcode(5), gp_ods(5))


def test_no_two_children_of_the_mix_share_an_nhs_number():
    numbers = [nhs_number(c) for c in range(20_000)]  # the children of 100 spells: longer than any soak
    assert len(set(numbers)) == len(numbers) and all(nhs.is_valid(n) and n.startswith("999") for n in numbers)


def test_a_soak_passes_only_flat_unstalled_and_keeping_up():
    assert soak_summary(pipeline(), 60, 100)["passed"]
    leaky = pipeline()
    leaky["memory_mb"]["service"] = leaky["memory_mb"]["service"] | {"flat": False}
    verdict = soak_summary(leaky, 60, 100)
    assert not verdict["memory_flat"] and not verdict["passed"]
    stalled = soak_summary(pipeline(stalls=[{"what": "pipeline", "at_s": 30.0, "seconds": 12.0}]), 60, 100)
    assert stalled["stalled"] and not stalled["passed"]
    behind = soak_summary(pipeline(events=3000), 60, 100)  # intake took half of what was offered
    assert not behind["kept_up"] and not behind["stalled"] and not behind["passed"]
    repeats = soak_summary(pipeline(events=3000, repeated_event_ids=3000), 60, 100)  # answered 202, ids seen before
    assert repeats["kept_up"] and repeats["passed"]
    assert not soak_summary(pipeline(events=3000, repeated_event_ids=2000), 60, 100)["kept_up"]
    undecided = soak_summary(pipeline(missing_decisions=5), 60, 100)
    assert not undecided["kept_up"] and not undecided["passed"]
    assert not soak_summary(pipeline(duplicates=1), 60, 100)["passed"]


def test_a_soak_row_reports_the_window_and_prints_as_one_line():
    sent = Sent()
    sent.accepted = {"e1": 10.0, "e2": 10.5, "e3": 11.0}
    window = [("e1", 10.05, 0), ("e2", 10.60, 0), ("unknown", 12.0, 0)]  # a delivery of an event not sent timed
    row = soak_row(3725.0, 60.0, 100, sent, 2, window, {"service": 120.04, "kafka (JVM)": 431.26},
                   {"service": 6.0, "kafka (JVM)": 30.0})
    assert row["offered"] == 372500 and row["accepted"] == 3 and row["behind"] == 1 and row["deliveries"] == 2
    assert row["latency_ms"]["p50"] == pytest.approx(50.0) and row["latency_ms"]["max"] == pytest.approx(100.0)
    assert row["cpu_percent"] == {"service": 10.0, "kafka (JVM)": 50.0}
    line = soak_line(row)
    assert "\n" not in line and line.startswith("soak 01:02:05")
    assert "kafka (JVM) 431.3" in line and "behind 1" in line
    assert soak_row(7200.0, 60.0, 100, sent, 2, [], {}, {}, most=360_000)["offered"] == 360_000  # sending over
    quiet = soak_row(60.0, 60.0, 100, Sent(), 0, [], {}, {})
    assert "p50/p99/max -/-/- ms" in soak_line(quiet)  # an empty window prints, never a NaN


@pytest.mark.parametrize(("args", "message"), [
    (["--soak", "1d", "--rate", "100"], "duration"),
    (["--soak", "10m"], "--rate"),
    (["--embedded", "--bootstrap", "127.0.0.1:9092"], "--embedded and --bootstrap"),
    (["--kafka-data-dir", "/tmp"], "--kafka-data-dir"),
])
def test_unusable_options_fail_at_once_with_a_plain_reason(args, message, monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(app, [*args, "--no-stages"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_running_cluster_is_used_as_given_and_its_jvms_counted(tmp_path):
    from broker.bench.cluster import bench_kafka

    (tmp_path / "node-1").mkdir()
    (tmp_path / "node-1" / "pid").write_text(str(os.getpid()))
    with bench_kafka(EXTERNAL, tmp_path / "work", bootstrap=" 127.0.0.1:9092 ", kafka_data_dir=tmp_path) as kafka:
        assert (kafka.bootstrap, kafka.kind, kafka.pids) == ("127.0.0.1:9092", "external",
                                                               {"kafka node 1": os.getpid()})
    assert not (tmp_path / "work").exists()  # nothing was started or written for a cluster that was given
    (tmp_path / "node-1" / "pid").write_text("999999999")
    with pytest.raises(BenchKafkaError, match="no node-<id>/pid of a running process"), \
            bench_kafka(EXTERNAL, tmp_path / "work", bootstrap="127.0.0.1:9092", kafka_data_dir=tmp_path):
        pass
