"""Linked tables (issue 17): the attacker's question disclosure control one table at a time leaves open.

The page and its exports publish the same measure several ways: by month and by quarter (and "all"), by agency and
by area. Each table is protected on its own (tests/insight/test_sdc_attack.py); an attacker who differences two of
them (a quarter's cell against its months, a district's row against another breakdown's totals) must still not pin
a suppressed cell. These tests list what is published together, then attack the pairs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.audit.record import audit_record
from broker.insight.compute import ComputeError, compute
from broker.insight.measures import default_measures
from broker.insight.sdc import suppress_pair
from broker.insight.table import SUPPRESSED, Published, Table
from broker.web.insight_data import View, overview, published_tables
from tests.insight.test_sdc_attack import feasible_values

AGENCIES = ("police", "health", "education")
TYPES = {"police": "police.incident_child_present", "health": "health.safeguarding_flag",
         "education": "education.attendance_concern"}


def contacts_log(grid: Mapping[str, Sequence[int]], year: int = 2026) -> list[dict[str, Any]]:
    """`grid[agency][i]` contacts from that agency in month i + 1 of `year`, each about another fictitious child
    (lt1_...), at fictitious districts ZZ1..ZZ3."""
    records, n = [], 0
    for agency, months in grid.items():
        for month, count in enumerate(months, start=1):
            for k in range(count):
                day = dt.date(year, month, 1 + k % 27).isoformat()
                records.append(audit_record(
                    "event_published", time=f"{day}T09:00:00Z", actor=f"intake:{agency}",
                    event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"linked-test/{n}")), event_type=TYPES[agency],
                    subject=f"lt1_{n:024d}", agency=agency,
                    insight={"occurred_on": day, "source_agency": agency, "district": f"ZZ{1 + n % 3}"}))
                n += 1
    return records


def contacts(records: list[dict[str, Any]], view: View, min_population: int = 0) -> Published:
    (table,) = published_tables(records, default_measures(), view, only=("contacts",),
                                min_population=min_population)
    return table


# police's January (3) is protected inside the month table by a rectangle with April (another quarter)
QUARTERS_APART = {"police": [3, 50, 50, 7, 40, 40], "health": [8, 30, 30, 9, 30, 30]}


def test_what_the_page_publishes_together() -> None:
    """Every table of the page's overview, by measure: the months are its one granularity, and the breakdowns of a
    measure are its trend's and the area's."""
    data = overview(contacts_log(QUARTERS_APART), default_measures(), min_population=0)
    published: dict[str, set[tuple[str, str]]] = {}
    for t in data["trends"] + data["timeliness"] + data["areas"]:
        published.setdefault(t["measure"], set()).add((t["rows_by"], t["columns_by"]))
    assert {columns for views in published.values() for _, columns in views} == {"month"}
    assert published["contacts"] == {("agency", "month"), ("area", "month")}
    # at most two tables a measure: its trend's breakdown and the area's (a measure charted by area: one)
    assert all(len({rows for rows, _ in views} - {"area"}) <= 1 for views in published.values())


def test_a_quarter_does_not_give_away_a_suppressed_month() -> None:
    """The attacker's difference: police's Q1 minus its February and March is its January, unless the quarter
    table says no more than the month table already did."""
    records = contacts_log(QUARTERS_APART)
    exact = compute(records, default_measures().by_id("contacts"), by="agency", across="month")
    months = contacts(records, View("agency", "month"))
    assert months.cells["police", "2026-01"] == SUPPRESSED and exact.count("police", "2026-01") == 3
    assert months.cells["police", "2026-04"] == SUPPRESSED  # its protection lies in the next quarter
    quarters = contacts(records, View("agency", "quarter"))
    for (row, month), shown in months.cells.items():
        if shown != SUPPRESSED:
            continue
        quarter = f"{month[:4]}-Q{(int(month[5:]) - 1) // 3 + 1}"
        siblings = [c for c in months.columns if c != month and c[:4] == month[:4]
                    and (int(c[5:]) - 1) // 3 == (int(month[5:]) - 1) // 3]
        whole = quarters.cells[row, quarter]
        if whole != SUPPRESSED and all(months.cells[row, c] != SUPPRESSED for c in siblings):
            recovered = int(whole) - sum(int(months.cells[row, c]) for c in siblings)
            pytest.fail(f"{row} {month} recovered from its quarter: {recovered}")


def derive(months: Published, columns_by: str) -> dict[tuple[str, str], Any]:
    """What the attacker computes from the month table alone: a quarter (or "all") is the sum of its months when
    every one of them is shown."""
    def label(month: str) -> str:
        if columns_by == "all" or month == "unknown":
            return "all" if columns_by == "all" else month
        return f"{month[:4]}-Q{(int(month[5:]) - 1) // 3 + 1}"
    parts: dict[tuple[str, str], list[Any]] = {}
    for (row, month), shown in months.cells.items():
        parts.setdefault((row, label(month)), []).append(shown)
    return {cell: (SUPPRESSED if SUPPRESSED in values else sum(values)) for cell, values in parts.items()}


grids = st.fixed_dictionaries({a: st.lists(st.sampled_from([0, 1, 2, 3, 5, 6, 7, 9, 14]), min_size=6, max_size=6)
                               for a in AGENCIES})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids)
def test_every_quarter_table_is_a_function_of_the_published_month_table(grid: dict[str, list[int]]) -> None:
    """So differencing them tells nothing the month table did not: each of their cells is the sum of its shown
    months, or "c"; their totals are the month table's."""
    records = contacts_log(grid)
    if not records:
        return
    months = contacts(records, View("agency", "month"))
    coarse = contacts(records, View("agency", "quarter"))  # "all" is derived the same way (sdc.coarsen)
    expected = derive(months, "quarter")
    assert {(r, c) for r in coarse.rows for c in coarse.columns} == set(expected)
    for cell, value in expected.items():
        assert coarse.cells[cell] == value, cell
    assert coarse.row_totals == months.row_totals and coarse.total == months.total


def test_weeks_are_not_published_beside_months() -> None:
    """Weeks do not nest in months: a month's cell against the weeks inside it (the weeks that straddle it zero) is
    a difference the attacker can take. The page publishes one granularity, months; weeks stay inside the broker
    (the hotspot detector)."""
    with pytest.raises(ComputeError, match="week"):
        contacts(contacts_log(QUARTERS_APART), View("agency", "week"))


def told_the_other_totals(one: Published, other: Published) -> Published:
    """`one` as the attacker reads it beside `other`: every month total and the grand total either shows."""
    return Published(**{**{f: getattr(one, f) for f in one.__slots__},
                        "column_totals": {c: (other.column_totals[c] if v == SUPPRESSED else v)
                                          for c, v in one.column_totals.items()},
                        "total": other.total if one.total == SUPPRESSED else one.total})


# found by a random search over three agencies x three months: the area table hides February's total (and the grand
# total) to protect its cells, the agency table shows February's 13
HIDDEN_IN_ONE = {"police": [1, 6, 0], "health": [0, 0, 14], "education": [0, 7, 3]}


@pytest.mark.parametrize("grid", [QUARTERS_APART, HIDDEN_IN_ONE], ids=["quarters-apart", "hidden-in-one"])
def test_the_agency_and_area_tables_agree_on_every_total_both_show(grid: dict[str, list[int]]) -> None:
    records = contacts_log(grid)
    by_agency, by_area = contacts(records, View("agency", "month")), contacts(records, View("area", "month"))
    assert by_agency.columns == by_area.columns
    both = [c for c in by_agency.columns if SUPPRESSED not in (by_agency.column_totals[c], by_area.column_totals[c])]
    assert all(by_agency.column_totals[c] == by_area.column_totals[c] for c in both)
    assert both or grid is HIDDEN_IN_ONE  # there, no month's total is shown by both (one hides what the other shows)
    # and apart, each is safe (tests/insight/test_sdc_attack.py's enumeration)
    for one in (by_agency, by_area):
        assert all(len(v) > 1 for v in feasible_values(one, rounded=False, cap=60).values())


def test_a_total_one_breakdown_hides_and_another_shows_gives_no_cell_away() -> None:
    """The attacker takes the agency table's February total into the area table's system, then enumerates."""
    records = contacts_log(HIDDEN_IN_ONE)
    by_agency, by_area = contacts(records, View("agency", "month")), contacts(records, View("area", "month"))
    assert by_area.column_totals == by_agency.column_totals and by_area.total == by_agency.total
    pinned = {cell for cell, values in feasible_values(told_the_other_totals(by_area, by_agency), rounded=False,
                                                       cap=60).items() if len(values) == 1}
    assert pinned == set(), pinned


def events_table(events: Sequence[tuple[int, int, int]], side: int) -> Table:
    """One partition of `events` (month, agency, district): by agency (side 0) or by district (side 1)."""
    counts: dict[tuple[str, str], int] = {}
    for month, agency, district in events:
        key = (AGENCIES[agency] if side == 0 else f"ZZ{district + 1}", f"2026-{month + 1:02d}")
        counts[key] = counts.get(key, 0) + 1
    return Table(measure="contacts", title="Contacts", rows_by="agency" if side == 0 else "area",
                 columns_by="month", rows=tuple(sorted({r for r, _ in counts})),
                 columns=tuple(sorted({c for _, c in counts})), counts=counts)


def with_totals(pub: Published, column_totals: dict[str, int]) -> dict[tuple[str, str], set[int]] | None:
    """The values each "c" cell of `pub` takes when its month totals are `column_totals` (and its grand total
    their sum); None when no whole-number table agrees with them and everything else `pub` shows."""
    total = sum(column_totals.values())
    filled = Published(**{**{f: getattr(pub, f) for f in pub.__slots__}, "column_totals": column_totals,
                          "total": total})
    for c in pub.columns:
        if not any(h[1] == c for h in pub.suppressed) and sum(
                int(pub.cells[r, c]) for r in pub.rows) != column_totals[c]:
            return None
    for r in pub.rows:
        if not any(h[0] == r for h in pub.suppressed) and pub.row_totals[r] != SUPPRESSED and sum(
                int(pub.cells[r, c]) for c in pub.columns) != pub.row_totals[r]:
            return None
    values = feasible_values(filled, rounded=False, cap=CAP)
    return None if any(not v for v in values.values()) else values


CAP = 20  # every count the strategy below can make (at most 20 events); a cap only makes the attacker stronger


def joint_values(pair: Sequence[Published]) -> tuple[dict[tuple[int, str, str], set[int]], dict[str, set[int]]]:
    """Brute force over the joint system: every month total either table hides (the same figure in both) takes
    each value its grand total allows, from the most either table shows in that month up to CAP; the tables share
    nothing else, so for each choice each table is enumerated on its own and a choice counts only when both agree
    with it."""
    first = pair[0]
    hidden = [c for c in first.columns if first.column_totals[c] == SUPPRESSED]
    shown = {c: int(first.column_totals[c]) for c in first.columns if c not in hidden}
    cells: dict[tuple[int, str, str], set[int]] = {}
    totals: dict[str, set[int]] = {c: set() for c in hidden}

    floor = {c: max(sum(int(v) for (_, col), v in pub.cells.items() if col == c and v != SUPPRESSED)
                    for pub in pair) for c in hidden}

    def choose(i: int, chosen: dict[str, int]) -> None:
        if i == len(hidden) - 1 and first.total != SUPPRESSED:  # the grand total gives the last one
            last = int(first.total) - sum(shown.values()) - sum(chosen.values())
            if floor[hidden[i]] <= last <= CAP:
                choose(i + 1, {**chosen, hidden[i]: last})
            return
        if i == len(hidden):
            column_totals = {c: chosen.get(c, shown.get(c, 0)) for c in first.columns}
            if first.total != SUPPRESSED and sum(column_totals.values()) != first.total:
                return
            found: list[dict[tuple[str, str], set[int]]] = []
            for pub in pair:  # a choice the first table refuses needs no enumeration of the second (the same
                values = with_totals(pub, column_totals)  # verdict: 96% of the first's answers were None)
                if values is None:
                    return
                found.append(values)
            for side, values in enumerate(found):
                for (r, c), found_values in values.items():
                    cells.setdefault((side, r, c), set()).update(found_values)
            for c in hidden:
                totals[c].add(column_totals[c])
            return
        for v in range(floor[hidden[i]], CAP + 1):
            choose(i + 1, {**chosen, hidden[i]: v})

    choose(0, {})
    return cells, totals


event_lists = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=20)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_lists)
def test_two_partitions_of_one_set_of_events_give_no_cell_away_together(
        events: list[tuple[int, int, int]]) -> None:
    """Random events, each with a month, an agency and a district: the agency and district tables have the same
    month totals because they count the same events. After sdc.suppress_pair, the attacker who reads both tables
    at once (every cell, row total, month total and grand total either shows) pins no "c" cell of either, nor a
    month total shown "c"."""
    exact = (events_table(events, 0), events_table(events, 1))
    pair = suppress_pair(*exact, min_population=0)
    assert pair[0].column_totals == pair[1].column_totals and pair[0].total == pair[1].total
    for pub, table in zip(pair, exact, strict=True):
        assert {c for c in pub.cells if 1 <= table.count(*c) <= 5} <= set(pub.suppressed)
        assert {c for c, v in pub.cells.items() if v == SUPPRESSED} == set(pub.suppressed)
        for cell, reason in pub.suppressed.items():
            assert (1 <= table.count(*cell) <= 5) if reason == "primary" else table.count(*cell) >= 6
        for c in pub.columns:
            assert pub.column_totals[c] == SUPPRESSED or pub.column_totals[c] == sum(
                table.count(r, c) for r in table.rows)
    cells, totals = joint_values(pair)
    for (side, r, c), values in cells.items():
        assert exact[side].count(r, c) in values
    assert [k for k, v in cells.items() if len(v) == 1] == []
    assert [c for c, v in totals.items() if len(v) == 1] == []
    # the month totals of 1 to 5 are "c" too
    assert all(pair[0].column_totals[c] == SUPPRESSED for c in exact[0].columns
               if 1 <= sum(exact[0].count(r, c) for r in exact[0].rows) <= 5)


# Found by a random search (one agency, 35 events over eight districts and six months): a pinned "c" is left with
# nothing near it to hide. The pair is then withheld whole, never a 500 and never a figure of 1 to 5.
_STUCK = [("Z0", "02"), ("Z0", "03"), ("Z0", "05"), ("Z0", "05"), ("Z0", "05"), ("Z1", "01"), ("Z1", "01"),
          ("Z1", "03"), ("Z1", "05"), ("Z2", "02"), ("Z2", "05"), ("Z2", "05"), ("Z3", "01"), ("Z3", "01"),
          ("Z3", "03"), ("Z3", "05"), ("Z3", "06"), ("Z4", "04"), ("Z4", "04"), ("Z4", "04"), ("Z4", "05"),
          ("Z4", "06"), ("Z4", "06"), ("Z5", "03"), ("Z5", "05"), ("Z6", "01"), ("Z6", "03"), ("Z6", "04"),
          ("Z6", "04"), ("Z6", "05"), ("Z7", "01"), ("Z7", "02"), ("Z7", "02"), ("Z7", "02"), ("Z7", "02")]


def test_a_pair_the_greedy_cannot_protect_is_withheld_whole() -> None:
    from broker.insight.sdc import SUPPRESSED, suppress_pair
    from broker.insight.table import Table

    columns = tuple(f"2026-{m:02d}" for m in range(1, 7))
    by_agency: dict[tuple[str, str], int] = {}
    by_area: dict[tuple[str, str], int] = {}
    for area, month in _STUCK:
        by_agency["a", f"2026-{month}"] = by_agency.get(("a", f"2026-{month}"), 0) + 1
        by_area[area, f"2026-{month}"] = by_area.get((area, f"2026-{month}"), 0) + 1
    agency = Table("m", "t", "agency", "month", ("a",), columns, by_agency)
    areas = Table("m", "t", "agency", "month", tuple(sorted({a for a, _ in _STUCK})), columns, by_area)
    for published in suppress_pair(agency, areas, min_population=0):
        shown = [*published.cells.values(), *published.row_totals.values(), *published.column_totals.values(),
                 published.total]
        assert all(v == SUPPRESSED for v in shown)
