"""The case register: open or closed social care case per child (linkage token), fed by the share stage."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from broker.stores.db import open_register


class CaseRegister:
    FILE, TABLE = "cases.sqlite", "cases"  # its SQLite file in the data directory, and its table
    TABLES = ("cases",)  # every table, for `stores migrate`

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, ["CREATE TABLE IF NOT EXISTS cases (subject TEXT PRIMARY KEY,"
                                       " open INTEGER NOT NULL, event_id TEXT NOT NULL)"], url=url)

    def is_open(self, subject: str) -> bool | None:
        """None when the broker has seen no social care event about the child."""
        rows = self.db.query("SELECT open FROM cases WHERE subject = ?", (subject,))
        return bool(rows[0][0]) if rows else None

    def open_states(self, subjects: Iterable[str]) -> dict[str, bool | None]:
        """`is_open` for many children at once, one query per IN chunk (a share batch's tokens): every subject asked
        about is a key, None for a child the broker has seen no social care event about."""
        wanted = list(dict.fromkeys(subjects))
        held = {s: bool(o) for s, o in self.db.query_in("SELECT subject, open FROM cases WHERE subject IN ({marks})",
                                                         wanted)}
        return {s: held.get(s) for s in wanted}

    def set(self, subject: str, is_open: bool, event_id: str) -> None:
        self.db.execute("INSERT INTO cases VALUES (?, ?, ?) ON CONFLICT (subject) DO UPDATE SET open = excluded.open,"
                        " event_id = excluded.event_id", (subject, int(is_open), event_id))

    def fold(self, absorbed: str, into: str, event_id: str) -> None:
        """Two tokens found to be one child: a case open under either is open under `into`."""
        theirs, ours = self.is_open(absorbed), self.is_open(into)
        if theirs is not None and not ours:
            self.set(into, theirs, event_id)

    def close(self) -> None:
        self.db.close()
