"""The referral register: shares the law routes to a person (an objection or refusal under public task), waiting for
a recorded human decision, and what that person decided.

One row per (subscriber, event): the share worker records it when the engine withholds with `human_decision` set,
idempotently (a redelivered batch finds the row and adds nothing). It holds what a decider needs to see and what
the broker needs to act, never a value from the event: ids, the linkage token, codes, the engine's value-free reason,
the events-topic position the event can be re-read from, the partners who may decide, and, once decided, the choice,
the decider's credential, their value-free reason and the fields they withheld (schema paths and labels).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.errors import Conflict
from broker.stores.db import open_register

PENDING = "pending"

_COLUMNS = ("referral_id", "subscriber", "event_id", "event_type", "subject", "rule_id", "restriction",
            "recorded_on", "basis", "reason", "source_agency", "deciders", "partition", "position", "referred_at",
            "status", "decision_id", "decided_at", "decided_by", "decision_reason", "withheld", "delivered_at")
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS referrals (referral_id TEXT NOT NULL UNIQUE, subscriber TEXT NOT NULL,"
    " event_id TEXT NOT NULL, event_type TEXT NOT NULL, subject TEXT NOT NULL, rule_id TEXT NOT NULL,"
    " restriction TEXT NOT NULL, recorded_on TEXT, basis TEXT NOT NULL, reason TEXT NOT NULL,"
    " source_agency TEXT, deciders TEXT NOT NULL, partition INTEGER NOT NULL, position BIGINT NOT NULL,"
    " referred_at TEXT NOT NULL, status TEXT NOT NULL, decision_id TEXT, decided_at TEXT, decided_by TEXT,"
    " decision_reason TEXT, withheld TEXT, delivered_at TEXT, PRIMARY KEY (subscriber, event_id))",
    "CREATE INDEX IF NOT EXISTS referrals_status ON referrals (status, referred_at)",
]


@dataclass(frozen=True, slots=True)
class Referral:
    referral_id: str  # the withholding decision's id (UUIDv5 of event, subscriber, protocol): stable on redelivery
    subscriber: str
    event_id: str
    event_type: str
    subject: str  # the child's linkage token
    rule_id: str
    restriction: str  # objection | withdrawn | refused
    recorded_on: str | None
    basis: tuple[str, ...]  # the rule's lawful bases (the provision relied on; none a duty to disclose)
    reason: str  # the engine's value-free reason
    source_agency: str | None
    deciders: tuple[str, ...]  # partner ids whose decision_maker may decide
    partition: int
    position: int  # offset on the events topic
    referred_at: str
    status: str = PENDING  # pending | share | withhold | share_in_part
    decision_id: str | None = None
    decided_at: str | None = None
    decided_by: str | None = None  # the decider's audit actor (grant and credential)
    decision_reason: str | None = None
    withheld: dict[str, list[str]] | None = None  # {"classifications": [...], "paths": [...]}
    delivered_at: str | None = None

    def view(self) -> dict[str, Any]:
        """What the API shows: codes, ids and value-free text only (no position: an operator's detail)."""
        return {"referral_id": self.referral_id, "subscriber": self.subscriber, "event_id": self.event_id,
                "event_type": self.event_type, "subject": self.subject, "rule_id": self.rule_id,
                "restriction": self.restriction, "recorded_on": self.recorded_on, "basis": list(self.basis),
                "reason": self.reason, "source_agency": self.source_agency, "deciders": list(self.deciders),
                "referred_at": self.referred_at, "status": self.status, "decision_id": self.decision_id,
                "decided_at": self.decided_at, "decided_by": self.decided_by,
                "decision_reason": self.decision_reason, "withheld": self.withheld,
                "delivered_at": self.delivered_at}


def _row(r: Referral) -> tuple[Any, ...]:
    return (r.referral_id, r.subscriber, r.event_id, r.event_type, r.subject, r.rule_id, r.restriction,
            r.recorded_on, json.dumps(list(r.basis)), r.reason, r.source_agency, json.dumps(list(r.deciders)),
            r.partition, r.position, r.referred_at, r.status, r.decision_id, r.decided_at, r.decided_by,
            r.decision_reason, json.dumps(r.withheld) if r.withheld is not None else None, r.delivered_at)


def _referral(row: tuple[Any, ...]) -> Referral:
    v = dict(zip(_COLUMNS, row, strict=True))
    return Referral(**{**v, "basis": tuple(json.loads(v["basis"])), "deciders": tuple(json.loads(v["deciders"])),
                       "partition": int(v["partition"]), "position": int(v["position"]),
                       "withheld": json.loads(v["withheld"]) if v["withheld"] else None})


class AlreadyDecided(Conflict):
    """The referral is not pending: someone decided it first (the API's 409)."""


class ReferralRegister:
    FILE, TABLE = "decisions.sqlite", "referrals"  # its SQLite file in the data directory, and its table
    TABLES = ("referrals",)  # every table, for `stores migrate`

    def __init__(self, path: Path, url: str | None = None) -> None:
        # durable: a referral must outlive a power cut once the batch that raised it is committed, and a person's
        # decision once it was acknowledged
        self.db = open_register(path, _SCHEMA, url=url, durable=True)

    def refer(self, referrals: Iterable[Referral]) -> None:
        """Pending referrals, before the events topic's offsets are committed. A (subscriber, event) already
        referred keeps its row (a redelivered batch, or the same event resent, adds nothing); a pending one takes the
        newer events-topic position (an agency's resend after Kafka lost its topics is where the event now is), a
        decided one is left as it was decided."""
        rows = [_row(r) for r in referrals]
        with self.db.transaction():
            self.db.executemany(f"INSERT INTO referrals VALUES ({','.join('?' * len(_COLUMNS))})"
                                " ON CONFLICT (subscriber, event_id) DO UPDATE SET partition = excluded.partition,"
                                " position = excluded.position WHERE referrals.status = 'pending'", rows)

    def get(self, referral_id: str) -> Referral | None:
        rows = self.db.query(f"SELECT {', '.join(_COLUMNS)} FROM referrals WHERE referral_id = ?", (referral_id,))
        return _referral(rows[0]) if rows else None

    def listed(self, *, status: str | None = PENDING, deciders: Iterable[str] | None = None,
               limit: int = 500) -> list[Referral]:
        """Referrals (pending by default), oldest first; with `deciders`, only those one of them may decide."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM referrals"
        params: list[Any] = []
        if status is not None:
            sql, params = sql + " WHERE status = ?", [status]
        rows = [_referral(r) for r in self.db.query(sql + " ORDER BY referred_at, referral_id", params)]
        if deciders is not None:
            mine = set(deciders)
            rows = [r for r in rows if mine & set(r.deciders)]
        return rows[:limit]

    def decide(self, referral_id: str, *, status: str, decision_id: str, decided_at: str, decided_by: str,
               reason: str, withheld: dict[str, list[str]] | None) -> Referral:
        """Record the person's decision, once: AlreadyDecided when it is not pending (a second decision, or two at
        the same instant: the database lets one through)."""
        with self.db.transaction():
            cur = self.db.execute(
                "UPDATE referrals SET status = ?, decision_id = ?, decided_at = ?, decided_by = ?,"
                " decision_reason = ?, withheld = ? WHERE referral_id = ? AND status = ?",
                (status, decision_id, decided_at, decided_by, reason,
                 json.dumps(withheld) if withheld is not None else None, referral_id, PENDING))
            if cur.rowcount != 1:
                raise AlreadyDecided(referral_id)
        found = self.get(referral_id)
        assert found is not None
        return found

    def delivered(self, referral_id: str, at: str) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE referrals SET delivered_at = ? WHERE referral_id = ? AND delivered_at IS NULL",
                            (at, referral_id))

    def count(self, status: str | None = PENDING) -> int:
        if status is None:
            return int(self.db.query("SELECT COUNT(*) FROM referrals")[0][0])
        return int(self.db.query("SELECT COUNT(*) FROM referrals WHERE status = ?", (status,))[0][0])

    def close(self) -> None:
        self.db.close()
