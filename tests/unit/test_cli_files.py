"""`mash-broker convert` and `validate`: output streams and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "broker.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_convert_uk_core_examples_prints_json_lines(external_cases, tmp_path) -> None:
    health = external_cases / "health"
    files = [str(health / "UKCore-Patient-RichardSmith-Example.xml"),
             str(health / "UKCore-Encounter-InpatientEncounter-Example.xml")]
    proc = run("convert", "--agency", "health", *files, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event_type"] for e in events] == ["person.identified", "health.admission"]
    assert all(e["subject"]["linkage"]["token"].startswith("lt1_") for e in events)


def test_convert_reports_rejections_with_file_position_and_reason(tmp_path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"resourceType": "Patient", "id": "p1", "gender": "female",
                                "birthDate": "2016-04-01", "name": [{"family": "Testchild", "given": ["Ann"]}]}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Patient", "id": "p2", "birthDate": "not-a-date"}))
    proc = run("convert", "--agency", "health", str(good), str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    assert len(proc.stdout.splitlines()) == 1
    assert f"{bad}: Patient: Patient.birthDate" in proc.stderr
    assert "not-a-date" not in proc.stderr


def test_convert_unreadable_file_and_bad_agency_exit_2(tmp_path) -> None:
    assert run("convert", "--agency", "health", str(tmp_path / "missing.xml"), cwd=tmp_path).returncode == 2
    proc = run("convert", "--agency", "wizards", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "--agency must be one of" in proc.stderr


def test_validate_accepts_converted_events_and_names_bad_ones(external_cases, tmp_path) -> None:
    src = external_cases / "health" / "UKCore-Patient-RichardSmith-Example.xml"
    converted = run("convert", "--agency", "health", str(src), cwd=tmp_path)
    good = tmp_path / "events.jsonl"
    good.write_text(converted.stdout)
    assert run("validate", str(good)).returncode == 0
    event = json.loads(converted.stdout.splitlines()[0])
    del event["risk"]
    event["payload"]["unexpected"] = True
    bad = tmp_path / "bad.jsonl"
    bad.write_text(converted.stdout + json.dumps(event) + "\n{not json\n")
    proc = run("validate", str(bad))
    assert proc.returncode == 1
    assert f"{bad}: line 2: (event): required property 'risk' is missing" in proc.stderr
    assert f"{bad}: line 2: payload: unknown field(s) 'unexpected'" in proc.stderr
    assert f"{bad}: line 3: not valid JSON" in proc.stderr


def test_run_refuses_a_misconfiguration_in_one_plain_line(tmp_path) -> None:
    import os

    env = {**os.environ, "MASH_DATA_DIR": str(tmp_path / "data"), "MASH_PROTOCOL_FILE": str(tmp_path / "none.yaml")}
    proc = subprocess.run([*CLI, "run", "--dev"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "mash-broker cannot start:" in proc.stderr and "file not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    env["MASH_PROTOCOL_FILE"] = str(ROOT / "deploy" / "protocols" / "sample-partnership.yaml")
    env["MASH_DATA_DIR"] = str(tmp_path / "fresh")
    proc = subprocess.run([*CLI, "run"], capture_output=True, text=True, env=env, timeout=60)  # no --dev: no keys
    assert proc.returncode == 2 and "no linkage key" in proc.stderr and "Traceback" not in proc.stderr


def test_run_reports_an_unreachable_kafka_in_one_plain_line(tmp_path) -> None:
    import os

    from broker.kafka.embedded import free_port

    env = {**os.environ, "MASH_DATA_DIR": str(tmp_path / "data"),
           "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}  # nothing listens there
    proc = subprocess.run([*CLI, "run", "--dev"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert f"mash-broker cannot start: Kafka ({env['KAFKA_BOOTSTRAP_SERVERS']}) unavailable:" in proc.stderr
    assert "KafkaConnectionError" in proc.stderr and "Traceback" not in proc.stderr


def test_convert_says_so_when_a_file_has_no_child(tmp_path) -> None:
    """Issue 22: a file read without fault but naming no child exited 0 with nothing on stderr."""
    empty_batch = tmp_path / "empty-batch.txt"
    empty_batch.write_bytes(b"FHS|^~\\&|PAS|RXX01\rBHS|^~\\&|PAS|RXX01\rBTS|0\rFTS|1\r")
    adt = tmp_path / "adt.txt"  # a .txt ADT extract, chosen by its content
    adt.write_bytes(b"MSH|^~\\&|PAS|RXX01|MASH|MASH|20240301101500||ADT^A08^ADT_A08|MSG0001|P|2.4\r"
                    b"EVN|A08|20240301101500\rPID|1||9990000018^^^NHS^NH||Example^Testchild||20150102|F\r")
    proc = run("convert", "--agency", "health", str(empty_batch), str(adt), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{empty_batch}: no child in this file" in proc.stderr.splitlines()
    assert f"{adt}: no child in this file" not in proc.stderr
    assert [json.loads(line)["event_type"] for line in proc.stdout.splitlines()] == ["person.updated"]


@pytest.mark.parametrize("key", ["not base64!", "QUJD*", "===="])
def test_convert_with_an_invalid_linkage_key_is_one_plain_line_and_exit_2(tmp_path, key: str) -> None:
    """Issue 22: a MASH_LINKAGE_KEY that is not base64 was a traceback (and must not fall back to an ephemeral key)."""
    record = tmp_path / "p.json"
    record.write_text(json.dumps({"resourceType": "Patient", "id": "p1", "birthDate": "2016-04-01"}))
    env = {**os.environ, "MASH_DATA_DIR": str(tmp_path / "data"), "MASH_LINKAGE_KEY": key}
    proc = subprocess.run([*CLI, "convert", "--agency", "health", str(record)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: MASH_LINKAGE_KEY is not valid base64"]
    assert "Traceback" not in proc.stderr and key not in proc.stderr and proc.stdout == ""
