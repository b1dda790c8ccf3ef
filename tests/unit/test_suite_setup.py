"""What tests/conftest.py sets up for the processes the suite starts: the project's bytecode is written before any
test runs (whatever PYTHONDONTWRITEBYTECODE says), and a JVM a test starts uses the C1 compiler only and maps the
Kafka classes from one archive (tests/kafka_class_archive.py), which, stale or broken, never fails a JVM."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

import pytest

from broker.kafka.apache import find_java, resolve_jars, unavailable_reason
from tests import kafka_class_archive
from tests.conftest import OWN_JAVA_OPTIONS, PROJECT_PACKAGES, ROOT


def _current(source: os.PathLike[str]) -> bool:
    """The bytecode Python would load for this source instead of compiling it again (PEP 552 header)."""
    cached = importlib.util.cache_from_source(os.fspath(source))
    if not os.path.exists(cached):
        return False
    with open(cached, "rb") as pyc:
        header = pyc.read(16)
    if int.from_bytes(header[4:8], "little") & 1:  # hash-based (SOURCE_DATE_EPOCH set): checked at import
        return True
    st = os.stat(source)
    return (int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")) == \
        (int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF)


def test_every_module_of_the_project_has_current_bytecode_before_the_tests_run() -> None:
    stale = [str(p.relative_to(ROOT)) for package in PROJECT_PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
             if not _current(p)]
    assert not stale, f"{len(stale)} module(s) without current bytecode, e.g. {stale[:5]}"


def test_a_jvm_a_test_starts_runs_on_c1_only() -> None:
    java = shutil.which("java")
    if java is None:
        pytest.skip("no java on PATH")
    if not OWN_JAVA_OPTIONS:
        pytest.skip(f"JAVA_TOOL_OPTIONS was set by the caller ({os.environ.get('JAVA_TOOL_OPTIONS')!r}): kept")
    done = subprocess.run([java, "-XX:+PrintFlagsFinal", "-version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.split()[:2] == ["intx", "TieredStopAtLevel"]]
    assert line.split()[3] == "1", line


def _java_under_the_suites_options(*args: str, options: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JAVA_TOOL_OPTIONS": os.environ["JAVA_TOOL_OPTIONS"] if options is None else options}
    return subprocess.run([find_java(), *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_kafka_jvm_a_test_starts_maps_the_kafka_classes_from_the_archive() -> None:
    """Promise: the Kafka a test starts (same classpath, the suite's JAVA_TOOL_OPTIONS) loads its classes from the
    archive, not from the jars. On a machine's first run the detached dump may still be going: dump() waits for it
    (one lock) or makes the archive, so this never passes for want of an archive."""
    if (why := unavailable_reason()) is not None:
        pytest.skip(f"Apache Kafka unavailable: {why}")
    if not OWN_JAVA_OPTIONS:
        pytest.skip(f"JAVA_TOOL_OPTIONS was set by the caller ({os.environ.get('JAVA_TOOL_OPTIONS')!r}): kept")
    assert kafka_class_archive.dump(), "no class archive could be made"
    options = kafka_class_archive.with_archive(os.environ["JAVA_TOOL_OPTIONS"])
    assert f"-XX:SharedArchiveFile={kafka_class_archive.ARCHIVE}" in options
    classpath = os.pathsep.join(str(j) for j in resolve_jars())
    # The node's own main class without its properties file: it loads Kafka's classes, prints its usage, exits.
    done = _java_under_the_suites_options("-Xlog:class+load=info", "-cp", classpath, "kafka.Kafka", options=options)
    assert "USAGE:" in done.stdout + done.stderr, done.stdout[-2000:] + done.stderr[-2000:]
    loaded = [line for line in done.stdout.splitlines() if " org.apache.kafka." in line or " kafka." in line]
    assert loaded, done.stdout[-2000:] + done.stderr[-2000:]
    shared = [line for line in loaded if "source: shared objects file (top)" in line]  # the dynamic archive
    assert len(shared) > 0.9 * len(loaded), f"{len(shared)} of {len(loaded)} Kafka classes from the archive"


@pytest.mark.parametrize("archive", ["garbage", "foreign"])
def test_a_broken_or_foreign_archive_never_fails_a_jvm_nor_says_a_word(tmp_path, archive: str) -> None:
    """Promise: a stale archive (another JDK build, other jars) or a broken one costs time, never a test: the JVM
    runs, exit 0, and prints nothing about it on stdout (which tests and tools parse), whatever the classpath."""
    if shutil.which("java") is None:
        pytest.skip("no java on PATH")
    path = tmp_path / "classes.jsa"
    if archive == "garbage":
        path.write_bytes(bytes(range(256)) * 400)
    else:  # the suite's own archive, under a JVM of another classpath (Maven, `java -version`): without -Xlog's
        # off it says "[warning][cds,dynamic] Unable to use shared archive" on stdout
        if (why := unavailable_reason()) is not None:
            pytest.skip(f"Apache Kafka unavailable (no archive is made or used then): {why}")
        assert kafka_class_archive.dump(), "no class archive could be made"
        path = kafka_class_archive.ARCHIVE
    options = kafka_class_archive.with_archive("-XX:TieredStopAtLevel=1", path)
    assert options.startswith("-XX:TieredStopAtLevel=1 -XX:SharedArchiveFile=")
    done = _java_under_the_suites_options("-cp", str(tmp_path / "elsewhere"), "-version", options=options)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "", done.stdout
    assert "version" in done.stderr


def test_no_archive_yet_leaves_the_options_as_they_are(tmp_path) -> None:
    """A JVM pointed at a missing archive would lose the JDK's own default archive too: until the dump has made it,
    JAVA_TOOL_OPTIONS is the suite's C1 flag alone; once added, adding again changes nothing."""
    missing = tmp_path / "none.jsa"
    assert kafka_class_archive.with_archive("-XX:TieredStopAtLevel=1", missing) == "-XX:TieredStopAtLevel=1"
    missing.write_bytes(b"x")
    once = kafka_class_archive.with_archive("-XX:TieredStopAtLevel=1", missing)
    assert once == f"-XX:TieredStopAtLevel=1 -XX:SharedArchiveFile={missing} {kafka_class_archive.QUIET}"
    assert kafka_class_archive.with_archive(once, missing) == once
