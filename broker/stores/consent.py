"""The consent register: withdrawn consent and objections per child (by linkage token), as IG records them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from broker.policy import ConsentState


class ConsentRegister:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS consent (subject TEXT PRIMARY KEY, status TEXT NOT NULL,"
                        " objection INTEGER NOT NULL, recorded_on TEXT)")

    def get(self, subject: str) -> ConsentState | None:
        row = self.db.execute("SELECT status, objection, recorded_on FROM consent WHERE subject = ?",
                              (subject,)).fetchone()
        return ConsentState(row[0], bool(row[1]), row[2]) if row else None

    def put(self, subject: str, state: ConsentState) -> None:
        self.db.execute("INSERT INTO consent VALUES (?, ?, ?, ?) ON CONFLICT(subject) DO UPDATE SET"
                        " status = excluded.status, objection = excluded.objection,"
                        " recorded_on = excluded.recorded_on",
                        (subject, state.status, int(state.objection), state.recorded_on))

    def close(self) -> None:
        self.db.close()
