"""The audit store keeps, byte for byte, what session 13's store kept for the bench floor's batches.

`fixtures/append_mix.json.gz` holds every batch the floor's audit part appended over two mixes (120 records in
requests of 20, 30 one at a time) and the SHA-256 of every row the store made of them, in all three tables, and of
every append's return: made by `fixtures/make_append_fixture.py` on session 13's code (first made on a832e7b;
again once a withhold's decision id named its outcome, which changes a withheld group's ids), with a fixed signing key
and clock so the signed checkpoints are reproducible too. Here the same batches go through the current store: every
row of audit_entry (seq, record id, index columns, links, body), audit_head and audit_checkpoint (hash, time, key
id, signature) must be the same bytes, and so must what each append returned. tests/audit/test_store_differential.py
checks the same kind of mix against a reference append kept in the test; this one needs no reference code.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from broker.audit.withheld import KIND

from .fixtures.make_append_fixture import TABLES, digest, fixed_store

FIXTURE = Path(__file__).parent / "fixtures" / "append_mix.json.gz"
MIXES = json.loads(gzip.decompress(FIXTURE.read_bytes()))["mixes"]


def _rows(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as db:
        return {t: [digest(list(r)) for r in db.execute(f"SELECT * FROM {t} ORDER BY {order}")]
                for t, order in TABLES.items()}


def test_the_fixture_covers_every_path_of_the_append() -> None:
    records = [r for m in MIXES for b in m["batches"] for r in b]
    assert {KIND, "decision", "delivered", "event_published", "record_received", "identity_linked"} <= {
        r["kind"] for r in records}
    assert any(len(b) > 1 for m in MIXES for b in m["batches"]) and any(len(b) == 1 for m in MIXES
                                                                         for b in m["batches"])
    assert sum(len(m["rows"]["audit_checkpoint"]) for m in MIXES) >= 2  # periodic checkpoints signed and compared


@pytest.mark.parametrize("mix", MIXES, ids=lambda m: f"{m['records']}x{m['batch']}")
def test_the_floors_batches_are_stored_as_the_reference_stored_them(tmp_path: Path, mix: dict[str, Any]) -> None:
    store = fixed_store(tmp_path / "audit.sqlite")
    returned = [digest(store.append(b)) for b in mix["batches"]]
    store.close()
    rows = _rows(tmp_path / "audit.sqlite")
    assert {t: len(r) for t, r in rows.items()} == {t: len(r) for t, r in mix["rows"].items()}
    for table, expected in mix["rows"].items():
        wrong = [i for i, (a, b) in enumerate(zip(rows[table], expected, strict=True)) if a != b]
        assert not wrong, f"{table}: rows {wrong[:5]} differ from session 11's"
    assert returned == mix["returned"]


@pytest.mark.parametrize("mix", MIXES[:1], ids=lambda m: f"{m['records']}x{m['batch']}")
def test_a_redelivered_mix_changes_no_byte(tmp_path: Path, mix: dict[str, Any]) -> None:
    """Kafka redelivers: every batch appended a second time (and the batches merged into one) is dropped by id."""
    store = fixed_store(tmp_path / "audit.sqlite")
    for b in mix["batches"]:
        store.append(b)
    assert all(store.append(b) == [] for b in mix["batches"])
    assert store.append([r for b in mix["batches"] for r in b]) == []
    assert store.verify().ok
    store.close()
    assert _rows(tmp_path / "audit.sqlite") == mix["rows"]
