"""Which events each subscriber has been sent: the share stage's duplicate filter (at-least-once made exactly-once
for the subscriber, since event ids are deterministic)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from broker.stores.db import open_register


class DeliveredLog:
    FILE, TABLE = "delivered.sqlite", "delivered"  # its SQLite file in the data directory, and its table
    TABLES = ("delivered", "recipients")  # every table, for `stores migrate`

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, ["CREATE TABLE IF NOT EXISTS delivered (subscriber TEXT NOT NULL,"
                                       " event_id TEXT NOT NULL, decision_id TEXT NOT NULL,"
                                       " PRIMARY KEY (subscriber, event_id))",
                                       # who was ever sent something about a child: who a person.erased notice
                                       # must reach (tokens only)
                                       "CREATE TABLE IF NOT EXISTS recipients (token TEXT NOT NULL,"
                                       " subscriber TEXT NOT NULL, PRIMARY KEY (token, subscriber))"], url=url)

    def sent(self, subscribers: Iterable[str], event_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(subscriber, event id) pairs already sent: one query for a whole batch. Naming the subscribers lets it use
        the primary key (subscriber, event_id); by event id alone it would scan the whole log."""
        subs = sorted(set(subscribers))
        return set(self.db.query_in(f"SELECT subscriber, event_id FROM delivered WHERE subscriber IN"
                                    f" ({','.join('?' * len(subs))}) AND event_id IN ({{marks}})", event_ids, subs))

    def mark(self, rows: Iterable[tuple[str, str, str]], recipients: Iterable[tuple[str, str]] = ()) -> None:
        """(subscriber, event_id, decision_id) rows, after Kafka acknowledged the deliveries, and the (token,
        subscriber) pairs they were about, in the same transaction."""
        with self.db.transaction():
            self.db.executemany("INSERT INTO delivered VALUES (?, ?, ?) ON CONFLICT DO NOTHING", list(rows))
            self.db.executemany("INSERT INTO recipients VALUES (?, ?) ON CONFLICT DO NOTHING",
                                list(dict.fromkeys(recipients)))

    def recipients(self, tokens: Iterable[str]) -> set[str]:
        """The subscribers ever sent a delivery about any of these tokens."""
        return {r[0] for r in self.db.query_in("SELECT DISTINCT subscriber FROM recipients WHERE token IN ({marks})",
                                               tokens)}

    def close(self) -> None:
        self.db.close()
