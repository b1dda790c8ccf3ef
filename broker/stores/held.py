"""Deliveries held back because their subscriber cannot be sealed to (its public key file is missing or unusable).

One row per (subscriber, event): where the event sits on the events topic, so that the share stage can read it
again and deliver it once the key loads. While a subscriber has rows here, its new deliveries are held too, behind
them, so that one child's events still reach it in order. Nothing personal is kept: ids and Kafka positions only.

Beside them, `decided`: a person's decision to share (broker/service/decisions.py) whose delivery is not settled
yet. The decision itself is in the referral register; a row here says the broker still owes its audit record and its
delivery, and which of the two are done, so that a sealing fault, Kafka down or a process crash delays the delivery
and never loses or repeats it. A row is written before the decision is recorded (a crash between the two leaves a
row whose referral is still pending, which the retry skips until the person decides), and deleted once the
`delivered` audit record (or the record of why nothing could be sent) is out. Ids and times only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.pipeline.share_plan import Held  # the share planner's type: what a held row records
from broker.stores.db import open_register

__all__ = ["DecidedDelivery", "Held", "HeldDeliveries"]


@dataclass(frozen=True, slots=True)
class DecidedDelivery:
    referral_id: str
    subscriber: str
    event_id: str
    queued_at: str
    audited_at: str | None  # the `human_decision` audit record is out
    sent_at: str | None  # on the subscriber's delivery topic and in the delivered log
    claimed_by: str | None  # the process settling it now (a lease: two processes never settle one row at once)
    claimed_at: str | None
    # The delivery topic's end offset just before a send was attempted: if that attempt heard nothing back, the next
    # searches the topic from here for the message before sending again (Kafka may have written it after all).
    attempted_from: int | None


_DECIDED = ("referral_id", "subscriber", "event_id", "queued_at", "audited_at", "sent_at", "claimed_by", "claimed_at",
            "attempted_from")


def _decided(row: tuple[Any, ...]) -> DecidedDelivery:
    referral_id, subscriber, event_id, queued_at, audited_at, sent_at, claimed_by, claimed_at, attempted_from = row
    return DecidedDelivery(referral_id, subscriber, event_id, queued_at, audited_at, sent_at, claimed_by, claimed_at,
                           None if attempted_from is None else int(attempted_from))




class HeldDeliveries:
    FILE, TABLE = "held.sqlite", "held"  # its SQLite file in the data directory, and its table
    TABLES = ("held", "decided")  # every table, for `stores migrate`

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, ["CREATE TABLE IF NOT EXISTS held (subscriber TEXT NOT NULL,"
                                       " event_id TEXT NOT NULL, partition INTEGER NOT NULL,"
                                       " position BIGINT NOT NULL, held_at TEXT NOT NULL,"
                                       " PRIMARY KEY (subscriber, event_id))",
                                       "CREATE TABLE IF NOT EXISTS decided (referral_id TEXT PRIMARY KEY,"
                                       " subscriber TEXT NOT NULL, event_id TEXT NOT NULL, queued_at TEXT NOT NULL,"
                                       " audited_at TEXT, sent_at TEXT, claimed_by TEXT, claimed_at TEXT,"
                                       " attempted_from BIGINT)"],
                                  url=url, durable=True)

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

    # --- decided shares whose delivery is owed ---------------------------------------------------------------------
    def owe(self, referral_id: str, subscriber: str, event_id: str, at: str) -> None:
        """Before the decision is recorded: once it is, its delivery is owed until settled. Idempotent."""
        with self.db.transaction():
            self.db.execute("INSERT INTO decided (referral_id, subscriber, event_id, queued_at) VALUES (?, ?, ?, ?)"
                            " ON CONFLICT DO NOTHING", (referral_id, subscriber, event_id, at))

    def owed(self, limit: int = 200) -> list[DecidedDelivery]:
        """Decided deliveries not yet settled, oldest first."""
        return [_decided(row) for row in self.db.query(
            f"SELECT {', '.join(_DECIDED)} FROM decided ORDER BY queued_at, referral_id LIMIT ?", (limit,))]

    def owed_one(self, referral_id: str) -> DecidedDelivery | None:
        rows = self.db.query(f"SELECT {', '.join(_DECIDED)} FROM decided WHERE referral_id = ?", (referral_id,))
        return _decided(rows[0]) if rows else None

    def claim(self, referral_id: str, owner: str, at: str, stale_before: str) -> bool:
        """Take the row for `owner` unless another owner took it after `stale_before` (ISO times compare as text).
        A second process retrying the same decision at the same moment gets False and leaves it."""
        with self.db.transaction():
            cur = self.db.execute(
                "UPDATE decided SET claimed_by = ?, claimed_at = ? WHERE referral_id = ? AND (claimed_by IS NULL"
                " OR claimed_by = ? OR claimed_at < ?)", (owner, at, referral_id, owner, stale_before))
            return cur.rowcount == 1

    def unclaim(self, referral_id: str, owner: str) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE decided SET claimed_by = NULL, claimed_at = NULL WHERE referral_id = ?"
                            " AND claimed_by = ?", (referral_id, owner))

    def audited(self, referral_id: str, at: str) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE decided SET audited_at = ? WHERE referral_id = ? AND audited_at IS NULL",
                            (at, referral_id))

    def attempting(self, referral_id: str, end_offset: int) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE decided SET attempted_from = ? WHERE referral_id = ?", (end_offset, referral_id))

    def sent(self, referral_id: str, at: str) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE decided SET sent_at = ? WHERE referral_id = ? AND sent_at IS NULL",
                            (at, referral_id))

    def settled(self, referral_id: str) -> None:
        with self.db.transaction():
            self.db.execute("DELETE FROM decided WHERE referral_id = ?", (referral_id,))

    def close(self) -> None:
        self.db.close()
