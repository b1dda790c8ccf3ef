"""The audit store's partial indexes (session 10): the empty entries are not written, and every query that filters a
column still reads it by its index, in a new store as in one made with the full indexes before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from broker.audit.store import FILTERS, PARTIAL_INDEXES, AuditStore, open_audit_store
from tests.audit.conftest import seed_records

OLD_INDEXES = ("subject", "agency", "subscriber", "event_type", "rule_id", "kind", "time", "decision_id",
               "deadletter_id")


def _plan(db: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> str:
    return " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def _filters_read_their_index(path: Path) -> None:
    with sqlite3.connect(path) as db:
        for column in (c for c in FILTERS if c in OLD_INDEXES):
            # the shapes the store runs: search (= with ORDER BY seq), disclosures and timeline (IN lists)
            for sql, params in ((f"SELECT seq FROM audit_entry WHERE {column} = ? ORDER BY seq DESC LIMIT ?",
                                 ("x", 10)),
                                (f"SELECT seq FROM audit_entry WHERE {column} IN (?, ?) ORDER BY seq", ("x", "y"))):
                assert f"INDEX audit_entry_{column} " in _plan(db, sql, params), (column, sql)
        assert "INDEX audit_entry_deadletter_id " in _plan(
            db, "SELECT seq FROM audit_entry WHERE kind = 'deadlettered' AND deadletter_id = ? ORDER BY seq DESC"
                " LIMIT 1", ("x",))


def test_a_new_store_indexes_only_the_records_that_name_a_value(sqlite_store: AuditStore) -> None:
    sqlite_store.append(seed_records())
    db = sqlite_store._sql.conn
    for column in PARTIAL_INDEXES:
        (sql,), = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (f"audit_entry_{column}",)).fetchall()
        assert sql.endswith(f"WHERE {column} IS NOT NULL"), column
        named = db.execute(f"SELECT COUNT(*) FROM audit_entry WHERE {column} IS NOT NULL").fetchone()[0]
        indexed = db.execute(f"SELECT COUNT(*) FROM audit_entry INDEXED BY audit_entry_{column}"
                             f" WHERE {column} IS NOT NULL").fetchone()[0]
        assert indexed == named
    # the seed leaves some column empty on some record: there is something not to index
    assert any(db.execute(f"SELECT COUNT(*) FROM audit_entry WHERE {c} IS NULL").fetchone()[0] for c in PARTIAL_INDEXES)


def test_every_filter_reads_its_index_in_a_new_store(tmp_path: Path) -> None:
    open_audit_store(tmp_path, create_key=True).close()
    _filters_read_their_index(tmp_path / "audit.sqlite")


def test_a_store_made_with_the_full_indexes_keeps_them_and_answers_the_same(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    with sqlite3.connect(old / "audit.sqlite") as db:  # as session 9 made it
        db.execute("CREATE TABLE audit_entry (seq BIGINT PRIMARY KEY, record_id TEXT NOT NULL UNIQUE,"
                   " kind TEXT NOT NULL, time TEXT NOT NULL, subject TEXT, agency TEXT, subscriber TEXT, event_id TEXT,"
                   " event_type TEXT, rule_id TEXT, decision_id TEXT, outcome TEXT, deadletter_id TEXT,"
                   " prev_hash TEXT NOT NULL, record_sha256 TEXT NOT NULL, hash TEXT NOT NULL, body TEXT,"
                   " pruned_at TEXT)")
        for c in OLD_INDEXES:
            db.execute(f"CREATE INDEX audit_entry_{c} ON audit_entry ({c}, seq)")
    stores = [open_audit_store(d, create_key=True) for d in (old, new)]
    for s in stores:
        s.append(seed_records())
    with sqlite3.connect(old / "audit.sqlite") as db:
        partial = db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND sql LIKE '%WHERE%'")
        assert partial.fetchone()[0] == 0  # an old store is left as it was
    _filters_read_their_index(old / "audit.sqlite")
    answers = []
    for s in stores:
        found = [[(e["seq"], e.get("record", {}).get("record_id")) for e in s.search(**{c: v}, limit=1000)]
                 for c in FILTERS for v in {str(e["record"].get(c)) for e in s.entries() if e["record"].get(c)}]
        answers.append((found, [d.seq for d in s.disclosures()], s.verify().ok))
        s.close()
    assert answers[0] == answers[1] and answers[0][2] and any(answers[0][0])
