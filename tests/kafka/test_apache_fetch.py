"""`mash-broker kafka fetch`, what .ci/run calls before the tests: the jars resolved once into the cache, or one plain
line and exit 2 naming what is missing (the tests then fall back to the embedded Tansu and say why)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.kafka.apache import KAFKA_VERSION, unavailable_reason
from tests.kafka.test_apache_cli import empty_bin, real_java_home

ROOT = Path(__file__).resolve().parents[2]


def fetch(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "KAFKA_HOME")}
    return subprocess.run([sys.executable, "-m", "broker.cli.main", "kafka", "fetch"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200, env={**base, **env})


def assert_refused(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert result.stderr.startswith("mash-broker kafka: ") and words in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_fetch_without_java_is_one_plain_line(tmp_path: Path) -> None:
    assert_refused(fetch(PATH=empty_bin(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache")), "Java not found")


def test_fetch_without_maven_or_a_cache_is_one_plain_line(tmp_path: Path) -> None:
    result = fetch(JAVA_HOME=real_java_home(), PATH=empty_bin(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert_refused(result, "Maven (mvn) not found")


def test_fetch_reports_the_pinned_jars_ready() -> None:
    if reason := unavailable_reason():
        pytest.skip(f"Apache Kafka unavailable: {reason}")
    result = fetch()  # the default cache, already resolved by unavailable_reason(): nothing is downloaded again
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Apache Kafka {KAFKA_VERSION}: ") and "jars ready" in result.stdout
    assert "resolving" not in result.stderr
