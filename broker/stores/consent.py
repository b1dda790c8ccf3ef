"""The consent register: withdrawn consent and objections per child (by linkage token), as IG records them."""

from __future__ import annotations

from pathlib import Path

from broker.policy import ConsentState
from broker.policy.consent import stricter
from broker.stores.db import open_register


class ConsentRegister:
    FILE, TABLE = "consent.sqlite", "consent"  # its SQLite file in the data directory, and its table

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, ["CREATE TABLE IF NOT EXISTS consent (subject TEXT PRIMARY KEY,"
                                       " status TEXT NOT NULL, objection INTEGER NOT NULL, recorded_on TEXT)"],
                                url=url, durable=True)

    def get(self, subject: str) -> ConsentState | None:
        rows = self.db.query("SELECT status, objection, recorded_on FROM consent WHERE subject = ?", (subject,))
        return ConsentState(rows[0][0], bool(rows[0][1]), rows[0][2]) if rows else None

    def put(self, subject: str, state: ConsentState) -> None:
        self.db.execute("INSERT INTO consent VALUES (?, ?, ?, ?) ON CONFLICT(subject) DO UPDATE SET"
                        " status = excluded.status, objection = excluded.objection,"
                        " recorded_on = excluded.recorded_on",
                        (subject, state.status, int(state.objection), state.recorded_on))

    def fold(self, absorbed: str, into: str) -> None:
        """Two tokens found to be one child: what was recorded under `absorbed` now also binds `into`, the more
        restrictive record winning, so a family's refusal is never lost by a merge."""
        theirs = self.get(absorbed)
        if theirs is not None:
            ours = self.get(into)
            self.put(into, theirs if ours is None else stricter(ours, theirs))

    def close(self) -> None:
        self.db.close()
