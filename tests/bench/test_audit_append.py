"""The audit append replay (broker/bench/audit_append.py) measures the real store doing the real work: the batches it
replays are the fixture's, the store it appends to is the one the service opens, and what it stores is, row for row,
what session 11's store made of those batches (tests/audit/test_append_fixture.py). No speed is asserted here."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest

from broker.audit.store import AUDIT_CACHE_KIB
from broker.bench.audit_append import (
    FIXTURE,
    WAL_HEADER,
    load_mixes,
    main,
    measure,
    open_appender,
    replay,
    replay_fresh,
)
from tests.audit.fixtures.make_append_fixture import digest

EXPECTED = json.loads(gzip.decompress(FIXTURE.read_bytes()))["mixes"]


def test_the_replay_reads_every_batch_of_the_fixture() -> None:
    mixes = load_mixes()
    assert [(m.records, m.batch, m.batches) for m in mixes] == [(m["records"], m["batch"], m["batches"])
                                                                 for m in EXPECTED]


def test_a_replay_stores_the_rows_session_11_stored(tmp_path: Path) -> None:
    """The entries (seq, ids, index columns, links, bodies) do not depend on the signing key or the clock, so the
    service's own store, opened as the replay opens it, must hold the fixture's rows byte for byte."""
    for mix, expected in zip(load_mixes(), EXPECTED, strict=True):
        folder = tmp_path / f"{mix.records}x{mix.batch}"
        store = open_appender(folder)
        assert store._sql.conn.execute("PRAGMA cache_size").fetchone()[0] == -AUDIT_CACHE_KIB  # the indexer's store
        cpu, stored = replay(store, mix.batches)
        store.close()
        assert stored == len(expected["rows"]["audit_entry"]) and cpu > 0
        with sqlite3.connect(folder / "audit.sqlite") as db:
            rows = [digest(list(r)) for r in db.execute("SELECT * FROM audit_entry ORDER BY seq")]
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        assert rows == expected["rows"]["audit_entry"] and mode == "wal"


def test_a_fresh_replay_leaves_its_folder_empty_for_the_next(tmp_path: Path) -> None:
    mix = load_mixes()[1]
    first, again = replay_fresh(mix.batches, tmp_path), replay_fresh(mix.batches, tmp_path)
    assert first[1] == again[1] == len(EXPECTED[1]["rows"]["audit_entry"])  # each a new store: nothing was a repeat
    assert list(tmp_path.iterdir()) == []


def test_a_figure_is_the_median_round_per_event_and_the_wal_holds_whole_pages(tmp_path: Path) -> None:
    mix = load_mixes()[0]
    fig = measure(mix, repeats=2, rounds=3)
    assert (fig.records, fig.batch, fig.appends) == (mix.records, mix.batch, len(mix.batches))
    assert fig.entries == len(EXPECTED[0]["rows"]["audit_entry"]) and len(fig.rounds) == 3
    median = sorted(fig.rounds)[1]
    assert abs(fig.cpu_us_per_event - median / (2 * mix.records) * 1e6) < 1e-6
    assert abs(fig.cpu_us_per_entry - median / (2 * fig.entries) * 1e6) < 1e-6
    # a WAL is its header and frames of a page and a 24-byte frame header: the figure is read from a real one
    frames = round(fig.wal_bytes_per_commit * fig.appends)
    with sqlite3.connect(tmp_path / "page.sqlite") as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
    assert frames > 0 and frames % (page + 24) == 0 and WAL_HEADER == 32


def test_the_command_prints_one_figure_per_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repeats", "1", "--rounds", "1", "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    figures = [json.loads(line) for line in out]
    assert [(f["records"], f["batch"]) for f in figures] == [(m["records"], m["batch"]) for m in EXPECTED]
    assert all(f["cpu_us_per_event"] > 0 and f["wal_bytes_per_commit"] > 0 for f in figures)
