"""What the insight watch's read costs a process in resident memory, beside its own objects (issue 24, session 13):
the audit store's SQLite page cache. watch_memory.py measures the watch's Python objects (tracemalloc), which never
see SQLite's own allocations; this measures the process's RSS before and after streaming an audit store's records of
two kinds through `AuditStore.bodies_of_kind` twice over: with the store as a share worker opens it (SQLite's
default 2 MiB page cache, since session 14), or with an appender's cache (`--appender-cache`: the audit indexer's
`AUDIT_CACHE_KIB`, which every process had in session 13; `--cache-kib` to try another).

    .venv/bin/mash-broker bench floor --records 20000 --batch 20 --workdir W   # a store of fictitious records
    .venv/bin/python -m tests.insight.watch_cache_memory W/data [--appender-cache [--cache-kib N]]

Each run is a process of its own (RSS is the process's). Reported, not asserted: a figure for RESULTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import broker.audit.store as audit_store

KINDS = ("event_published", "decision")


def rss_mb() -> float:
    """This process's resident set, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="a data folder holding audit.sqlite")
    parser.add_argument("--appender-cache", action="store_true", help="the audit indexer's page cache")
    parser.add_argument("--cache-kib", type=int, default=audit_store.AUDIT_CACHE_KIB,
                        help="with --appender-cache: its size (default: the indexer's)")
    args = parser.parse_args()
    store = audit_store.open_audit_store(args.data_dir)
    if args.appender_cache:
        audit_store.AUDIT_CACHE_KIB = args.cache_kib  # read when the cache is set
        store.cache_for_appends()
    cache = -int(store._sql.conn.execute("PRAGMA cache_size").fetchone()[0])
    try:
        before = rss_mb()
        passes = []
        for _ in range(2):  # the second pass: does the cache, once full, grow again?
            count = sum(1 for kind in KINDS for _ in store.bodies_of_kind(kind))
            passes.append(round(rss_mb() - before, 1))
    finally:
        store.close()
    print(f"page cache {cache} KiB: {count} records a pass; RSS {before:.1f} MB, growth after pass 1 / 2:"
          f" {passes[0]} / {passes[1]} MB")


if __name__ == "__main__":
    main()
