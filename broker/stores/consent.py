"""The consent register: consent, agreement and objection records per child's case (by linkage token), per kind and
data subject (broker/policy/consent.py), as IG and the agencies record them.

One row per (token, kind, data subject role, ref). The first version held one row per child (`consent`: status,
objection flag, date); opening the register moves those rows into `consent_records` as what they meant, the child's
data protection consent and the child's Art 21 objection (`recorded_by` register_v1, so IG can find and review
them: a refusal recorded then may in substance have been an objection, which now has to be recorded as one), in one
transaction, so an old row is never lost nor read twice. The old table stays, empty, for `stores migrate`.

Until an IG officer reviews them (`review`, kept in `consent_reviews`: outcome, date, credential), a migrated "no"
is read the stricter way (broker/policy/consent_review.py says which reading that is in law, and why): `get` returns
the child's records with it read as a no of every kind. `migrated_cases` lists them, tokens and codes only;
`awaiting_review` counts the children whose migrated records still wait (`mash-broker doctor` warns).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from broker.errors import Conflict, NotFound
from broker.policy.codes import CONSENT_STATUSES
from broker.policy.consent import CHILD, ConsentRecord, ConsentState, compat_records, stricter
from broker.policy.consent_review import MIGRATED_BY, awaits_review, reviewed, stricter_reading
from broker.stores.db import Db, open_register

__all__ = ["MIGRATED_BY", "SAYS_NO_SQL", "AlreadyReviewed", "ConsentRegister", "MigratedCase", "NotMigrated",
           "migrate_v1"]
# A migrated "no": a refused or withdrawn consent, or an objection raised (ConsentRecord.restrictive), in SQL.
SAYS_NO_SQL = ("((kind = 'objection' AND state = 'raised')"
               " OR (kind <> 'objection' AND state IN ('refused', 'withdrawn')))")


ALREADY = "this child's records from the first consent register were reviewed already"


class NotMigrated(NotFound):
    """No record of this child came from the first register: there is nothing to review."""


class AlreadyReviewed(Conflict):
    """The child's migrated records were reviewed already (once only, as a decision is)."""


@dataclass(frozen=True, slots=True)
class MigratedCase:
    """One child's records from the first register, for IG review: the token and codes, never a name."""

    subject: str  # the linkage token
    records: tuple[ConsentRecord, ...]  # the migrated records still held (none once a reclassification replaced them)
    awaiting: bool  # a migrated "no" not reviewed yet: read the stricter way
    outcome: str | None = None  # the review's finding (consent_review.OUTCOMES), once reviewed
    reviewed_on: str | None = None
    reviewed_by: str | None = None  # the reviewer's credential (audit actor form), never a name

    def view(self) -> dict[str, object]:
        return {"subject": self.subject, "awaiting_review": self.awaiting,
                "records": [{"kind": r.kind, "state": r.state, "recorded_on": r.recorded_on} for r in self.records],
                "review": None if self.outcome is None else {
                    "outcome": self.outcome, "reviewed_on": self.reviewed_on, "reviewed_by": self.reviewed_by}}


class ConsentRegister:
    FILE = "consent.sqlite"  # its SQLite file in the data directory
    TABLE = "consent_records"
    # the old per-child table too, so `stores migrate` copies leftovers; and the IG reviews of migrated records
    TABLES = ("consent", "consent_records", "consent_reviews")

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, [
            "CREATE TABLE IF NOT EXISTS consent (subject TEXT PRIMARY KEY, status TEXT NOT NULL,"
            " objection INTEGER NOT NULL, recorded_on TEXT)",
            "CREATE TABLE IF NOT EXISTS consent_records (subject TEXT NOT NULL, kind TEXT NOT NULL,"
            " person_role TEXT NOT NULL, person_ref TEXT NOT NULL, state TEXT NOT NULL, recorded_on TEXT,"
            " recorded_by TEXT, PRIMARY KEY (subject, kind, person_role, person_ref))",
            "CREATE TABLE IF NOT EXISTS consent_reviews (subject TEXT PRIMARY KEY, outcome TEXT NOT NULL,"
            " reviewed_on TEXT NOT NULL, reviewed_by TEXT NOT NULL)"], url=url, durable=True)
        migrate_v1(self.db)

    def _records(self, subject: str) -> list[ConsentRecord]:
        rows = self.db.query("SELECT kind, person_role, person_ref, state, recorded_on, recorded_by"
                             " FROM consent_records WHERE subject = ?", (subject,))
        return [ConsentRecord(kind, state, role, ref or None, on, by) for kind, role, ref, state, on, by in rows]

    def _reviewed(self, subject: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM consent_reviews WHERE subject = ?", (subject,)))

    def get(self, subject: str) -> ConsentState | None:
        """The child's records as the engine must read them: a migrated "no" not reviewed yet read the stricter way
        (broker/policy/consent_review.py). The review table is read only for a child with such a record."""
        records = self._records(subject)
        if not records:
            return None
        if awaits_review(records) and not self._reviewed(subject):
            records = list(stricter_reading(records))
        return ConsentState(records=records)

    def get_many(self, subjects: Iterable[str]) -> dict[str, ConsentState | None]:
        """`get` for many children at once (a share batch's tokens): one query of the records per IN chunk, and of
        the reviews only for the children with a migrated "no". Every subject asked about is a key."""
        wanted = list(dict.fromkeys(subjects))
        held: dict[str, list[ConsentRecord]] = {}
        for subject, kind, role, ref, state, on, by in self.db.query_in(
                "SELECT subject, kind, person_role, person_ref, state, recorded_on, recorded_by FROM consent_records"
                " WHERE subject IN ({marks})", wanted):
            held.setdefault(subject, []).append(ConsentRecord(kind, state, role, ref or None, on, by))
        waiting = [s for s, records in held.items() if awaits_review(records)]
        done = {r[0] for r in self.db.query_in("SELECT subject FROM consent_reviews WHERE subject IN ({marks})",
                                               waiting)}
        out: dict[str, ConsentState | None] = {}
        for subject in wanted:
            records = held.get(subject)
            if records and subject in waiting and subject not in done:
                records = list(stricter_reading(records))
            out[subject] = ConsentState(records=records) if records else None
        return out

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
        # the records as held, not as read: a migrated "no" moves as migrated, and is read the stricter way under
        # `into` until `into` is reviewed
        theirs = self._records(absorbed)
        if theirs:
            ours = self._records(into)
            state = ConsentState(records=theirs)
            self.put(into, state if not ours else stricter(ConsentState(records=ours), state))

    # --- the first register's records, for IG review (broker/policy/consent_review.py) ------------------------------
    def migrated_cases(self, *, include_reviewed: bool = False, limit: int = 500) -> list[MigratedCase]:
        """Children with records from the first register, oldest token first: those awaiting review (a migrated
        "no" not reviewed), and with `include_reviewed` every other migrated child and each review made."""
        rows = self.db.query("SELECT subject, kind, person_role, person_ref, state, recorded_on, recorded_by FROM"
                             " consent_records WHERE recorded_by = ? ORDER BY subject", (MIGRATED_BY,))
        by_subject: dict[str, list[ConsentRecord]] = {}
        for subject, kind, role, ref, state, on, by in rows:
            by_subject.setdefault(subject, []).append(ConsentRecord(kind, state, role, ref or None, on, by))
        reviews = {s: (o, on, by) for s, o, on, by in self.db.query(
            "SELECT subject, outcome, reviewed_on, reviewed_by FROM consent_reviews")}
        out = []
        for subject in sorted(set(by_subject) | (set(reviews) if include_reviewed else set())):
            records = tuple(by_subject.get(subject, ()))
            review = reviews.get(subject)
            case = MigratedCase(subject, records, awaits_review(records) and review is None,
                                *(review or (None, None, None)))
            if case.awaiting or include_reviewed:
                out.append(case)
        return out[:limit]

    def awaiting_review(self) -> int:
        """How many children's migrated records say no and are not reviewed yet."""
        return int(self.db.query(
            f"SELECT COUNT(DISTINCT subject) FROM consent_records WHERE recorded_by = ? AND {SAYS_NO_SQL}"
            " AND subject NOT IN (SELECT subject FROM consent_reviews)", (MIGRATED_BY,))[0][0])

    def review(self, subject: str, outcome: str, reviewed_on: str, reviewed_by: str) -> MigratedCase:
        """Record an IG review of one child's migrated records, once: reclassify the migrated "no" as the kind the
        officer finds, or confirm the migrated reading (broker/policy/consent_review.py `reviewed`). Raises
        NotMigrated, AlreadyReviewed, or ValueError (an unknown outcome, or nothing to reclassify)."""
        with self.db.transaction():
            if self._reviewed(subject):  # first: a reclassification leaves no migrated record behind
                raise AlreadyReviewed(ALREADY)
            records = self._records(subject)
            if not any(r.recorded_by == MIGRATED_BY for r in records):
                raise NotMigrated("no record of this child came from the first consent register: nothing to review")
            put, removed = reviewed(records, outcome)
            self.db.executemany("DELETE FROM consent_records WHERE subject = ? AND kind = ? AND person_role = ?"
                                " AND person_ref = ? AND recorded_by = ?",
                                [(subject, r.kind, r.subject, r.ref or "", MIGRATED_BY) for r in removed])
            self.db.executemany("INSERT INTO consent_records VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                [(subject, r.kind, r.subject, r.ref or "", r.state, r.recorded_on, r.recorded_by)
                                 for r in put])
            cur = self.db.execute("INSERT INTO consent_reviews VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                  (subject, outcome, reviewed_on, reviewed_by))
            if cur.rowcount != 1:  # another review got in first: this one's changes are rolled back
                raise AlreadyReviewed(ALREADY)
        left = tuple(r for r in self._records(subject) if r.recorded_by == MIGRATED_BY)
        return MigratedCase(subject, left, False, outcome, reviewed_on, reviewed_by)

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
