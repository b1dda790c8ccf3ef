"""Where each event was first served to each HTTP subscriber: pull and server-sent events skip a redelivered copy.

A share worker killed between Kafka's acknowledgement of a delivery and its delivered-log write sends that delivery
again after restart, so the delivery topic can hold two copies of one event. The first copy served wins: reading it
again (a retry before the ack) serves it again; a copy at any other position is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from broker.stores.db import open_register


class FirstServed:
    FILE, TABLE = "first-served.sqlite", "first_served"  # its SQLite file in the data directory, and its table
    TABLES = ("first_served",)  # every table, for `stores migrate`

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, ["CREATE TABLE IF NOT EXISTS first_served (subscriber TEXT NOT NULL,"
                                       " event_id TEXT NOT NULL, partition INTEGER NOT NULL, position BIGINT NOT NULL,"
                                       " PRIMARY KEY (subscriber, event_id))"], url=url)

    def keep(self, subscriber: str, copies: Sequence[tuple[str | None, int, int]]) -> list[bool]:
        """For each (event id, partition, offset), in topic order: serve it (True) unless another copy of the same
        event was served first. Copies without an event id are always served."""
        rows = [(subscriber, e, p, o) for e, p, o in copies if e]
        if not rows:
            return [True] * len(copies)
        ids = sorted({r[1] for r in rows})
        with self.db.transaction():
            self.db.executemany("INSERT INTO first_served VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)
            first = {e: (p, o) for e, p, o in self.db.query(
                f"SELECT event_id, partition, position FROM first_served WHERE subscriber = ? AND event_id IN "
                f"({','.join('?' * len(ids))})", [subscriber, *ids])}
        return [not e or first.get(e) == (p, o) for e, p, o in copies]

    def close(self) -> None:
        self.db.close()
