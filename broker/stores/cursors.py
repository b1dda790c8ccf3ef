"""Each HTTP subscriber's acknowledged cursor: where a pull without `after` resumes."""

from __future__ import annotations

from pathlib import Path

from broker.stores.sqlite import open_register


class CursorStore:
    def __init__(self, path: Path) -> None:
        self.db = open_register(path, "CREATE TABLE IF NOT EXISTS acked ("
                                "subscriber TEXT PRIMARY KEY, cursor TEXT NOT NULL, acked_at TEXT NOT NULL)",
                                durable=True)

    def get(self, subscriber: str) -> str | None:
        row = self.db.execute("SELECT cursor FROM acked WHERE subscriber = ?", (subscriber,)).fetchone()
        return row[0] if row else None

    def put(self, subscriber: str, cursor: str, acked_at: str) -> None:
        self.db.execute("INSERT INTO acked VALUES (?, ?, ?) ON CONFLICT(subscriber) DO UPDATE SET"
                        " cursor = excluded.cursor, acked_at = excluded.acked_at", (subscriber, cursor, acked_at))

    def close(self) -> None:
        self.db.close()
