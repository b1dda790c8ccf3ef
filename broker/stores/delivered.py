"""Which events each subscriber has been sent: the share stage's duplicate filter (at-least-once made exactly-once
for the subscriber, since event ids are deterministic)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from broker.stores.db import open_register


class DeliveredLog:
    FILE, TABLE = "delivered.sqlite", "delivered"  # its SQLite file in the data directory, and its table

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, ["CREATE TABLE IF NOT EXISTS delivered (subscriber TEXT NOT NULL,"
                                       " event_id TEXT NOT NULL, decision_id TEXT NOT NULL,"
                                       " PRIMARY KEY (subscriber, event_id))"], url=url)

    def sent(self, subscribers: Iterable[str], event_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(subscriber, event id) pairs already sent: one query for a whole batch. Naming the subscribers lets it use
        the primary key (subscriber, event_id); by event id alone it would scan the whole log."""
        subs, ids = sorted(set(subscribers)), sorted(set(event_ids))
        found: set[tuple[str, str]] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found.update(self.db.query(
                f"SELECT subscriber, event_id FROM delivered WHERE subscriber IN ({','.join('?' * len(subs))})"
                f" AND event_id IN ({','.join('?' * len(chunk))})", [*subs, *chunk]))
        return found

    def mark(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """(subscriber, event_id, decision_id) rows, after Kafka acknowledged the deliveries."""
        with self.db.transaction():
            self.db.executemany("INSERT INTO delivered VALUES (?, ?, ?) ON CONFLICT DO NOTHING", list(rows))

    def close(self) -> None:
        self.db.close()
