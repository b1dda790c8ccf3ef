"""What /insight shows, as data (pure): the measures of schemas/measures.yaml computed from audit records
(broker/insight/compute.py), made `Published` by disclosure control (broker/insight/sdc.py), laid out for the page,
its exports and the Prometheus gauges.

Nothing here returns an exact `Table`: every table leaves as `table_dict(suppress(...))`, so a count of 1 to 5 is
"c", secondary suppression protects it, and rows that name a place (area, school, GP practice) below the minimum
population are folded into one. The records are audit records, which carry tokens, codes and ids only; none of
them is copied into what the page receives (rows are breakdown values: agencies, districts, outcome codes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.insight.compute import ComputeError, Index, index_records, table_from_index
from broker.insight.detect import Rise
from broker.insight.measures import Measure, Measures
from broker.insight.render import table_dict
from broker.insight.sdc import COARSER, DEFAULT_MIN_POPULATION, coarsen, merge_small_rows, suppress, suppress_pair
from broker.insight.table import Published

TREND_PERIOD = "month"  # the one granularity a measure's periods are published at (quarter, all: derived)
UNPUBLISHED_PERIOD = "week"
TREND_BY = ("agency", "outcome", "reason", "area")  # the first of these a measure breaks down by
TIMELINESS = ("decision_within_one_working_day", "encompass_before_next_school_day")
AREA_BY = "area"
BREAKDOWN_WORDS = {"agency": "agency", "source": "referral source", "event_type": "kind of record",
                   "outcome": "outcome", "area": "area (postcode district)", "school_urn": "school (URN)",
                   "gp_ods": "GP practice (ODS code)", "reason": "reason", "subscriber": "recipient",
                   "field": "field"}


@dataclass(frozen=True, slots=True)
class View:
    """One way to lay a measure out: rows `by` one breakdown, columns `across` a period or a second breakdown."""

    by: str
    across: str = TREND_PERIOD


def measure_words(measures: Measures) -> list[dict[str, Any]]:
    """Each measure as a partnership board reads it: name, definition, what is counted, target, how it breaks down."""
    return [{"id": m.id, "name": m.name, "definition": m.definition, "target": m.target, "is_rate": m.is_rate,
             "operational": m.operational, "available": m.available, "unavailable_why": m.unavailable_why,
             "numerator": m.numerator.words if m.numerator else None,
             "denominator": m.denominator.words if m.denominator else None,
             "breakdowns": list(m.breakdowns), "periods": list(m.periods)} for m in measures]


def trend_view(m: Measure) -> View | None:
    """How the page charts a measure over the months: by the first of TREND_BY it breaks down by."""
    if TREND_PERIOD not in m.periods:
        return None
    by = next((b for b in TREND_BY if b in m.breakdowns), m.breakdowns[0] if m.breakdowns else None)
    return None if by is None else View(by)


def linked_views(m: Measure) -> tuple[str, ...]:
    """The breakdowns whose month tables the page publishes together for a measure (its trend's and the area's):
    they share their month totals and grand total, so they are protected together (sdc.suppress_pair)."""
    trend = trend_view(m)
    if trend is None:
        return ()
    return tuple(dict.fromkeys((trend.by, *((AREA_BY,) if AREA_BY in m.breakdowns else ()))))


def _linked_pair(index: Index, m: Measure, min_population: int) -> dict[str, Published]:
    """The measure's two linked month tables, protected together, by breakdown ({} when it has no pair)."""
    linked = linked_views(m)
    if len(linked) != 2:
        return {}
    first, second = (table_from_index(index, m, by=by, across=TREND_PERIOD) for by in linked)
    return dict(zip(linked, suppress_pair(first, second, min_population=min_population), strict=True))


def _published(index: Index, m: Measure, view: View, min_population: int) -> Published:
    if view.across == TREND_PERIOD and view.by in linked_views(m) and len(linked_views(m)) == 2:
        return _linked_pair(index, m, min_population)[view.by]
    return suppress(table_from_index(index, m, by=view.by, across=view.across), local=True,
                    min_population=min_population)


def published_tables(records: Iterable[Mapping[str, Any]], measures: Measures, view: View, *,
                     subscriber_partner: Mapping[str, str] | None = None, only: Sequence[str] = (),
                     min_population: int = DEFAULT_MIN_POPULATION) -> list[Published]:
    """Every available measure (of those in `only`, when given) that breaks down by `view.by` and has its period
    (or breaks down by it too), disclosure-controlled.

    Linked tables: a measure's periods are published at one granularity, the month. A quarter or "all" is derived
    from the published month table (sdc.coarsen), so differencing it against the months gives nothing away; weeks,
    which do not nest in months, are not published at all (ComputeError: the API's 422)."""
    if view.across == UNPUBLISHED_PERIOD:
        raise ComputeError("across 'week': weeks are not published beside months (they do not nest, and a month "
                           "differenced against its weeks could give a suppressed cell away); use month or quarter")
    index = index_records(records, subscriber_partner)
    chosen = [m for m in measures if m.available and (not only or m.id in only) and view.by in m.breakdowns
              and (view.across in m.periods or view.across in m.breakdowns)]
    return [_derived(index, m, view, min_population) if view.across in COARSER and TREND_PERIOD in m.periods
            else _published(index, m, view, min_population) for m in chosen]


def _derived(index: Index, m: Measure, view: View, min_population: int) -> Published:
    months = _published(index, m, View(view.by, TREND_PERIOD), min_population)
    exact = merge_small_rows(table_from_index(index, m, by=view.by, across=view.across), min_population)
    return coarsen(months, exact, view.across)


def rise_words(rise: Rise, measures: Measures) -> dict[str, Any]:
    """A rise the hotspot detector found, as the board may see it: which measure, where, when, by which test.
    Not its counts: the tested period's count may be as small as the detector's minimum (3), below what
    disclosure control lets the board see."""
    name = next((m.name for m in measures if m.id == rise.measure), rise.measure)
    return {"measure": rise.measure, "name": name, "unit_kind": rise.unit_kind, "unit": rise.unit,
            "period": rise.period, "method": rise.method, "alpha": rise.alpha}


def overview(records: Iterable[Mapping[str, Any]], measures: Measures, *,
             subscriber_partner: Mapping[str, str] | None = None,
             min_population: int = DEFAULT_MIN_POPULATION, rises: Sequence[Rise] = ()) -> dict[str, Any]:
    """The page's data, records read once: the measures in words; each available measure's monthly trend; the
    timeliness measures against their targets; the area table (every measure by postcode district); the rises
    the hotspot detector finds now (`rises`, computed by the caller from the same records)."""
    index = index_records(records, subscriber_partner)
    trends: list[dict[str, Any]] = []
    areas: list[dict[str, Any]] = []
    timeliness: list[dict[str, Any]] = []
    for m in measures:
        if not m.available:
            continue
        view = trend_view(m)
        pair = _linked_pair(index, m, min_population)  # the trend and area tables share it: protect it once
        if view is not None:
            table = table_dict(pair.get(view.by) or _published(index, m, view, min_population))
            (timeliness if m.id in TIMELINESS else trends).append({**table, "target": m.target,
                                                                   "is_rate": m.is_rate})
        if AREA_BY in m.breakdowns and TREND_PERIOD in m.periods:
            areas.append(table_dict(pair.get(AREA_BY) or _published(index, m, View(AREA_BY), min_population)))
    return {"measures": measure_words(measures), "trends": trends, "timeliness": timeliness, "areas": areas,
            "rises": [rise_words(r, measures) for r in rises], "min_population": min_population,
            "breakdowns": BREAKDOWN_WORDS}


def latest_totals(page: Mapping[str, Any], measures: Measures) -> dict[str, int | None]:
    """For the Prometheus gauges, from `overview`'s published trends: each operational measure's total in its latest
    month (None when that total is suppressed, so the gauge is withdrawn rather than showing what disclosure
    control hid)."""
    operational = {m.id for m in measures if m.operational}
    out: dict[str, int | None] = {}
    for t in (*page["trends"], *page["timeliness"]):
        if t["measure"] not in operational or not t["columns"]:
            continue
        value = t["column_totals"].get(t["columns"][-1])
        out[t["measure"]] = value if isinstance(value, int) and not isinstance(value, bool) else None
    return out
