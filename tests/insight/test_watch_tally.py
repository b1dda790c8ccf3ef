"""The insight watch counts on between runs (issue 24, session 15): a run reads only the records appended since the
last, into the cells it kept (service/insight_watch.py `Tally`). A differential test of that against the run that
counts every record from the start (rises_in_store, itself tested against the whole index in test_watch_cells.py),
run after run on one real store that grows between them, as the share worker's watch sees it: random histories
(tests/insight/test_watch_bounded.py `history`) cut at random places, the tested period moving on by days, weeks
and months. And what would make a kept count wrong: the clock going back, other settings, another store, a prune,
a record that must be joined; and a test that the run does not read the old records again at all.

Every child is a fictitious token (lt1_...), every district ZZ-, every URN 999-, every ODS code Y999-.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from broker.audit.store import AuditStore, open_audit_store
from broker.insight.detect import DetectorConfig, Rise
from broker.service.insight_watch import Tally, rises_in_store, rises_since
from tests.insight.test_watch_bounded import TODAY, history
from tests.insight.test_watch_cells import (
    CONFIGS,
    CONTACTS,
    EVERYTHING,
    REFERRALS,
    STREAMED,
    _concerning,
    _weeks,
)

# The runs' days: the tested week moving on a few days, a week, a month at a time (so a month's and a quarter's
# window moves too), twice on one day, and on past the log's last record.
DAYS = [TODAY + dt.timedelta(days=d) for d in (-70, -41, -41, -20, -9, -6, 0, 1, 9, 45, 100)]
ACROSS = ("week", "month", "quarter")
Run = tuple[list[Rise], frozenset[str]]


def _cuts(rng: random.Random, n: int, runs: int) -> list[int]:
    """Where the log stands at each run: random places, one of them no new record since the run before."""
    cuts = sorted(rng.sample(range(1, n), runs - 2))
    return [*cuts[:3], cuts[2], *cuts[3:], n][:runs]


def _both(store: AuditStore, tally: Tally | None, watched: list[Any], config: DetectorConfig, day: dt.date,
          across: str) -> tuple[Run, Run, Tally | None]:
    found, raised, tally = rises_since(store, tally, watched, config, today=day.isoformat(), across=across)
    return (found, raised), rises_in_store(store, watched, config, today=day.isoformat(), across=across), tally


def _grow_and_compare(store: AuditStore, log: list[dict[str, Any]], seed: int) -> int:
    """Append the log in pieces; after each, every watched set, detector and period counted on from its own tally
    and from the start: the same rises and raised ids. Returns how many rises were found in all."""
    rng = random.Random(seed)
    combos = [(w, c, a) for w in STREAMED for c in CONFIGS for a in ACROSS]
    tallies: list[Tally | None] = [None] * len(combos)
    found_any, appended = 0, 0
    for cut, day in zip(_cuts(rng, len(log), len(DAYS)), DAYS, strict=True):
        store.append(log[appended:cut])
        appended = cut
        for n, (watched, config, across) in enumerate(combos):
            counted_on, from_start, tallies[n] = _both(store, tallies[n], watched, config, day, across)
            assert counted_on == from_start, (seed, cut, day, [m.id for m in watched], config, across)
            found_any += len(from_start[0])
    assert all(t is not None and t.through_seq == store.head()[0] for t in tallies)
    for tally in tallies:  # the cells before the window were let go: only its earliest period is kept before it
        assert tally is not None
        assert all(len([c for c in t.columns if c < tally.first]) <= 1 for t in tally.cells.tables())
    return found_any


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_counting_on_run_after_run_finds_what_counting_from_the_start_finds(tmp_path: Path, seed: int) -> None:
    store = open_audit_store(tmp_path, create_key=True)
    try:
        assert _grow_and_compare(store, history(seed), seed)  # equal empty lists would prove nothing
    finally:
        store.close()


def test_counting_on_a_postgresql_store_finds_what_counting_from_the_start_finds(tmp_path: Path,
                                                                                 pg_database: str) -> None:
    store = open_audit_store(tmp_path, pg_database, create_key=True)
    try:
        assert _grow_and_compare(store, history(24), 24)
    finally:
        store.close()


def _filled(tmp_path: Path, name: str, log: list[dict[str, Any]]) -> AuditStore:
    store = open_audit_store(tmp_path / name, create_key=True)
    store.append(log)
    return store


def test_a_clock_gone_back_other_settings_or_another_store_count_from_the_start(tmp_path: Path) -> None:
    """Each of these would read a kept count wrongly (its cells before the window were let go, its cells are of
    other measures or periods, its seq is another store's): each is counted from the start instead."""
    log = history(32)  # a seed whose contacts and referrals both rise, and the referrals of its first third
    store, other = _filled(tmp_path, "a", log), _filled(tmp_path, "b", log[: len(log) // 3])
    config, watched = CONFIGS[2], [CONTACTS, REFERRALS]
    try:
        _, _, tally = _both(store, None, watched, config, TODAY, "week")
        steps = [(store, watched, config, TODAY - dt.timedelta(weeks=6), "week"),  # the clock went back
                 (store, watched, config, TODAY, "week"),
                 (store, watched, dataclasses.replace(config, baseline_periods=16), TODAY, "week"),  # longer
                 (store, [CONTACTS], config, TODAY, "week"),  # other measures
                 (store, [REFERRALS], config, TODAY, "week"),
                 (store, [REFERRALS], config, TODAY, "month"),  # another period
                 (store, [REFERRALS], config, TODAY, "week"),
                 (other, [REFERRALS], config, TODAY, "week")]  # a store whose head is behind what was read
        found = []
        for on, measures, detector, day, across in steps:
            counted_on, from_start, tally = _both(on, tally, measures, detector, day, across)
            assert counted_on == from_start, (day, detector, across)
            found.append({r.measure for r in from_start[0]})
        # each change of measures finds the new measure's rises, which a kept count of the old ones has no cells for
        assert found[3] == {CONTACTS.id} and found[4] == {REFERRALS.id}
        assert found[7]  # the other store's rises: its own third of the log, which a kept count of this one's
        # seqs would read nothing of
    finally:
        store.close()
        other.close()


def test_a_prune_since_the_last_run_is_counted_from_the_start(tmp_path: Path) -> None:
    """A rise in W48 against eight weeks of one district's history; then the records older than three weeks are
    pruned. The history left is too short to test against, so the rise is gone: a count kept from before the
    prune (its earliest period, its populations) would still find it."""
    config = DetectorConfig(alpha=0.05, min_population=0, min_observed=3, baseline_periods=8, min_baseline_periods=4)
    log = _weeks("ZZ9", 2, [0, 1, 0, 1, 0, 1, 0, 1, 9])
    store = _filled(tmp_path, "pruned", log)
    try:
        found, _, tally = rises_since(store, None, [REFERRALS], config, today=TODAY.isoformat(), across="week")
        assert [(r.unit, r.period) for r in found] == [("ZZ9", "2026-W48")]
        pruned = store.prune({"event_published": 21}, now="2026-12-01T12:00:00Z")
        assert pruned.by_kind["event_published"] > 0
        counted_on, from_start, _ = _both(store, tally, [REFERRALS], config, TODAY, "week")
        assert counted_on == from_start and from_start[0] == []
    finally:
        store.close()


def test_a_run_reads_only_what_was_appended_since_the_last(tmp_path: Path) -> None:
    """After a run, every record it read is overwritten in the database with text that is no JSON: the next run,
    over the records appended since, still finds what a store holding the same log intact finds from the start (a
    run from the start on the overwritten store cannot read it at all)."""
    log = history(26)
    first, rest = log[: len(log) // 2], log[len(log) // 2:]
    store, intact = _filled(tmp_path, "read", first), _filled(tmp_path, "intact", log)
    watched, config = [CONTACTS, REFERRALS], CONFIGS[0]
    try:
        _, _, tally = rises_since(store, None, watched, config, today=TODAY.isoformat(), across="week")
        with sqlite3.connect(tmp_path / "read" / "audit.sqlite") as db:
            overwritten = db.execute("UPDATE audit_entry SET body = '{not json' WHERE body IS NOT NULL").rowcount
        assert overwritten == store.head()[0]
        store.append(rest)
        found, raised, _ = rises_since(store, tally, watched, config, today=TODAY.isoformat(), across="week")
        assert (found, raised) == rises_in_store(intact, watched, config, today=TODAY.isoformat(), across="week")
        assert found and len(raised) == 2
        with pytest.raises(ValueError):
            rises_in_store(store, watched, config, today=TODAY.isoformat(), across="week")
    finally:
        store.close()
        intact.close()


def test_a_record_that_must_be_joined_is_counted_from_the_index_every_run(tmp_path: Path) -> None:
    """`everything_published` counts on until a record that concerns another event comes by: from then on, the
    rises are those of the index of every record, and no tally is kept (none would stay right)."""
    config = dataclasses.replace(CONFIGS[0], alpha=0.5)
    log = _concerning(history(27))
    store = _filled(tmp_path, "joins", log[: len(log) // 4])
    watched = [EVERYTHING, CONTACTS]
    try:
        counted_on, from_start, tally = _both(store, None, watched, config, TODAY, "week")
        assert counted_on == from_start
        store.append(log[len(log) // 4:])
        counted_on, from_start, tally = _both(store, tally, watched, config, TODAY, "week")
        assert counted_on == from_start and tally is None
        assert any(r.measure == EVERYTHING.id for r in from_start[0])
    finally:
        store.close()
