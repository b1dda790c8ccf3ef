"""Disclosure control's other promises (broker/insight/sdc.py): the secondary cells are the smallest that protect,
the result is the same every time, totals are exact at local level and rounded to the nearest 10 above it, zeros
stay zeros, and rows below the minimum population never show alone. (Recovery attacks: test_sdc_attack.py.)"""

from __future__ import annotations

from broker.insight.sdc import OTHER_ROW, round_total, suppress
from broker.insight.table import SUPPRESSED, Table
from tests.insight.test_sdc_attack import table_of


def test_the_secondary_cells_are_the_smallest_that_protect_and_the_result_is_deterministic() -> None:
    table = table_of([[3, 10, 20], [12, 14, 30]])
    pub = suppress(table)
    # 3 alone is pinned by its row; 10 and 12 (the smallest in its row and column) and 14 to close the rectangle:
    # the large 20 and 30 stay shown
    assert pub.suppressed == {("ZZ1", "2026-01"): "primary", ("ZZ1", "2026-02"): "secondary",
                              ("ZZ2", "2026-01"): "secondary", ("ZZ2", "2026-02"): "secondary"}
    assert pub.cells["ZZ1", "2026-03"] == 20 and pub.cells["ZZ2", "2026-03"] == 30
    assert (pub.row_totals, pub.total) == ({"ZZ1": 33, "ZZ2": 56}, 89)
    assert suppress(table) == pub


def test_no_cell_is_suppressed_when_nothing_is_small_and_zeros_stay_zeros() -> None:
    pub = suppress(table_of([[0, 10], [12, 0]]))
    assert pub.suppressed == {} and pub.cells["ZZ1", "2026-01"] == 0 and pub.total == 22


def test_totals_above_local_level_are_rounded_to_the_nearest_ten_halves_up() -> None:
    pub = suppress(table_of([[15, 24], [6, 0]]), local=False)
    assert pub.row_totals == {"ZZ1": 40, "ZZ2": 10} and pub.column_totals == {"2026-01": 20, "2026-02": 20}
    assert pub.total == 50 and pub.cells["ZZ1", "2026-01"] == 15  # cells stay exact
    assert [round_total(v, 10) for v in (0, 4, 5, 14, 15, 25)] == [0, 0, 10, 10, 20, 30]


def areas(populations: dict[str, int]) -> Table:
    rows = ("ZZ1", "ZZ2", "ZZ3", "ZZ4", "ZZ5")
    counts = {(r, m): 10 * (i + 1) + j for i, r in enumerate(rows) for j, m in enumerate(("2026-01", "2026-02"))}
    return Table(measure="contacts", title="Contacts", rows_by="area", columns_by="month", rows=rows,
                 columns=("2026-01", "2026-02"), counts=counts, populations=populations)


def test_rows_below_the_minimum_population_are_folded_into_one_and_never_shown_alone() -> None:
    # ZZ4 has no population: treated as small. ZZ2 + ZZ3 + ZZ4 = 17 < 50, so the smallest named row (ZZ1) joins
    pub = suppress(areas({"ZZ1": 130, "ZZ2": 9, "ZZ3": 8, "ZZ5": 200}), min_population=50)
    assert pub.rows == ("ZZ5", OTHER_ROW)
    assert pub.cells[OTHER_ROW, "2026-01"] == 10 + 20 + 30 + 40 and pub.cells[OTHER_ROW, "2026-02"] == 11 + 21 + 31 + 41
    assert pub.total == sum(areas({}).counts.values())  # nothing is lost from the totals


def test_one_small_row_is_never_shown_alone_under_the_folded_name() -> None:
    pub = suppress(areas({"ZZ1": 130, "ZZ2": 9, "ZZ3": 300, "ZZ4": 70, "ZZ5": 200}), min_population=50)
    assert pub.rows == ("ZZ1", "ZZ3", "ZZ5", OTHER_ROW)  # ZZ2 folded with the next smallest, ZZ4
    assert pub.cells[OTHER_ROW, "2026-01"] == 20 + 40


def test_the_minimum_is_for_places_not_agencies() -> None:
    agency = Table(measure="contacts", title="Contacts", rows_by="agency", columns_by="month", rows=("police",),
                   columns=("2026-01",), counts={("police", "2026-01"): 9}, populations={"police": 9})
    assert suppress(agency, min_population=50).rows == ("police",)


def test_a_suppressed_cell_is_never_shown_as_a_number_anywhere() -> None:
    pub = suppress(table_of([[1, 2, 40], [0, 3, 50]]))
    assert all(pub.cells[c] == SUPPRESSED for c in pub.suppressed)
    assert set(pub.suppressed) >= {("ZZ1", "2026-01"), ("ZZ1", "2026-02"), ("ZZ2", "2026-02")}
