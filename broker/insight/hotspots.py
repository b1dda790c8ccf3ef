"""Hotspots and trends (pure): the measures by area (postcode district), by school (URN) and by GP practice (ODS
code) over time, what of them may be shown, the rises the detector finds (broker/insight/detect.py), and the
canonical `mash.hotspot_rise` event that tells the hub of one.

The district, URN and ODS code come from each event's insight facts (broker/insight/facts.py: the district is the
postcode's outward code, computed inside the broker; the full postcode is never kept), so nothing here sees a child.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from broker.insight.cells import HOTSPOT_BY, HotspotCells, detector_periods
from broker.insight.compute import index_records, period_label, table_from_index
from broker.insight.detect import DetectorConfig, Rise, detect, previous_periods
from broker.insight.measures import Measure
from broker.insight.sdc import suppress
from broker.insight.table import Published, Table
from broker.pipeline.hub.history import derived_id

RISE = "mash.hotspot_rise"
SOURCE = {"agency": "broker", "system": "mash-broker", "record_id": "insight-watch", "format": "insight-watch"}
BY = HOTSPOT_BY  # area, gp_ods, school_urn


def hotspot_tables(records: Iterable[Mapping[str, Any]], measures: Sequence[Measure], *,
                   across: str = "week") -> list[Table]:
    """Each available measure that breaks down by a hotspot breakdown and period `across`, by each such breakdown
    (records read once)."""
    index = index_records(records)
    return [table_from_index(index, m, by=by, across=across) for m in measures for by in BY
            if m.available and by in m.breakdowns and across in m.periods]


def published_hotspots(tables: Iterable[Table], *, min_population: int) -> list[Published]:
    """What may be shown of the hotspot tables outside the IG role: units below the minimum population folded into
    one row, disclosure control applied (broker/insight/sdc.py)."""
    return [suppress(t, local=True, min_population=min_population) for t in tables]


def rises(records: Iterable[Mapping[str, Any]], measures: Sequence[Measure], config: DetectorConfig, *,
          today: str, across: str = "week") -> list[Rise]:
    """The rises in the last complete period before `today` (YYYY-MM-DD): on a Tuesday of week 49, week 48; on
    1 December, November. The period that holds `today` is still under way, and a part of a period compared
    against whole ones would hide a rise until it ended; it is tested once it is complete."""
    return detect(hotspot_tables(records, measures, across=across), config, last_complete_period(today, across))


def rises_counted(records: Iterable[Mapping[str, Any]], measures: Sequence[Measure], config: DetectorConfig, *,
                  today: str, across: str = "week") -> list[Rise]:
    """`rises`, with each record folded into the cells the detector reads as it goes by and let go
    (cells.HotspotCells kept to the tested period and its baseline), so nothing held grows with the records: for
    measures that cells.streamable takes. Raises cells.NeedsJoin for a counted record that concerns another event
    (the caller then counts by `rises`)."""
    until = last_complete_period(today, across)
    cells = HotspotCells(measures, across, keep=detector_periods(until, across, config))
    for record in records:
        cells.add(record)
    return detect(cells.tables(), config, until)


def last_complete_period(today: str, across: str) -> str:
    """The label of the period (week, month, quarter) just before the one that holds `today`."""
    (label,) = previous_periods(period_label(today, across), across, 1)
    return label


def unit_linkage(rise: Rise, key_version: int) -> dict[str, Any]:
    """The event's subject: no child, but the canonical envelope keys every event by a token. This one is a digest
    of the unit (not keyed: a district or URN is no secret and no child's identifier), so one unit's rises share a
    partition and never a child's."""
    digest = hashlib.sha256(f"{RISE}\x1f{rise.unit_kind}\x1f{rise.unit}".encode()).digest()[:24]
    token = f"lt{key_version}_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return {"token": token, "key_version": key_version, "basis": "finding_unit", "confidence": "verified"}


def rise_event(rise: Rise, schema_version: str, key_version: int, at: str) -> dict[str, Any]:
    """`mash.hotspot_rise` for the hub. Its id is fixed by the measure, unit and period, so a restarted watch that
    finds the same rise again makes the same event, which the share stage's delivered log drops."""
    event_id = derived_id(RISE, rise.measure, rise.unit_kind, rise.unit, rise.period_kind, rise.period)
    return {
        "event_id": event_id, "event_type": RISE, "schema_version": schema_version, "occurred_at": at,
        "recorded_at": at, "source": {**SOURCE, "record_version": event_id},
        "subject": {"linkage": unit_linkage(rise, key_version), "child": {}, "related_people": []},
        "risk": {"level": "unknown", "categories": []},
        # the local authority's public task: its duty to make arrangements to safeguard children (Children Act
        # 2004 s11), for which the hub looks at where harm is rising; the finding is about a place, not a person
        "lawful_basis": {"article_6": "6(1)(e)"},
        "consent": {"status": "not_applicable"}, "data_quality": [],
        "payload": {
            "record_kind": "hotspot rise", "measure": rise.measure, "unit_kind": rise.unit_kind,
            "unit_code": rise.unit, "period": rise.period, "period_kind": rise.period_kind,
            "observed": rise.observed, "expected": rise.expected, "baseline": rise.baseline,
            "baseline_periods": rise.baseline_periods, "p_value": rise.p_value, "alpha": rise.alpha,
            "method": rise.method,
        },
    }
