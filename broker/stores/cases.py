"""The case register: open or closed social care case per child (linkage token), fed by the share stage."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class CaseRegister:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS cases (subject TEXT PRIMARY KEY, open INTEGER NOT NULL,"
                        " event_id TEXT NOT NULL)")

    def is_open(self, subject: str) -> bool | None:
        """None when the broker has seen no social care event about the child."""
        row = self.db.execute("SELECT open FROM cases WHERE subject = ?", (subject,)).fetchone()
        return bool(row[0]) if row else None

    def set(self, subject: str, is_open: bool, event_id: str) -> None:
        self.db.execute("INSERT INTO cases VALUES (?, ?, ?) ON CONFLICT(subject) DO UPDATE SET open = excluded.open,"
                        " event_id = excluded.event_id", (subject, int(is_open), event_id))

    def close(self) -> None:
        self.db.close()
