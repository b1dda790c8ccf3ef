"""Which events each subscriber has been sent, and when: the share stage's duplicate filter (at-least-once made
exactly-once for the subscriber, since event ids are deterministic), and the hub watch's proof that an Operation
Encompass notification reached the school before the next school day started (`delivered_at`, the time the write
was handed by the shell's clock; a row written before the column existed has none, and proves no time)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from broker.clock import now_iso
from broker.stores.db import Db, open_register


def _instant(at: str) -> dt.datetime:
    return dt.datetime.fromisoformat(at)


def _add_delivered_at(db: Db) -> None:
    """The column a log from before delivery times gains on open (old rows keep NULL: their time is unknown)."""
    if db.dialect == "postgresql":
        db.execute("ALTER TABLE delivered ADD COLUMN IF NOT EXISTS delivered_at TEXT")
    elif "delivered_at" not in {row[1] for row in db.query("PRAGMA table_info(delivered)")}:
        db.execute("ALTER TABLE delivered ADD COLUMN delivered_at TEXT")


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
        _add_delivered_at(self.db)

    def sent(self, subscribers: Iterable[str], event_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(subscriber, event id) pairs already sent: one query for a whole batch. Naming the subscribers lets it use
        the primary key (subscriber, event_id); by event id alone it would scan the whole log."""
        subs = sorted(set(subscribers))
        return set(self.db.query_in(f"SELECT subscriber, event_id FROM delivered WHERE subscriber IN"
                                    f" ({','.join('?' * len(subs))}) AND event_id IN ({{marks}})", event_ids, subs))

    def sent_at(self, subscribers: Iterable[str], event_ids: Iterable[str]) -> dict[str, str | None]:
        """event id -> when it first reached any of these subscribers (None: sent before delivery times were
        recorded); events none of them was sent are left out."""
        subs = sorted(set(subscribers))
        first: dict[str, str | None] = {}
        for event_id, at in self.db.query_in(
                f"SELECT event_id, delivered_at FROM delivered WHERE subscriber IN ({','.join('?' * len(subs))})"
                " AND event_id IN ({marks})", event_ids, subs):
            held = first.get(event_id)
            if event_id not in first or (at is not None and (held is None or _instant(at) < _instant(held))):
                first[event_id] = at  # a known time beats an unknown one: the earliest proven delivery
        return first

    def mark(self, rows: Iterable[tuple[str, str, str]], recipients: Iterable[tuple[str, str]] = (),
             at: str | None = None) -> None:
        """(subscriber, event_id, decision_id) rows, after Kafka acknowledged the deliveries, and the (token,
        subscriber) pairs they were about, in the same transaction. `at`: when Kafka acknowledged them (ISO UTC,
        from the caller's clock); now, when not given. A row already there keeps its first time."""
        when = at or now_iso()
        with self.db.transaction():
            self.db.executemany("INSERT INTO delivered (subscriber, event_id, decision_id, delivered_at)"
                                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", [(*row, when) for row in rows])
            self.db.executemany("INSERT INTO recipients VALUES (?, ?) ON CONFLICT DO NOTHING",
                                list(dict.fromkeys(recipients)))

    def recipients(self, tokens: Iterable[str]) -> set[str]:
        """The subscribers ever sent a delivery about any of these tokens."""
        return {r[0] for r in self.db.query_in("SELECT DISTINCT subscriber FROM recipients WHERE token IN ({marks})",
                                               tokens)}

    def close(self) -> None:
        self.db.close()
