"""The consent register: consent, agreement and objection records per child's case (by linkage token), per kind and
data subject (broker/policy/consent.py), as IG and the agencies record them.

One row per (token, kind, data subject role, ref). The first version held one row per child (`consent`: status,
objection flag, date); opening the register moves those rows into `consent_records` as what they meant, the child's
data protection consent and the child's Art 21 objection (`recorded_by` register_v1, so IG can find and review
them: a refusal recorded then may in substance have been an objection, which now has to be recorded as one), in one
transaction, so an old row is never lost nor read twice. The old table stays, empty, for `stores migrate`.
"""

from __future__ import annotations

from pathlib import Path

from broker.policy.codes import CONSENT_STATUSES
from broker.policy.consent import CHILD, ConsentRecord, ConsentState, compat_records, stricter
from broker.stores.db import Db, open_register

MIGRATED_BY = "register_v1"  # recorded_by of a record moved from the per-child table


class ConsentRegister:
    FILE = "consent.sqlite"  # its SQLite file in the data directory
    TABLE = "consent_records"
    TABLES = ("consent", "consent_records")  # the old per-child table too, so `stores migrate` copies leftovers

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, [
            "CREATE TABLE IF NOT EXISTS consent (subject TEXT PRIMARY KEY, status TEXT NOT NULL,"
            " objection INTEGER NOT NULL, recorded_on TEXT)",
            "CREATE TABLE IF NOT EXISTS consent_records (subject TEXT NOT NULL, kind TEXT NOT NULL,"
            " person_role TEXT NOT NULL, person_ref TEXT NOT NULL, state TEXT NOT NULL, recorded_on TEXT,"
            " recorded_by TEXT, PRIMARY KEY (subject, kind, person_role, person_ref))"], url=url, durable=True)
        migrate_v1(self.db)

    def get(self, subject: str) -> ConsentState | None:
        rows = self.db.query("SELECT kind, person_role, person_ref, state, recorded_on, recorded_by"
                             " FROM consent_records WHERE subject = ?", (subject,))
        if not rows:
            return None
        return ConsentState(records=(ConsentRecord(kind, state, role, ref or None, on, by)
                                     for kind, role, ref, state, on, by in rows))

    def put(self, subject: str, state: ConsentState) -> None:
        """Each record of `state` replaces the one of its kind and data subject; records it does not name stay."""
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO consent_records VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subject, kind, person_role,"
                " person_ref) DO UPDATE SET state = excluded.state, recorded_on = excluded.recorded_on,"
                " recorded_by = excluded.recorded_by",
                [(subject, r.kind, r.subject, r.ref or "", r.state, r.recorded_on, r.recorded_by)
                 for r in state.records])

    def fold(self, absorbed: str, into: str) -> None:
        """Two tokens found to be one child: what was recorded under `absorbed` now also binds `into`, the more
        restrictive record of each kind and data subject winning, so a family's refusal is never lost by a merge."""
        theirs = self.get(absorbed)
        if theirs is not None:
            ours = self.get(into)
            self.put(into, theirs if ours is None else stricter(ours, theirs))

    def close(self) -> None:
        self.db.close()


def migrate_v1(db: Db) -> int:
    """Move the per-child rows of the first version into records (see the module docstring); returns how many.
    A record already held for the same key (written since) is kept: it is the newer."""
    with db.transaction():
        rows = db.query("SELECT subject, status, objection, recorded_on FROM consent")
        if not rows:
            return 0
        records = [(subject, r.kind, CHILD, "", r.state, r.recorded_on, MIGRATED_BY)
                   for subject, status, objection, on in rows
                   for r in compat_records(status if status in CONSENT_STATUSES else "unknown", bool(objection), on)]
        db.executemany("INSERT INTO consent_records VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", records)
        db.execute("DELETE FROM consent")
    return len(rows)
