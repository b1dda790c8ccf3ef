"""The attacker's test of statistical disclosure control (issue 17): from a `Published` table alone, work out by
exact integer enumeration every value each suppressed cell can take, and require that none is pinned to one value.

The attacker knows more than a reader of the page: every number published, the rules (1..5 shown "c", totals
rounded to the nearest 10 above local level, halves up), the reason for each "c" (primary: 1..5; secondary: 6 or
more, since sdc.py never takes a zero), and that counts are whole numbers of 0 or more. The enumeration is brute
force over the suppressed cells, written here independently of sdc.py's flow network; where nothing bounds a cell
it stops at a cap, which can only make a cell look more pinned than it is (the test stricter, never laxer).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.insight import sdc
from broker.insight.sdc import suppress
from broker.insight.table import SUPPRESSED, Published, Shown, Table

Cell = tuple[str, str]


def table_of(values: Sequence[Sequence[int]], denominators: Sequence[Sequence[int]] | None = None) -> Table:
    rows = tuple(f"ZZ{i + 1}" for i in range(len(values)))  # fictitious postcode districts
    columns = tuple(f"2026-{j + 1:02d}" for j in range(len(values[0])))
    cells = {(rows[i], columns[j]): v for i, line in enumerate(values) for j, v in enumerate(line)}
    dens = None if denominators is None else {(rows[i], columns[j]): v for i, line in enumerate(denominators)
                                              for j, v in enumerate(line)}
    return Table(measure="referrals", title="Referrals", rows_by="agency", columns_by="month", rows=rows,
                 columns=columns, counts=cells, denominators=dens)


def band(shown: object, rounded: bool, cap: int) -> tuple[int, int]:
    if shown == SUPPRESSED:
        return 0, cap
    assert isinstance(shown, int)
    return (max(0, shown - 5), shown + 4) if rounded else (shown, shown)


def primary_only(table: Table, *, local: bool = True) -> Published:
    """What a publisher that stops at the 1-to-5 rule would show: the strawman the attacker must beat."""
    full = suppress(table, local=local)
    cells: dict[Cell, Shown] = {c: (SUPPRESSED if 1 <= table.count(*c) <= 5 else table.count(*c)) for c in full.cells}
    step = 1 if local else 10

    def shown(n: int) -> int:
        return n if step == 1 else (n + 5) // 10 * 10

    return Published(
        measure=full.measure, title=full.title, rows_by=full.rows_by, columns_by=full.columns_by, rows=full.rows,
        columns=full.columns, cells=cells,
        row_totals={r: shown(sum(table.count(r, c) for c in full.columns)) for r in full.rows},
        column_totals={c: shown(sum(table.count(r, c) for r in full.rows)) for c in full.columns},
        total=shown(sum(table.count(r, c) for r in full.rows for c in full.columns)),
        suppressed={c: "primary" for c, v in cells.items() if v == SUPPRESSED})


def feasible_values(pub: Published, *, rounded: bool, cap: int = 120) -> dict[Cell, set[int]]:
    """Every value each "c" takes over all whole-number tables consistent with what `pub` shows."""
    hidden = [c for c in pub.suppressed]
    assert all(pub.cells[c] == SUPPRESSED for c in hidden) and all(
        v != SUPPRESSED for c, v in pub.cells.items() if c not in pub.suppressed)
    known_row = {r: sum(int(pub.cells[r, c]) for c in pub.columns if (r, c) not in pub.suppressed) for r in pub.rows}
    known_col = {c: sum(int(pub.cells[r, c]) for r in pub.rows if (r, c) not in pub.suppressed) for c in pub.columns}
    row_band = {r: band(pub.row_totals[r], rounded, cap * len(pub.columns)) for r in pub.rows}
    col_band = {c: band(pub.column_totals[c], rounded, cap * len(pub.rows)) for c in pub.columns}
    grand = band(pub.total, rounded, cap * len(pub.cells))
    known = sum(known_row.values())
    found: dict[Cell, set[int]] = {c: set() for c in hidden}
    last_in_row = {r: max((i for i, c in enumerate(hidden) if c[0] == r), default=-1) for r in pub.rows}
    last_in_col = {c: max((i for i, h in enumerate(hidden) if h[1] == c), default=-1) for c in pub.columns}
    assignment: list[int] = []
    row_sum = dict.fromkeys(pub.rows, 0)
    col_sum = dict.fromkeys(pub.columns, 0)

    def search(i: int, total: int) -> None:
        if i == len(hidden):
            if grand[0] <= known + total <= grand[1]:
                for cell, v in zip(hidden, assignment, strict=True):
                    found[cell].add(v)
            return
        r, c = hidden[i]
        lo, hi = (1, 5) if pub.suppressed[r, c] == "primary" else (6, cap)
        for v in range(lo, hi + 1):
            rs, cs = row_sum[r] + v, col_sum[c] + v
            if known_row[r] + rs > row_band[r][1] or known_col[c] + cs > col_band[c][1]:
                break  # larger values only overshoot further
            if known + total + v > grand[1]:
                break
            if last_in_row[r] == i and known_row[r] + rs < row_band[r][0]:
                continue
            if last_in_col[c] == i and known_col[c] + cs < col_band[c][0]:
                continue
            row_sum[r], col_sum[c] = rs, cs
            assignment.append(v)
            search(i + 1, total + v)
            assignment.pop()
            row_sum[r], col_sum[c] = rs - v, cs - v

    for r in pub.rows:  # rows and columns with nothing hidden must already agree with their totals
        if last_in_row[r] < 0:
            assert row_band[r][0] <= known_row[r] <= row_band[r][1]
    search(0, 0)
    return found


def recovered(table: Table, pub: Published, *, rounded: bool) -> dict[Cell, int]:
    """The suppressed cells the attacker pins, with the value (the truth, checked)."""
    values = feasible_values(pub, rounded=rounded)
    for cell, options in values.items():
        assert table.count(*cell) in options, "the attacker's model must admit the truth"
    return {cell: next(iter(v)) for cell, v in values.items() if len(v) == 1}


CLASSIC = {
    "one suppressed cell in a row": ([[3, 10, 20], [12, 14, 30]], True),
    "two suppressed cells pinned by their row and column totals": ([[2, 3, 9], [7, 8, 9]], True),
    "a zero beside a suppressed cell": ([[4, 0, 12], [0, 0, 9], [7, 8, 6]], True),
    "a zero row and column around the only count": ([[3, 0, 0], [0, 9, 9]], True),
    "two in a line is not enough when the secondary's floor pins the primary": ([[1, 6], [7, 9]], True),
    "one cell, its totals equal to it": ([[3]], True),
    "a rounded row total with a large known part": ([[1, 13], [20, 30]], False),
    "rounded totals of a column of small counts": ([[2, 30], [3, 40], [1, 50]], False),
    "every cell small": ([[1, 2], [3, 4]], True),
}


@pytest.mark.parametrize("name", list(CLASSIC))
def test_no_classic_attack_recovers_a_cell(name: str) -> None:
    values, local = CLASSIC[name]
    table = table_of(values)
    pub = suppress(table, local=local)
    assert pub.suppressed, "every classic case has a count of 1 to 5"
    assert recovered(table, pub, rounded=not local) == {}


SAFE_EVEN_UNPROTECTED = {"every cell small", "rounded totals of a column of small counts"}


@pytest.mark.parametrize("name", [n for n in CLASSIC if n not in SAFE_EVEN_UNPROTECTED])
def test_the_attacker_recovers_the_classic_cases_from_primary_suppression_alone(name: str) -> None:
    """The attacker is not toothless: against 1-to-5 suppression without secondary cells it pins a cell."""
    values, local = CLASSIC[name]
    table = table_of(values)
    assert recovered(table, primary_only(table, local=local), rounded=not local)


counts = st.one_of(st.integers(0, 5), st.integers(0, 14), st.sampled_from([0, 1, 5, 6, 7]))


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[list[int]], bool]:
    n_rows, n_cols = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    values = [[draw(counts) for _ in range(n_cols)] for _ in range(n_rows)]
    return values, draw(st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_no_random_or_adversarial_table_gives_a_suppressed_cell_away(case: tuple[list[list[int]], bool]) -> None:
    values, local = case
    table = table_of(values)
    pub = suppress(table, local=local)
    assert recovered(table, pub, rounded=not local) == {}
    for cell, reason in pub.suppressed.items():  # and the rules the attacker was told hold
        n = table.count(*cell)
        assert (1 <= n <= 5) if reason == "primary" else n >= 6
    assert {c for c, v in pub.cells.items() if v == SUPPRESSED} == set(pub.suppressed)
    assert all(v != SUPPRESSED or c in pub.suppressed for c, v in pub.cells.items())
    assert {c for c in pub.cells if 1 <= table.count(*c) <= 5} <= set(pub.suppressed)


@settings(max_examples=60, deadline=None)
@given(tables(), st.data())
def test_a_rate_is_never_shown_beside_a_suppressed_numerator_or_a_small_denominator(
        case: tuple[list[list[int]], bool], data: st.DataObject) -> None:
    values, local = case
    dens = [[v + data.draw(st.integers(0, 12)) for v in line] for line in values]
    table = table_of(values, dens)
    pub = suppress(table, local=local)
    assert pub.rates is not None
    for cell, rate in pub.rates.items():
        den = table.denominators[cell] if table.denominators else 0
        if pub.cells[cell] == SUPPRESSED or 1 <= den <= 5:
            assert rate == SUPPRESSED  # else rate x denominator gives the count back (or the rate the denominator)
        elif den == 0:
            assert rate == "x"
        else:
            assert rate == round(100 * table.count(*cell) / den, 1)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_the_flow_check_sdc_decides_with_agrees_with_brute_force(case: tuple[list[list[int]], bool]) -> None:
    """sdc.py's claim that two max-flow checks decide exactly whether a cell is pinned, checked against the
    enumeration on tables published with primary suppression only (where pinned cells abound)."""
    values, local = case
    table = table_of(values)
    pub = primary_only(table, local=local)
    counts = {c: table.count(*c) for c in pub.cells}
    state = sdc._State(pub.rows, pub.columns, counts, dict(pub.suppressed), set(), set(), False,
                       {r: sum(counts[r, c] for c in pub.columns) for r in pub.rows},
                       {c: sum(counts[r, c] for r in pub.rows) for c in pub.columns}, sum(counts.values()),
                       1 if local else 10)
    brute = feasible_values(pub, rounded=not local)
    assert {c for c in pub.suppressed if sdc.pinned(state, c)} == {c for c, v in brute.items() if len(v) == 1}
