"""Each HTTP subscriber's acknowledged cursor (where a pull without `after` resumes), and the Kafka epoch those
cursors are positions in.

The epoch is a random id the broker writes both here and to a marker topic (broker/service/epoch.py): when Kafka
loses its topics (the embedded broker keeps them in memory), the marker goes with them, and the mismatch tells the
next start that every position remembered here points at nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broker.stores.db import open_register

_EPOCH_SLOT = "kafka"


@dataclass(frozen=True, slots=True)
class EpochRecord:
    epoch: str
    recorded_at: str
    lost_at: str | None  # when a start last found Kafka had lost its topics (None: never)


class CursorStore:
    FILE, TABLE = "cursors.sqlite", "acked"  # its SQLite file in the data directory, and its table
    TABLES = ("acked", "kafka_epoch")  # every table, for `stores migrate` (the epoch too: cursors carry it)

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, ["CREATE TABLE IF NOT EXISTS acked (subscriber TEXT PRIMARY KEY,"
                                       " cursor TEXT NOT NULL, acked_at TEXT NOT NULL)",
                                       "CREATE TABLE IF NOT EXISTS kafka_epoch (slot TEXT PRIMARY KEY,"
                                       " epoch TEXT NOT NULL, recorded_at TEXT NOT NULL, lost_at TEXT)"],
                                url=url, durable=True)

    def get(self, subscriber: str) -> str | None:
        rows = self.db.query("SELECT cursor FROM acked WHERE subscriber = ?", (subscriber,))
        return rows[0][0] if rows else None

    def put(self, subscriber: str, cursor: str, acked_at: str) -> None:
        self.db.execute("INSERT INTO acked VALUES (?, ?, ?) ON CONFLICT (subscriber) DO UPDATE SET"
                        " cursor = excluded.cursor, acked_at = excluded.acked_at", (subscriber, cursor, acked_at))

    def put_if(self, subscriber: str, cursor: str, acked_at: str, check: Callable[[str | None], None]) -> None:
        """`put`, after `check(current cursor)` (which raises to refuse), in one transaction: two acknowledgements
        racing cannot move the cursor backwards between the check and the write."""
        with self.db.transaction():
            check(self.get(subscriber))
            self.put(subscriber, cursor, acked_at)

    # --- the Kafka epoch ---------------------------------------------------------------------------------------
    def epoch(self) -> EpochRecord | None:
        rows = self.db.query("SELECT epoch, recorded_at, lost_at FROM kafka_epoch WHERE slot = ?", (_EPOCH_SLOT,))
        return EpochRecord(*rows[0]) if rows else None

    def adopt_epoch(self, epoch: str, now: str) -> EpochRecord:
        """Record `epoch` unless one is recorded already (first writer wins); returns the one in force."""
        self.db.execute("INSERT INTO kafka_epoch VALUES (?, ?, ?, NULL) ON CONFLICT DO NOTHING",
                        (_EPOCH_SLOT, epoch, now))
        record = self.epoch()
        assert record is not None
        return record

    def replace_epoch(self, old: str, new: str, now: str) -> bool:
        """Compare and swap after a topic loss: True if `old` was in force and is now `new` (False: another process
        swapped first)."""
        cur = self.db.execute("UPDATE kafka_epoch SET epoch = ?, recorded_at = ?, lost_at = ? WHERE slot = ? AND"
                              " epoch = ?", (new, now, now, _EPOCH_SLOT, old))
        return cur.rowcount == 1

    def close(self) -> None:
        self.db.close()
