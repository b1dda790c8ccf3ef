"""One way to open the broker's SQLite registers: autocommit, WAL (readers never block the writer), shared across
threads (the stores are used from the event loop and from worker threads)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_register(path: Path, schema: str, *, durable: bool = False) -> sqlite3.Connection:
    """The database at `path` (created with its folder), with `schema` (CREATE TABLE IF NOT EXISTS ...) applied.

    `durable`: every commit is synced before it returns (what an acknowledged admin action needs); otherwise WAL's
    NORMAL mode, which survives a process crash and may lose the last commits on power loss (fine for state that
    the event stream rebuilds).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    db.execute(schema)
    return db
