"""Hotspots from audit records (broker/insight/hotspots.py): the measures by district, school and GP practice, the
rise found in one fictitious district from the records alone, the `mash.hotspot_rise` it becomes (schema-valid, no
child, the unit's code classified sensitive), and what of the tables may be shown."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from broker.audit.record import audit_record
from broker.insight.detect import DetectorConfig
from broker.insight.hotspots import hotspot_tables, published_hotspots, rise_event, rises
from broker.insight.measures import default_measures
from broker.insight.sdc import OTHER_ROW
from broker.insight.table import SUPPRESSED
from broker.schema.classification import classify
from broker.schema.loader import SCHEMA_VERSION
from broker.schema.validate import validate_event

TODAY = dt.date(2026, 12, 1)  # Tuesday of 2026-W49
MONDAY = TODAY - dt.timedelta(days=TODAY.weekday())
CONFIG = DetectorConfig(alpha=0.01, min_population=20)


def contact(n: int, day: dt.date, district: str, urn: str) -> dict[str, Any]:
    """The audit record of one published police contact, its insight facts codes only (fictitious child lt1_...)."""
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"hotspot-test/{n}"))
    return audit_record("event_published", time=f"{day.isoformat()}T09:00:00Z", actor="intake:police",
                        event_id=event_id, event_type="police.incident_child_present", subject=f"lt1_{n:024d}",
                        agency="police", insight={"occurred_on": day.isoformat(), "source_agency": "police",
                                                  "district": district, "school_urn": urn})


def log(rising: int, rise_weeks_ago: int = 1) -> list[dict[str, Any]]:
    """Nine weeks of history before the week `rise_weeks_ago` (1: the last complete week, W48; 0: the week under
    way, W49, which holds TODAY), then `rising` contacts in ZZ9 that week; 2 a week in ZZ9 otherwise."""
    records, n = [], 0
    for weeks_ago in range(9, -1, -1):
        day = MONDAY - dt.timedelta(weeks=weeks_ago) + dt.timedelta(days=0 if weeks_ago == 0 else 3)
        for district, urn, count in (("ZZ9", "999001", rising if weeks_ago == rise_weeks_ago else 2),
                                     ("ZZ8", "999002", 3), ("ZZ7", "999003", 1)):
            for _ in range(count):
                records.append(contact(n, day, district, urn))
                n += 1
    return records


def contacts() -> list[Any]:
    return [default_measures().by_id("contacts")]


def test_a_rise_in_one_district_is_found_from_the_audit_records_and_at_its_school() -> None:
    found = rises(log(rising=12), contacts(), CONFIG, today=TODAY.isoformat())
    assert {(r.unit_kind, r.unit) for r in found} == {("area", "ZZ9"), ("school_urn", "999001")}
    area = next(r for r in found if r.unit_kind == "area")
    # the last complete week, against the eight before it (the week under way is neither tested nor history)
    assert (area.period, area.observed, area.baseline, area.expected) == ("2026-W48", 12, 16, 2.0)
    assert rises(log(rising=2), contacts(), CONFIG, today=TODAY.isoformat()) == []  # steady: nothing


def test_the_last_complete_period_is_tested_not_the_one_under_way() -> None:
    # the same rise in the week that holds today (a Tuesday): not tested yet, since a part of a week compared whole
    # against whole weeks says little; on the Monday after that week it is the last complete one, and is flagged
    now = log(rising=12, rise_weeks_ago=0)
    assert rises(now, contacts(), CONFIG, today=TODAY.isoformat()) == []
    next_monday = (MONDAY + dt.timedelta(weeks=1)).isoformat()
    found = rises(now, contacts(), CONFIG, today=next_monday)
    assert {(r.unit_kind, r.unit, r.period) for r in found} == {("area", "ZZ9", "2026-W49"),
                                                                ("school_urn", "999001", "2026-W49")}
    # months too: on 1 December the last complete month is November, whose weeks hold the W48 rise
    monthly = rises(log(rising=40), contacts(), DetectorConfig(alpha=0.01, min_population=20,
                                                               min_baseline_periods=1),
                    today=TODAY.isoformat(), across="month")
    assert {(r.unit_kind, r.unit, r.period) for r in monthly} == {("area", "ZZ9", "2026-11"),
                                                                  ("school_urn", "999001", "2026-11")}


def test_the_rise_event_is_schema_valid_names_no_child_and_keeps_its_id_across_runs() -> None:
    (area, *_) = [r for r in rises(log(12), contacts(), CONFIG, today=TODAY.isoformat()) if r.unit_kind == "area"]
    event = rise_event(area, SCHEMA_VERSION, 1, "2026-12-01T10:00:00Z")
    assert validate_event(event) == []
    assert event["subject"]["child"] == {} and event["subject"]["related_people"] == []
    assert event["subject"]["linkage"]["basis"] == "finding_unit"
    assert classify(event, "payload.unit_code") == "sensitive_operational"
    assert classify(event, "payload.observed") == "operational"
    again = rise_event(area, SCHEMA_VERSION, 1, "2026-12-01T11:00:00Z")  # the next run, an hour on
    assert again["event_id"] == event["event_id"] and again["subject"] == event["subject"]
    other_week = rise_event(type(area)(**{**_fields(area), "period": "2026-W50"}), SCHEMA_VERSION, 1,
                            "2026-12-08T10:00:00Z")
    assert other_week["event_id"] != event["event_id"]
    forged = {**event, "payload": {**event["payload"], "unit_code": "ZZ9 1ZZ"}}  # a whole postcode never fits
    assert validate_event(forged)


def _fields(rise: Any) -> dict[str, Any]:
    return {name: getattr(rise, name) for name in rise.__slots__}


def test_published_hotspot_tables_fold_small_units_and_suppress_small_counts() -> None:
    tables = hotspot_tables(log(12), contacts(), across="week")
    assert {t.rows_by for t in tables} == {"area", "school_urn", "gp_ods"}
    area = next(t for t in tables if t.rows_by == "area")
    shown = next(p for p in published_hotspots([area], min_population=20))
    # ZZ7 (10 contacts in all) is below 20: folded, with the next smallest (ZZ8) so that it is not shown alone
    assert shown.rows == ("ZZ9", OTHER_ROW)
    assert shown.cells[OTHER_ROW, "2026-W48"] == SUPPRESSED  # 3 + 1 that week: a count of 1 to 5
    # and ZZ9's 12 beside it is suppressed too: with the week's total (16) it would give the 4 away
    assert shown.cells["ZZ9", "2026-W48"] == SUPPRESSED and shown.suppressed["ZZ9", "2026-W48"] == "secondary"
    assert all(shown.cells[c] == SUPPRESSED for c in shown.cells if 1 <= area.count(*c) <= 5 and c[0] != OTHER_ROW)


def test_a_watched_measure_that_does_not_exist_is_refused_by_its_setting() -> None:
    from broker.config import Settings
    from broker.insight.measures import MeasureError
    from broker.service.insight_watch import watched_measures

    assert [m.id for m in watched_measures(Settings(insight_measures="contacts, referrals"))] == ["contacts",
                                                                                                 "referrals"]
    with pytest.raises(MeasureError, match=r"MASH_INSIGHT_MEASURES: .*no measure with id 'contact'"):
        watched_measures(Settings(insight_measures="contacts,contact"))
