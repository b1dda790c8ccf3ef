"""What tests/conftest.py sets up for the processes the suite starts: the project's bytecode is written before any
test runs (whatever PYTHONDONTWRITEBYTECODE says), and a JVM a test starts uses the C1 compiler only."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

import pytest

from tests.conftest import PROJECT_PACKAGES, ROOT


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
    if os.environ.get("JAVA_TOOL_OPTIONS") != "-XX:TieredStopAtLevel=1":
        pytest.skip(f"JAVA_TOOL_OPTIONS was set by the caller ({os.environ.get('JAVA_TOOL_OPTIONS')!r}): kept")
    done = subprocess.run([java, "-XX:+PrintFlagsFinal", "-version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.split()[:2] == ["intx", "TieredStopAtLevel"]]
    assert line.split()[3] == "1", line
