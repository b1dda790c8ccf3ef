"""Shared fixtures. Real third-party inputs are read from ../shared/external-cases, never copied here; PostgreSQL is a
throwaway cluster of our own (Debian's postgresql server binaries)."""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Shipped in the wheel for adapter authors (broker/testing.py); re-exported where this repository's tests import it.
from broker.testing import TEST_LINKAGE_SECRET, assert_canonical  # noqa: F401
from tests import kafka_class_archive

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL_CASES = ROOT.parent / "shared" / "external-cases"

# Every JVM a test starts (the service's own Apache Kafka under `mash-broker run`, `mash-broker kafka run`, the
# bench's node) runs on the C1 compiler only, as the session's shared node and the failure drills already do
# (tests/integration/conftest.py TEST_JVM_FLAGS): a JVM that lives a minute spends much of its CPU in C2. The same
# Kafka, its code and settings; measured on tests/kafka/test_apache_cli.py, 24% less CPU. A value already set is kept.
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"
# Ours to extend (the class archive below) only where the caller did not set it: in the first pytest process, or
# inherited from it by an xdist worker with the archive already added.
OWN_JAVA_OPTIONS = os.environ.setdefault("JAVA_TOOL_OPTIONS", TEST_JAVA_OPTIONS).startswith(TEST_JAVA_OPTIONS)

# httpcore asks `import sniffio` on every async request and connection (httpcore/_synchronization.py), and sniffio
# is not installed here (anyio 4 dropped it): each miss searched the whole of sys.path again, about 90 us a time,
# 25,524 times in the hostile-input campaign alone (9.0 of its 56.7 profiled CPU seconds). None in sys.modules makes
# the miss immediate: the same ModuleNotFoundError, so httpcore, httpx and anyio take the same asyncio branch. Only
# where sniffio is truly absent: an installed one is imported as before.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def external_cases() -> Path:
    if not EXTERNAL_CASES.is_dir():
        pytest.fail(f"external cases not found at {EXTERNAL_CASES} (shared/ must sit beside the project root)")
    return EXTERNAL_CASES


# --- a throwaway PostgreSQL cluster ---------------------------------------------------------------------------------
def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").is_file() and Path(candidate, "postgres").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL server of our own on 127.0.0.1 and a free port, removed afterwards."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'psycopg[binary]'")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="mash-audit-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user (or nobody)
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            user = "nobody"
        prefix = ["runuser", "-u", user, "--"]
        shutil.chown(root, user)
    data, port = root / "data", _free_port()
    run: dict[str, Any] = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "mash", "--auth=trust", "-E", "UTF8"],
                   **run)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
                    "start"], **run)
    try:
        yield f"postgresql://mash@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], **run)
        shutil.rmtree(root, ignore_errors=True)



@pytest.fixture
def pg_database(pg_url: str) -> str:
    """The URL of a fresh, empty database on the session's cluster."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_url.rsplit("/", 1)[0] + "/" + name


# --- the order files reach the pytest-xdist workers ------------------------------------------------------------------
# `make test` hands whole files (--dist loadfile) to three workers. xdist's default hands out the files with the most
# tests first, so the long Kafka drills (one to four tests each) came last and one worker sat idle while the other ran
# them. Longest first is the classic fix (LPT scheduling): the files in slowest-files.txt, slowest first, then every
# other file in collection order. A stale list costs time, never a test: every collected test still runs.
SLOWEST_FILES = Path(__file__).with_name("slowest-files.txt")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order below, not its tests-per-file sort
        config.option.loadscopereorder = False
    if not hasattr(config, "workerinput"):  # once, before any xdist worker or test process starts
        compile_project()
        if OWN_JAVA_OPTIONS:
            kafka_class_archive.spawn_dump()
    _use_kafka_class_archive()


# --- the Kafka classes, archived once for every JVM a test starts ---------------------------------------------------
# tests/kafka_class_archive.py: a node start and stop took half the CPU with the archive (4.1-4.4 s against 8.0-8.5
# s). The first run on a machine makes it, detached, while the tests start; every JVM started once it exists maps it
# (checked before each test, a stat); one started earlier, or under a caller's JAVA_TOOL_OPTIONS, runs without it.
def _use_kafka_class_archive() -> None:
    if OWN_JAVA_OPTIONS:
        os.environ["JAVA_TOOL_OPTIONS"] = kafka_class_archive.with_archive(os.environ["JAVA_TOOL_OPTIONS"])


def pytest_runtest_setup(item: pytest.Item) -> None:
    _use_kafka_class_archive()


# --- the project's bytecode, written before any test starts a Python process ----------------------------------------
# Where PYTHONDONTWRITEBYTECODE is set (CI images, containers), no process writes bytecode, so each of the suite's
# Python processes (every service, share worker, audit indexer and CLI command a test starts: hundreds) compiled all
# of broker/ and adapters/ from source again: importing the service took 2.46 s of CPU where 1.91 s do with bytecode
# (a loaded 2-core host, medians of 5). compileall writes it whatever that setting says, and skips a file whose
# bytecode is current.
PROJECT_PACKAGES = ("broker", "adapters", "tests")


def compile_project() -> None:
    import compileall

    for package in PROJECT_PACKAGES:
        if not compileall.compile_dir(ROOT / package, quiet=1):
            pytest.exit(f"{package}/ does not compile (above): no test can import it", returncode=4)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lines = SLOWEST_FILES.read_text(encoding="utf-8").splitlines() if SLOWEST_FILES.is_file() else []
    rank = {path: i for i, path in enumerate(line.split("#")[0].strip() for line in lines) if path}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: a file stays whole


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """Where the registers live: None for SQLite files in the test's folder, else a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_database")
