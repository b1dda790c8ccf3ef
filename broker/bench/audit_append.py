"""The audit store's append on its own: the bench floor's audit batches replayed into fresh stores (issue 24).

The batches are the ones `tests/audit/fixtures/append_mix.json.gz` holds (every batch the floor's audit part appended
over two mixes: 120 records in requests of 20, 30 one at a time; synthetic, fictitious children). Each replay opens a
fresh store the way the audit indexer has it (`open_appender`: SQLite in WAL mode, the appender's page cache, a
signing key) in a temporary folder, appends the mix's batches in order, and counts the process's CPU over the
appends alone (user and kernel: each append's COMMIT is an `fdatasync`), so opening and closing the store are not in
the figure. CPU, not wall clock: on a shared, loaded host the wall clock is mostly the other processes. A round is
`repeats` replays; the figure is the median round, per event of the mix (the floor's records) and per stored entry.

    nice -n 19 ionice -c3 .venv/bin/python -m broker.bench.audit_append --repeats 200 --rounds 5

It also writes each mix once with SQLite's automatic checkpoint off and reports the write-ahead log's bytes per
commit (frames of pages the commits wrote): what the indexes cost in I/O, a count and not a timing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from broker.audit.store import AuditStore, open_audit_store

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "audit" / "fixtures" / "append_mix.json.gz"
WAL_HEADER, FRAME_HEADER = 32, 24  # bytes: SQLite's WAL file header, and each frame's before its page


@dataclass(frozen=True, slots=True)
class Mix:
    records: int  # the floor's records (events) whose audit batches these are
    batch: int  # records per request on the floor
    batches: list[list[Any]]


@dataclass(frozen=True, slots=True)
class Figure:
    records: int
    batch: int
    appends: int  # append calls per replay (one COMMIT each)
    entries: int  # entries a replay stores
    repeats: int
    rounds: list[float]  # CPU seconds of each round's appends
    cpu_us_per_event: float  # the median round, per event
    cpu_us_per_entry: float
    wal_bytes_per_commit: float


def load_mixes(path: Path = FIXTURE) -> list[Mix]:
    data = json.loads(gzip.decompress(path.read_bytes()))
    return [Mix(m["records"], m["batch"], m["batches"]) for m in data["mixes"]]


def _cpu() -> float:
    """This process's CPU seconds, user and kernel."""
    return time.process_time()


def open_appender(folder: Path) -> AuditStore:
    """The store as the audit indexer has it: opened, then given the appender's page cache."""
    store = open_audit_store(folder, create_key=True)
    store.cache_for_appends()
    return store


def replay(store: AuditStore, batches: Sequence[Sequence[Any]]) -> tuple[float, int]:
    """Append every batch in order; the CPU seconds the appends took, and the entries they stored."""
    start = _cpu()
    stored = sum(len(store.append(b)) for b in batches)
    return _cpu() - start, stored


def replay_fresh(batches: Sequence[Sequence[Any]], folder: Path) -> tuple[float, int]:
    """`replay` into a new store in `folder` (made, then emptied again)."""
    store = open_appender(folder)
    try:
        return replay(store, batches)
    finally:
        store.close()
        for f in folder.iterdir():
            f.unlink()


def wal_bytes_per_commit(batches: Sequence[Sequence[Any]], folder: Path) -> float:
    """The WAL's growth per append with the automatic checkpoint off: every page the commits wrote, as frames."""
    store = open_appender(folder)
    try:
        store._sql.execute("PRAGMA wal_autocheckpoint=0")
        store._sql.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the schema's pages out of the log first
        for b in batches:
            store.append(b)
        size = (folder / "audit.sqlite-wal").stat().st_size
    finally:
        store.close()
        for f in folder.iterdir():
            f.unlink()
    return max(0, size - WAL_HEADER) / len(batches)


def measure(mix: Mix, *, repeats: int, rounds: int) -> Figure:
    with tempfile.TemporaryDirectory(prefix="mash-audit-append-") as d:
        folder = Path(d) / "store"
        folder.mkdir(mode=0o700)
        wal = wal_bytes_per_commit(mix.batches, folder)
        entries = replay_fresh(mix.batches, folder)[1]  # a warm-up, and the entries a replay stores
        cpu = [sum(replay_fresh(mix.batches, folder)[0] for _ in range(repeats)) for _ in range(rounds)]
    median = statistics.median(cpu)
    return Figure(mix.records, mix.batch, len(mix.batches), entries, repeats, cpu,
                  median / (repeats * mix.records) * 1e6, median / (repeats * entries) * 1e6, wal)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.bench.audit_append", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200, help="replays per round (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported (default 5)")
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="the batches (append_mix.json.gz)")
    parser.add_argument("--json", action="store_true", help="one JSON object per mix instead of a line")
    args = parser.parse_args(argv)
    for mix in load_mixes(args.fixture):
        fig = measure(mix, repeats=args.repeats, rounds=args.rounds)
        if args.json:
            print(json.dumps(asdict(fig)))
        else:
            print(f"{fig.records} records in requests of {fig.batch}: {fig.cpu_us_per_event:.0f} us CPU per event,"
                  f" {fig.cpu_us_per_entry:.1f} per entry ({fig.entries} entries, {fig.appends} appends,"
                  f" median of {len(fig.rounds)} rounds of {fig.repeats}); WAL {fig.wal_bytes_per_commit:,.0f} bytes"
                  f" per commit; pid {os.getpid()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
