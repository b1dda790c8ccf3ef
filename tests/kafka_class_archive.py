"""A class-data-sharing archive of the Apache Kafka classes, for the JVMs the suite starts (tests/conftest.py).

Why: a test's Kafka node lives seconds to a minute, and much of its CPU goes on loading, parsing and verifying the
same few thousand classes from the same jars at every start (format tool, node, restart, stand-in). A JVM given an
archive of them (AppCDS, `-XX:SharedArchiveFile`) maps them ready-made instead: a one-node start and stop took 4.1
and 4.4 s of CPU with it where 8.0 and 8.5 s did without (C1 both, a loaded 2-core host). The same jars, the same
Kafka, the same code and settings: only how the classes reach memory changes.

How: `python -m tests.kafka_class_archive` (started once per pytest run, detached, by tests/conftest.py) checks the
archive at ARCHIVE against this Java and classpath and, when missing or stale, starts and stops one node with
`-XX:ArchiveClassesAtExit` into a temporary file, moved into place only once a JVM has mapped it. tests/conftest.py
adds the archive to JAVA_TOOL_OPTIONS as soon as it exists. A stale, foreign or missing archive costs time, never a
test: without `-Xshare:on` a JVM that cannot map it runs as before (and `-Xlog:cds*=off` keeps it quiet), as do the
JVMs of other classpaths (Maven, `java -version`)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from broker.kafka.apache import KAFKA_VERSION, ApacheKafka, cache_root, find_java, resolve_jars, unavailable_reason

ARCHIVE = cache_root() / "test-jvm" / f"kafka-{KAFKA_VERSION}-classes.jsa"
QUIET = "-Xlog:cds*=off"  # a JVM that cannot use the archive says nothing about it (its stdout may be parsed)
DUMP_BOUND_S = 600  # a dump that has not finished by then is abandoned (the archive is an optimisation)


def with_archive(options: str, archive: Path = ARCHIVE) -> str:
    """JAVA_TOOL_OPTIONS with the archive, once it exists: a JVM pointed at a missing file would lose the JDK's own
    default archive too, so until then the options stay as they are. Idempotent."""
    if "-XX:SharedArchiveFile=" in options or not archive.is_file():
        return options
    return f"{options} -XX:SharedArchiveFile={archive} {QUIET}".strip()


def usable(java: str, classpath: str, archive: Path = ARCHIVE) -> bool:
    """Whether this Java maps the archive for this classpath: `-Xshare:on` turns a refusal (another JDK build,
    other jars) into an exit status instead of a silent fallback."""
    if not archive.is_file():
        return False
    env = {k: v for k, v in os.environ.items() if k != "JAVA_TOOL_OPTIONS"}
    done = subprocess.run([java, "-Xshare:on", f"-XX:SharedArchiveFile={archive}", QUIET, "-cp", classpath,
                           "-version"], env=env, capture_output=True, timeout=60)
    return done.returncode == 0


def dump(archive: Path = ARCHIVE) -> bool:
    """Make the archive current (one node started and stopped); False when Apache Kafka cannot run here."""
    if unavailable_reason() is not None:
        return False
    java, jars = find_java(), resolve_jars()
    classpath = os.pathsep.join(str(j) for j in jars)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with open(archive.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest runs at once: the second finds the first's archive current
        if usable(java, classpath, archive):
            return True
        partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
        work = Path(tempfile.mkdtemp(prefix="mash-cds-"))
        options = os.environ.get("JAVA_TOOL_OPTIONS")
        try:
            # Options of the suite's JVMs (C1), not JAVA_TOOL_OPTIONS: an archive already named there would clash.
            os.environ["JAVA_TOOL_OPTIONS"] = "-XX:TieredStopAtLevel=1"
            kafka = ApacheKafka(nodes=1, data_dir=work, java=java, classpath=jars,
                                jvm_flags=(f"-XX:ArchiveClassesAtExit={partial}", QUIET)).start()
            kafka.stop()  # a clean exit: the JVM writes the archive as it ends
            if not usable(java, classpath, partial):
                return False
            os.replace(partial, archive)  # whole or not at all: a JVM never maps a half-written file
            return True
        finally:
            if options is None:
                os.environ.pop("JAVA_TOOL_OPTIONS", None)
            else:  # dump() from a test process (tests/unit/test_suite_setup.py): its options as they were
                os.environ["JAVA_TOOL_OPTIONS"] = options
            partial.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)


def spawn_dump() -> None:
    """Start `dump` detached, for tests/conftest.py: the run goes on meanwhile, and a JVM started before the
    archive exists simply runs without it."""
    with contextlib.suppress(OSError):
        subprocess.Popen([sys.executable, "-m", "tests.kafka_class_archive"], cwd=Path(__file__).parents[1],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)


def _give_up(signum: int, frame: object) -> None:
    raise SystemExit(1)  # unwinds through dump(): the node is stopped, the partial file and the node's dir removed


if __name__ == "__main__":
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(DUMP_BOUND_S)
    dump()
