"""The append path's lookups by record id stay on the record_id index, however long the batch (issue 24, session 14).

Session 14's soak found the audit indexer's CPU growing with the log, 12 -> 48% of a core in 18 minutes at a steady
100 events/s: the lookup of stored outcomes (a release meeting an old withhold) said `kind = 'decision' AND record_id
IN (...)`, and for an IN list of 50 ids or more SQLite chose the kind index and read every stored decision, once per
append that met a known id (the mix's records recur, so nearly every one). The plans are read from a real store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.audit import store as audit_store
from broker.stores.db import IN_CHUNK

RECORD_ID_INDEX = "sqlite_autoindex_audit_entry_2"  # the UNIQUE constraint's index on record_id


@pytest.mark.parametrize("sql", [audit_store._KNOWN, audit_store._OUTCOMES], ids=["known", "outcomes"])
@pytest.mark.parametrize("ids", [1, 49, 50, 300, IN_CHUNK])
def test_each_lookup_searches_the_record_id_index(tmp_path: Path, sql: str, ids: int) -> None:
    store = audit_store.open_audit_store(tmp_path, create_key=True)
    try:
        conn = store._sql.conn
        index = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_entry'"
                             " AND sql IS NULL").fetchall()
        assert (RECORD_ID_INDEX,) in index  # the name SQLite gives it (the plan below names it)
        plan = conn.execute("EXPLAIN QUERY PLAN " + sql.format(marks=",".join("?" * ids)),
                            [f"id-{i}" for i in range(ids)]).fetchall()
        details = [row[3] for row in plan]
        assert details and all(f"INDEX {RECORD_ID_INDEX} (record_id=?)" in d for d in details), details
    finally:
        store.close()


def test_the_old_lookup_is_what_the_test_would_catch(tmp_path: Path) -> None:
    """The query as session 14's first tree had it, to show the check above bites."""
    store = audit_store.open_audit_store(tmp_path, create_key=True)
    try:
        old = "SELECT record_id, outcome FROM audit_entry WHERE kind = 'decision' AND record_id IN ({marks})"
        plan = store._sql.conn.execute("EXPLAIN QUERY PLAN " + old.format(marks=",".join("?" * 300)),
                                       [f"id-{i}" for i in range(300)]).fetchall()
        assert not any(f"INDEX {RECORD_ID_INDEX} (record_id=?)" in row[3] for row in plan)
    finally:
        store.close()
