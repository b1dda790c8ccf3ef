"""SQLite files for key material: created 0600 in a 0700 directory, WAL for concurrent processes, secure_delete so
shredded rows are overwritten with zeros rather than left in free pages."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def open_key_db(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # a data key must be on disk before anything it encrypted is published
    db.execute("PRAGMA secure_delete=ON")
    return db
