"""Deliveries held back because their subscriber cannot be sealed to (its public key file is missing or unusable).

One row per (subscriber, event): where the event sits on the events topic, so that the share stage can read it
again and deliver it once the key loads. While a subscriber has rows here, its new deliveries are held too, behind
them, so that one child's events still reach it in order. Nothing personal is kept: ids and Kafka positions only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from broker.stores.db import open_register


@dataclass(frozen=True, slots=True)
class Held:
    subscriber: str
    event_id: str
    partition: int
    offset: int


class HeldDeliveries:
    FILE, TABLE = "held.sqlite", "held"  # its SQLite file in the data directory, and its table

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, ["CREATE TABLE IF NOT EXISTS held (subscriber TEXT NOT NULL,"
                                       " event_id TEXT NOT NULL, partition INTEGER NOT NULL,"
                                       " position BIGINT NOT NULL, held_at TEXT NOT NULL,"
                                       " PRIMARY KEY (subscriber, event_id))"], url=url, durable=True)

    def hold(self, rows: Iterable[Held], held_at: str) -> None:
        """Before the events topic's offsets are committed: a held delivery is never only in memory. The first
        position of an event is kept (a resend of it is the same event)."""
        with self.db.transaction():
            self.db.executemany("INSERT INTO held VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                [(h.subscriber, h.event_id, h.partition, h.offset, held_at) for h in rows])

    def counts(self) -> dict[str, int]:
        """Held deliveries per subscriber (only subscribers that have some)."""
        return {s: int(n) for s, n in self.db.query("SELECT subscriber, COUNT(*) FROM held GROUP BY subscriber")}

    def oldest(self, subscriber: str, limit: int = 500) -> list[Held]:
        """The subscriber's held deliveries in events-topic order (per partition: the order one child's events
        were published in)."""
        return [Held(subscriber, e, int(p), int(o)) for e, p, o in self.db.query(
            "SELECT event_id, partition, position FROM held WHERE subscriber = ? ORDER BY partition, position"
            " LIMIT ?", (subscriber, limit))]

    def release(self, subscriber: str, event_ids: Iterable[str]) -> None:
        """Rows done with: delivered, or dropped with an audit record saying why."""
        with self.db.transaction():
            self.db.executemany("DELETE FROM held WHERE subscriber = ? AND event_id = ?",
                                [(subscriber, e) for e in event_ids])

    def close(self) -> None:
        self.db.close()
