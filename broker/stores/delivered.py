"""Which events each subscriber has been sent: the share stage's duplicate filter (at-least-once made exactly-once
for the subscriber, since event ids are deterministic)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from broker.stores.sqlite import open_register


class DeliveredLog:
    def __init__(self, path: Path) -> None:
        self.db = open_register(path, "CREATE TABLE IF NOT EXISTS delivered ("
                                "subscriber TEXT NOT NULL, event_id TEXT NOT NULL, decision_id TEXT NOT NULL,"
                                " PRIMARY KEY (subscriber, event_id))")

    def already(self, subscriber: str, event_ids: Iterable[str]) -> set[str]:
        ids = list(event_ids)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT event_id FROM delivered WHERE subscriber = ? AND event_id IN ({marks})",
                               [subscriber, *ids])
        return {r[0] for r in rows}

    def sent(self, event_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(subscriber, event id) pairs already sent, for any subscriber: one query for a whole batch."""
        ids = sorted(set(event_ids))
        found: set[tuple[str, str]] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found.update(self.db.execute(f"SELECT subscriber, event_id FROM delivered WHERE event_id IN "
                                         f"({','.join('?' * len(chunk))})", chunk))
        return found

    def mark(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """(subscriber, event_id, decision_id) rows, after Kafka acknowledged the deliveries."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR IGNORE INTO delivered VALUES (?, ?, ?)", list(rows))

    def close(self) -> None:
        self.db.close()
