"""Each HTTP subscriber's acknowledged cursor: where a pull without `after` resumes."""

from __future__ import annotations

from pathlib import Path

from broker.stores.db import open_register


class CursorStore:
    FILE, TABLE = "cursors.sqlite", "acked"  # its SQLite file in the data directory, and its table

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, ["CREATE TABLE IF NOT EXISTS acked (subscriber TEXT PRIMARY KEY,"
                                       " cursor TEXT NOT NULL, acked_at TEXT NOT NULL)"], url=url, durable=True)

    def get(self, subscriber: str) -> str | None:
        rows = self.db.query("SELECT cursor FROM acked WHERE subscriber = ?", (subscriber,))
        return rows[0][0] if rows else None

    def put(self, subscriber: str, cursor: str, acked_at: str) -> None:
        self.db.execute("INSERT INTO acked VALUES (?, ?, ?) ON CONFLICT (subscriber) DO UPDATE SET"
                        " cursor = excluded.cursor, acked_at = excluded.acked_at", (subscriber, cursor, acked_at))

    def close(self) -> None:
        self.db.close()
