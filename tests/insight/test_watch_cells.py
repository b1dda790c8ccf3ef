"""The insight watch counts into cells, not records (issue 24, session 12): a differential test of the hotspot tables
and rises computed from the index of every record (hotspots.hotspot_tables, hotspots.rises: the page's and the old
watch's path) against the records folded one at a time into cells (cells.HotspotCells, hotspots.rises_counted,
the watch's rises_in_store), on random histories (tests/insight/test_watch_bounded.py `history`: backdated events,
restarts' re-published events, hub decisions, merges, shares, clocks) and on hand-made logs that aim at what a
bound by cells could get wrong: the population guard and the history length, which look at a unit's whole history.

Every child is a fictitious token (lt1_...), every district ZZ-, every URN 999-, every ODS code Y999-.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from broker.audit.record import audit_record
from broker.audit.store import AuditStore, open_audit_store
from broker.insight.cells import HotspotCells, NeedsJoin, detector_periods, streamable
from broker.insight.compute import UNKNOWN
from broker.insight.detect import DetectorConfig, detect
from broker.insight.hotspots import hotspot_tables, last_complete_period, rises, rises_counted
from broker.insight.measures import Count, Measure, default_measures
from broker.insight.source import records_from_store
from broker.insight.table import Table
from broker.service.insight_watch import already_raised, rises_in_store
from tests.insight.test_watch_bounded import CONTACT_TYPES, TODAY, history

TODAY_ISO = TODAY.isoformat()
CONFIGS = (DetectorConfig(alpha=0.05, min_population=10, min_observed=3),
           DetectorConfig(alpha=0.2, min_population=40, min_observed=2, baseline_periods=4, min_baseline_periods=2),
           DetectorConfig(alpha=0.5, min_population=0, min_observed=1, baseline_periods=12, min_baseline_periods=12))
CATALOGUE = default_measures()
CONTACTS, REFERRALS = CATALOGUE.by_id("contacts"), CATALOGUE.by_id("referrals")
# A rate the catalogue does not have, so the denominators' path (exposures, populations from denominators) is
# tested too: referrals among the contacts and referrals of a place.
REFERRAL_SHARE = Measure(
    id="referral_share", name="Referrals among contacts and referrals", definition="test only",
    numerator=Count("referrals", {"kind": "event_published", "event_types": ["social_care.referral"]}),
    denominator=Count("contacts and referrals", {"kind": "event_published",
                                                 "event_types": ["social_care.referral", *CONTACT_TYPES]}),
    breakdowns=("area", "school_urn", "gp_ods"), periods=("week", "month", "quarter"))
# Contacts and a kind of record that, in a log from an older broker or a future facts.py, might concern another
# event (today's facts.py gives concerns only to the hub's records): one that does would take its referrer's
# district, which its own record does not carry, so counting it alone would put it in the unknown row.
EVERYTHING = Measure(id="everything_published", name="Contacts and strategy discussions", definition="test only",
                     numerator=Count("events", {"kind": "event_published",
                                                "event_types": [*CONTACT_TYPES, "social_care.strategy_discussion"]}),
                     denominator=None, breakdowns=("area",), periods=("week",))
STREAMED = ([CONTACTS, REFERRALS], [CONTACTS, REFERRAL_SHARE, REFERRALS])


@pytest.fixture(scope="module")
def logs() -> list[list[dict[str, Any]]]:
    return [history(seed) for seed in (11, 12, 13, 14, 15)]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, logs: list[list[dict[str, Any]]]) -> Iterator[list[AuditStore]]:
    made = []
    for n, log in enumerate(logs):
        store = open_audit_store(tmp_path_factory.mktemp(f"cells{n}"), create_key=True)
        store.append(log)
        made.append(store)
    yield made
    for store in made:
        store.close()


def _counted(records: list[dict[str, Any]], measures: list[Measure], across: str,
             keep: frozenset[str] | None = None) -> list[Table]:
    cells = HotspotCells(measures, across, keep)
    for record in records:
        cells.add(record)
    return cells.tables()


def _restricted(table: Table, keep: frozenset[str]) -> dict[str, Any]:
    """What the detector reads of a whole table: the kept cells, every population, the earliest known period."""
    known = [c for c in table.columns if c != UNKNOWN]
    return {"counts": {k: n for k, n in table.counts.items() if k[1] in keep},
            "denominators": None if table.denominators is None
            else {k: n for k, n in table.denominators.items() if k[1] in keep},
            "populations": dict(table.populations), "earliest": min(known) if known else None,
            "rows": sorted({r for r, c in (*table.counts, *(table.denominators or {})) if c in keep})}


def _as_read(table: Table) -> dict[str, Any]:
    known = [c for c in table.columns if c != UNKNOWN]
    return {"counts": dict(table.counts), "denominators": None if table.denominators is None
            else dict(table.denominators), "populations": dict(table.populations),
            "earliest": min(known) if known else None, "rows": sorted(table.rows)}


@pytest.mark.parametrize("across", ["week", "month", "quarter"])
@pytest.mark.parametrize("watched", STREAMED, ids=lambda ms: ",".join(m.id for m in ms))
def test_cells_counted_one_record_at_a_time_are_the_whole_tables(logs: list[list[dict[str, Any]]],
                                                                 watched: list[Measure], across: str) -> None:
    for log in logs:
        whole = hotspot_tables(log, watched, across=across)
        assert whole and any(t.counts for t in whole)
        assert _counted(log, watched, across) == whole  # every cell, row, column, population, in order


@pytest.mark.parametrize("watched", STREAMED, ids=lambda ms: ",".join(m.id for m in ms))
def test_cells_kept_to_the_detectors_periods_are_what_it_reads_of_the_whole(logs: list[list[dict[str, Any]]],
                                                                            watched: list[Measure]) -> None:
    for config in CONFIGS:
        keep = detector_periods(last_complete_period(TODAY_ISO, "week"), "week", config)
        for log in logs:
            whole, kept = hotspot_tables(log, watched), _counted(log, watched, "week", keep)
            assert [_as_read(t) for t in kept] == [_restricted(t, keep) for t in whole]
            # records outside the kept periods (older weeks, backdated ones) still count in their units' populations
            assert all(sum(t.populations.values()) > sum((t.denominators or t.counts).values()) for t in kept)


@pytest.mark.parametrize("watched", STREAMED, ids=lambda ms: ",".join(m.id for m in ms))
def test_rises_counted_into_cells_are_the_rises_of_the_whole_index(logs: list[list[dict[str, Any]]],
                                                                   watched: list[Measure]) -> None:
    found_any = 0
    for config in CONFIGS:
        for log in logs:
            expected = rises(log, watched, config, today=TODAY_ISO)
            assert rises_counted(log, watched, config, today=TODAY_ISO) == expected
            found_any += len(expected)
    assert found_any  # equal empty lists would prove nothing


@pytest.mark.parametrize("watched", STREAMED, ids=lambda ms: ",".join(m.id for m in ms))
def test_the_watch_on_a_store_finds_the_whole_reads_rises_and_raised_ids(stores: list[AuditStore],
                                                                         watched: list[Measure]) -> None:
    found_any = 0
    for store in stores:
        whole = records_from_store(store)  # the old watch: every record of the five kinds, in one list
        for config in CONFIGS:
            found, raised = rises_in_store(store, watched, config, today=TODAY_ISO, across="week")
            assert found == rises(whole, watched, config, today=TODAY_ISO)
            assert raised == already_raised(whole) and len(raised) == 2
            found_any += len(found)
    assert found_any


def test_what_the_cells_hold_grows_with_the_units_not_the_events(logs: list[list[dict[str, Any]]]) -> None:
    """The same partnership's log read four times over (four times the events, the same places): the cells held
    are the same ones, each count four times as large, and never more than one a unit and kept period."""
    config = CONFIGS[0]
    keep = detector_periods(last_complete_period(TODAY_ISO, "week"), "week", config)
    once = _counted(logs[0], [CONTACTS, REFERRALS], "week", keep)
    four = _counted(logs[0] * 4, [CONTACTS, REFERRALS], "week", keep)
    for a, b in zip(once, four, strict=True):
        assert set(a.counts) == set(b.counts) and all(b.counts[k] == 4 * n for k, n in a.counts.items())
        assert {u: 4 * n for u, n in a.populations.items()} == b.populations
        assert len(b.counts) <= len(b.populations) * len(keep)
    assert detect(four, config, last_complete_period(TODAY_ISO, "week"))  # four times the events: rises


def _contact(day: dt.date, district: str, n: int, *, occurred: dt.date | None = None) -> dict[str, Any]:
    return audit_record("event_published", time=f"{day.isoformat()}T10:00:00Z", actor="intake:police",
                        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"contact/{district}/{n}/{day}")),
                        event_type="police.incident_child_present", subject=f"lt1_{n:024d}", agency="police",
                        insight={"occurred_on": (occurred or day).isoformat(), "source_agency": "police",
                                 "district": district})


def _recent(district: str, weeks: int, per_week: int, hot: int) -> list[dict[str, Any]]:
    """`weeks` weeks of `per_week` contacts a week in a district before the tested week (W48), then `hot` in it."""
    out, n = [], 0
    for w in range(weeks, 0, -1):
        for _ in range(per_week):
            out.append(_contact(dt.date(2026, 11, 23) - dt.timedelta(weeks=w), district, n))
            n += 1
    for _ in range(hot):
        out.append(_contact(dt.date(2026, 11, 24), district, n))
        n += 1
    return out


def test_a_unit_tested_only_for_its_old_backdated_records_is_tested_the_same() -> None:
    """The population guard counts a unit's whole history: ZZ7 has 6 contacts in the window and is below the
    minimum of 10 on those alone; four contacts published this autumn about a year ago lift it over. A count
    bounded to the window would drop the rise; the cells keep every unit's population."""
    config = DetectorConfig(alpha=0.05, min_population=10, min_observed=3, baseline_periods=4,
                            min_baseline_periods=1)
    log = _recent("ZZ7", weeks=1, per_week=1, hot=5)
    old = [_contact(dt.date(2026, 10, 1), "ZZ7", 100 + i, occurred=dt.date(2025, 11, 3)) for i in range(4)]
    without, with_old = rises(log, [CONTACTS], config, today=TODAY_ISO), rises(log + old, [CONTACTS], config,
                                                                              today=TODAY_ISO)
    assert not without and [r.unit for r in with_old] == ["ZZ7"]  # the guard is what the old records change
    assert rises_counted(log + old, [CONTACTS], config, today=TODAY_ISO) == with_old
    assert rises_counted(log, [CONTACTS], config, today=TODAY_ISO) == without


def test_the_history_length_counts_from_the_earliest_period_of_any_record() -> None:
    """The detector compares against as many baseline weeks as the records go back: two weeks of contacts are too
    little (four needed), but one contact backdated to a year ago, in another district, lengthens the history of
    every unit of the measure. The cells keep the earliest period though its cell is not kept."""
    config = DetectorConfig(alpha=0.05, min_population=5, min_observed=3, baseline_periods=8,
                            min_baseline_periods=4)
    log = _recent("ZZ8", weeks=2, per_week=1, hot=8)
    old = [_contact(dt.date(2026, 11, 2), "ZZ9", 999, occurred=dt.date(2025, 12, 1))]
    assert not rises(log, [CONTACTS], config, today=TODAY_ISO)
    expected = rises(log + old, [CONTACTS], config, today=TODAY_ISO)
    assert [r.unit for r in expected] == ["ZZ8"] and expected[0].baseline_periods == 8
    assert rises_counted(log + old, [CONTACTS], config, today=TODAY_ISO) == expected
    assert rises_counted(log, [CONTACTS], config, today=TODAY_ISO) == []


def test_a_measures_history_starts_at_its_own_earliest_record_not_another_measures() -> None:
    """Referrals began two weeks ago; contacts go back a year. Watched together, referrals' history is still two
    weeks (too short to test), contacts' a full eight: one earliest period for the watch would test referrals."""
    config = DetectorConfig(alpha=0.05, min_population=5, min_observed=3, baseline_periods=8,
                            min_baseline_periods=4)
    referrals = [{**r, "event_type": "social_care.referral"} for r in _recent("ZZ8", weeks=2, per_week=1, hot=8)]
    contacts = [_contact(dt.date(2026, 11, 2), "ZZ9", 999, occurred=dt.date(2025, 12, 1))]
    expected = rises(referrals + contacts, [CONTACTS, REFERRALS], config, today=TODAY_ISO)
    assert expected == []
    assert rises(referrals + contacts, [REFERRALS, CONTACTS], config, today=TODAY_ISO) == []
    assert rises_counted(referrals + contacts, [CONTACTS, REFERRALS], config, today=TODAY_ISO) == expected
    relabelled = [{**r, "event_type": CONTACT_TYPES[0]} for r in referrals]  # the same records as contacts: tested
    assert [r.unit for r in rises(relabelled + contacts, [CONTACTS, REFERRALS], config, today=TODAY_ISO)] == ["ZZ8"]
    assert rises_counted(relabelled + contacts, [CONTACTS, REFERRALS], config,
                         today=TODAY_ISO) == rises(relabelled + contacts, [CONTACTS, REFERRALS], config,
                                                   today=TODAY_ISO)


def test_a_measure_that_joins_records_is_not_counted_alone() -> None:
    assert streamable(CONTACTS) and streamable(REFERRALS) and streamable(REFERRAL_SHARE)
    for measure in CATALOGUE:
        if measure.available and not streamable(measure):
            with pytest.raises(ValueError, match=measure.id):
                HotspotCells([measure], "week")
    for joined in ("decision_within_one_working_day", "decision_outcomes", "referral_to_section47"):
        assert not streamable(CATALOGUE.by_id(joined))


def _concerning(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log with a strategy discussion after each contact of the tested week, one in three, that names the
    contact as what it concerns and carries no district of its own."""
    out = list(log)
    for n, record in enumerate(log):
        if (record["kind"] == "event_published" and record.get("event_type") in CONTACT_TYPES
                and record["insight"]["occurred_on"] >= "2026-11-23" and n % 3 == 0):
            out.append(audit_record(
                "event_published", time=record["time"], actor="intake:social_care",
                event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"discussion/{record['event_id']}")),
                event_type="social_care.strategy_discussion", subject=record["subject"], agency="social_care",
                insight={"occurred_on": record["insight"]["occurred_on"], "source_agency": "social_care",
                         "concerns": [record["event_id"]]}))
    return out


def test_a_counted_record_that_takes_another_records_codes_stops_the_count(logs: list[list[dict[str, Any]]]) -> None:
    """A record that concerns another event, counted alone, would lose that event's district: the cells refuse
    it rather than count it in the unknown row."""
    assert streamable(EVERYTHING)
    log = _concerning(logs[0])
    discussions = sum(r.get("event_type") == "social_care.strategy_discussion" for r in log)
    before, after = hotspot_tables(logs[0], [EVERYTHING])[0], hotspot_tables(log, [EVERYTHING])[0]
    assert discussions and sum(after.counts.values()) == sum(before.counts.values()) + discussions
    assert after.count(UNKNOWN, "2026-W48") == before.count(UNKNOWN, "2026-W48")  # each took its contact's district
    cells = HotspotCells([EVERYTHING], "week")
    with pytest.raises(NeedsJoin, match="everything_published"):
        for record in log:
            cells.add(record)


def test_the_watch_counts_a_record_that_joins_from_the_index(tmp_path_factory: pytest.TempPathFactory,
                                                             logs: list[list[dict[str, Any]]]) -> None:
    """`everything_published` is countable record by record until a record that concerns another comes by: the
    watch then counts from the index of every record read, and finds the whole read's rises and raised ids."""
    config = dataclasses.replace(CONFIGS[0], alpha=0.5)
    found_any = 0
    for n, log in enumerate(logs[:3]):
        store = open_audit_store(tmp_path_factory.mktemp(f"joins{n}"), create_key=True)
        try:
            store.append(_concerning(log))
            whole = records_from_store(store)
            found, raised = rises_in_store(store, [EVERYTHING, CONTACTS], config, today=TODAY_ISO, across="week")
            assert found == rises(whole, [EVERYTHING, CONTACTS], config, today=TODAY_ISO)
            assert raised == already_raised(whole) and len(raised) == 2  # noted once, not once a read
            found_any += sum(r.measure == EVERYTHING.id for r in found)
        finally:
            store.close()
    assert found_any


def _weeks(district: str, contacts: int, referrals: list[int]) -> list[dict[str, Any]]:
    """Each week up to the tested one (W48), `contacts` contacts and referrals[i] referrals in a district."""
    out = []
    for i, count in enumerate(referrals):
        day = dt.date(2026, 11, 24) - dt.timedelta(weeks=len(referrals) - 1 - i)
        out += [_contact(day, district, 1000 * i + k) for k in range(contacts)]
        out += [{**_contact(day, district, 1000 * i + 500 + k), "event_type": "social_care.referral"}
                for k in range(count)]
    return out


def test_a_rate_rising_is_found_the_same() -> None:
    """A rate's exposure is its denominator: referrals among contacts and referrals, steady in ZZ5, up in W48."""
    log = _weeks("ZZ5", 10, [1, 2, 1, 1, 2, 1, 1, 2, 9]) + _weeks("ZZ6", 10, [2, 1, 2, 1, 2, 1, 2, 1, 2])
    expected = rises(log, [REFERRAL_SHARE], CONFIGS[0], today=TODAY_ISO)
    assert [(r.unit, r.unit_kind) for r in expected] == [("ZZ5", "area")]
    assert rises_counted(log, [REFERRAL_SHARE], CONFIGS[0], today=TODAY_ISO) == expected
    assert _counted(log, [REFERRAL_SHARE], "week") == hotspot_tables(log, [REFERRAL_SHARE])


def test_odd_records_are_passed_over_or_counted_as_the_index_counts_them() -> None:
    """Tombstones (no body), records without a kind, events without a district or an occurred_on, an event's
    record audited twice, dates the period cannot place: cells and index agree on each."""
    rng = random.Random(7)
    log: list[Any] = [None, {"record_id": "x"}, "not a record"]
    for n in range(300):
        day = TODAY - dt.timedelta(days=rng.randrange(1, 120))
        record = _contact(day, rng.choice(("ZZ1", "ZZ2")), n, occurred=day - dt.timedelta(days=rng.randrange(3)))
        insight = dict(record["insight"])
        if rng.random() < 0.2:
            insight.pop("district")
        if rng.random() < 0.2:
            insight.pop("occurred_on")
        if rng.random() < 0.05:
            insight["occurred_on"] = "2026-02-30"  # no such day: the unknown column
        record = {**record, "insight": insight}
        log.append(record)
        if rng.random() < 0.1:
            log.append({**record, "record_id": str(uuid.UUID(int=rng.getrandbits(128)))})
    for across in ("week", "month"):
        whole = hotspot_tables(log, [CONTACTS, REFERRAL_SHARE], across=across)
        assert any(UNKNOWN in t.rows for t in whole) and any(UNKNOWN in t.columns for t in whole)
        assert _counted(log, [CONTACTS, REFERRAL_SHARE], across) == whole
