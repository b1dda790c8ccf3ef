"""`mash-broker kafka run` refusals: Java missing or too old, jars unobtainable, a bad --nodes: one plain line, exit 2.
No JVM is started here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broker.kafka.apache import KafkaUnavailable, resolve_jars

ROOT = Path(__file__).resolve().parents[2]


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "KAFKA_HOME")}
    return subprocess.run([sys.executable, "-m", "broker.cli.main", "kafka", "run", "--data-dir",
                           str(tmp_path / "kafka"), *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**base, "XDG_CACHE_HOME": str(tmp_path / "cache"), **env})


def assert_one_plain_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mash-broker kafka: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]
    assert result.stdout == ""  # never a bootstrap line


def empty_bin(tmp_path: Path) -> str:
    path = tmp_path / "empty-bin"
    path.mkdir(exist_ok=True)
    return str(path)


def test_nodes_other_than_one_or_three(tmp_path: Path) -> None:
    assert_one_plain_line(run_cli(tmp_path, "--nodes", "2"), "1 or 3")


def test_java_missing(tmp_path: Path) -> None:
    assert_one_plain_line(run_cli(tmp_path, PATH=empty_bin(tmp_path)), "Java not found")


def test_java_too_old(tmp_path: Path) -> None:
    fake = tmp_path / "jdk11" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    fake.chmod(0o755)
    assert_one_plain_line(run_cli(tmp_path, JAVA_HOME=str(fake.parents[1])), "Java 11", "17+")


def real_java_home() -> str:
    java = shutil.which("java")
    if not java:
        pytest.skip("no java on PATH: the jar checks run after the Java check")
    return str(Path(java).resolve().parents[1])


def test_kafka_home_without_jars(tmp_path: Path) -> None:
    (tmp_path / "not-kafka" / "libs").mkdir(parents=True)
    result = run_cli(tmp_path, JAVA_HOME=real_java_home(), KAFKA_HOME=str(tmp_path / "not-kafka"))
    assert_one_plain_line(result, "KAFKA_HOME", "kafka_2.13")


def test_maven_missing_and_nothing_cached(tmp_path: Path) -> None:
    result = run_cli(tmp_path, JAVA_HOME=real_java_home(), PATH=empty_bin(tmp_path))
    assert_one_plain_line(result, "Maven (mvn) not found")


def test_unserved_version_names_what_maven_said(tmp_path: Path) -> None:
    """Promise: jars Maven Central does not serve are refused with Maven's own answer, and nothing half-copied is
    left to pass for a cache."""
    if not shutil.which("mvn"):
        pytest.skip("mvn is not installed")
    with pytest.raises(KafkaUnavailable) as caught:
        resolve_jars(version="0.0.1-not-released", cache=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "org.apache.kafka:kafka_2.13:0.0.1-not-released" in message
    assert "mvn exited without an [ERROR] line" not in message  # Maven's own reason is quoted
    assert not (tmp_path / "kafka-0.0.1-not-released" / "complete").exists()
    assert not (tmp_path / "kafka-0.0.1-not-released" / "libs").exists()
