"""Statistical disclosure control: the one way an exact `Table` becomes a `Published` one (pure).

What we follow is the Department for Education's practice for children's social care statistics, under the DfE
policy statement on confidentiality (as its releases on explore-education-statistics.service.gov.uk describe it,
e.g. "Serious incident notifications": 'c' to protect confidentiality, secondary suppression also applied; a number
shown as zero was zero; local authority numbers unrounded, regional ones rounded to the nearest 10; percentages to
one decimal place), with the 1-to-5 threshold of its children in need tables: counts of 1 to 5 are shown "c";
further cells are suppressed so that a "c" cannot be worked out from the totals; totals above local level are
rounded to the nearest 10. The code is ours; the rules are theirs.

How the secondary cells are chosen. The attacker we defend against knows every number published, the rules above and
more: which "c" is primary (so lies in 1..5) and which secondary (this module takes secondary cells only among
counts of 6 or more, never a zero, so a secondary lies in 6..). A rounded total R says the truth lies in R-5..R+4.
What the attacker can then learn about a suppressed cell is exactly the set of values it takes over all integer
tables consistent with that knowledge. For a two-way table with row, column and grand totals these constraints are
those of a flow network (source -> rows -> cells -> columns -> sink, the grand total on the return arc), whose
constraint matrix is totally unimodular: so the integer feasible values of a cell form an interval, and whether the
cell can differ from its true value is decided exactly by two max-flow feasibility checks (a circulation with lower
bounds, by Edmonds-Karp; integral capacities give integral flows). A cell is protected when it can (its feasible set
is not a single value). The greedy then takes, for each cell still pinned, the smallest count (of any row or column
that holds a "c") whose suppression frees it, ties by the table's order, so the result is deterministic; when no
single count can, the smallest in the cell's own row or column and it tries again; when there is none, the cell's
row total, then its column total, then the grand total are suppressed. Suppressing more only ever widens what the
attacker must consider, so a cell once protected stays protected and the loop ends.

Linked tables (`suppress_pair`). Two breakdowns of one measure (the page's trend by agency and its area table) are
two partitions of the same events: what links them is their month totals and grand total, the same numbers in
both. Protected apart, one may hide a total the other shows, and the shown number pins cells of the first. Fixing
the shared totals first and protecting each table against them (as ranges when "c") is not enough either: a "c"
month total that one table leaves pinned (two "c" cells whose sum its row totals give away) pins a cell that is
alone in that month in the other. So the pair is protected as one system, and it is still a flow network: source
-> the first table's rows -> its cells -> the month (the shared total, an arc of its own) -> the second table's
cells -> its rows -> sink, the grand total on the return arc. Every published figure is an arc (a shown one fixed
at its value, a "c" one within what its reason says), so the same two max-flow checks decide exactly whether any
"c" of either table is pinned by everything both publish, and the same greedy chooses further cells of either
table (the smallest first), then the cell's row total, its month total, the grand total. A shared total of 1 to 5
is itself "c" (primary) and must not be pinned either; since totals are also hidden to protect cells, a "c" total
tells the attacker only that it is 1 or more (a primary one read as 1..5 would pin every cell of a table of a few
1s with zeros shown, and nothing but the zeros could then protect them). Three partitions are not a network (the
check would be an integer programme): a third breakdown of the same measure is protected on its own (the limit
the README states).

Rates: shown only when both their numerator and denominator would be shown (a rate and a published denominator
give the numerator back); a zero denominator is "x". Rows below the minimum population (areas, schools, GP
practices: hotspot breakdowns, whose `populations` are set) are never shown alone: they are added into one row,
`OTHER_ROW`, with the next smallest rows while it holds a single unit or is still below the minimum, and is then
protected like any other.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from broker.insight.table import NOT_APPLICABLE, SUPPRESSED, Published, Shown, Table

PRIMARY_MAX = 5  # DfE: counts of 1 to 5 are suppressed
SECONDARY_MIN = PRIMARY_MAX + 1  # secondary cells are taken from counts of 6 or more, never a zero
ROUND_TO = 10  # totals above local level, to the nearest 10
DEFAULT_MIN_POPULATION = 100  # children: a row smaller than this is never shown alone (configurable per call)
OTHER_ROW = "other: below minimum population"
HOTSPOT_BREAKDOWNS = frozenset({"area", "school_urn", "gp_ods"})  # rows that name a place: the minimum applies
RATE_DP = 1  # percentages to one decimal place
UNBOUNDED = 10**15  # "no upper bound" in the flow network: above any count the broker can hold

Cell = tuple[str, str]
Reason = Literal["primary", "secondary"]


def suppress(table: Table, *, local: bool = True, min_population: int = DEFAULT_MIN_POPULATION) -> Published:
    """`table` as it may be shown outside the IG role. `local`: the table is of one local authority's partnership,
    so its totals are exact (and protected by secondary suppression); otherwise totals are rounded to the nearest 10.
    """
    table = merge_small_rows(table, min_population)
    rows, columns = table.rows, table.columns
    counts = {(r, c): table.count(r, c) for r in rows for c in columns}
    row_totals = {r: sum(counts[r, c] for c in columns) for r in rows}
    column_totals = {c: sum(counts[r, c] for r in rows) for c in columns}
    total = sum(counts.values())
    step = 1 if local else ROUND_TO
    state = _State(rows, columns, counts, {cell: "primary" for cell, n in counts.items() if 1 <= n <= PRIMARY_MAX},
                   set(), set(), False, row_totals, column_totals, total, step)
    _protect(state)
    cells: dict[Cell, Shown] = {cell: SUPPRESSED if cell in state.suppressed else n for cell, n in counts.items()}
    return Published(
        measure=table.measure, title=table.title, rows_by=table.rows_by, columns_by=table.columns_by,
        rows=rows, columns=columns, cells=cells,
        row_totals={r: SUPPRESSED if r in state.hidden_rows else round_total(t, step) for r, t in row_totals.items()},
        column_totals={c: SUPPRESSED if c in state.hidden_columns else round_total(t, step)
                       for c, t in column_totals.items()},
        total=SUPPRESSED if state.hidden_total else round_total(total, step),
        suppressed=dict(sorted(state.suppressed.items(), key=lambda kv: state.order(kv[0]))),
        rates=_rates(table, cells) if table.denominators is not None else None,
    )


def merge_small_rows(table: Table, min_population: int) -> Table:
    """Rows whose population is below `min_population` added into `OTHER_ROW`. Only the hotspot breakdowns (a row
    names an area, a school or a GP practice) with populations are touched; there a row with no population is small
    (fail closed)."""
    if table.rows_by not in HOTSPOT_BREAKDOWNS or not table.populations:
        return table
    population = {r: table.populations.get(r, 0) for r in table.rows}
    small = [r for r in table.rows if population[r] < min_population]
    if not small:
        return table
    # The folded row must not be one small unit under another name (the named rows say which is missing), nor
    # several still below the minimum: fold the next smallest rows in until it is not.
    for r in sorted((r for r in table.rows if r not in small), key=lambda r: (population[r], table.rows.index(r))):
        if sum(population[s] for s in small) >= min_population and len(small) > 1:
            break
        small.append(r)
    kept = tuple(r for r in table.rows if r not in small)
    into = {r: (OTHER_ROW if r in small else r) for r in table.rows}

    def fold(cells: Mapping[Cell, int]) -> dict[Cell, int]:
        out: dict[Cell, int] = {}
        for (r, c), n in cells.items():
            if r in into:
                out[into[r], c] = out.get((into[r], c), 0) + n
        return out

    populations = {r: table.populations.get(r, 0) for r in kept}
    populations[OTHER_ROW] = sum(table.populations.get(r, 0) for r in small)
    return Table(measure=table.measure, title=table.title, rows_by=table.rows_by, columns_by=table.columns_by,
                 rows=(*kept, OTHER_ROW), columns=table.columns, counts=fold(table.counts),
                 denominators=fold(table.denominators) if table.denominators is not None else None,
                 populations=populations)


def round_total(value: int, step: int) -> int:
    """To the nearest `step`, halves up (15 -> 20): the published figure R then means a truth in R-5..R+4."""
    return value if step == 1 else ((value + step // 2) // step) * step


def total_range(shown: Shown, step: int) -> tuple[int, int]:
    """What a published total tells about the truth: itself, a rounded band, or (suppressed) nothing."""
    if not isinstance(shown, int):
        return 0, UNBOUNDED
    if step == 1:
        return shown, shown
    return max(0, shown - step // 2), shown + step // 2 - 1


def cell_range(reason: Reason) -> tuple[int, int]:
    """What a "c" tells an attacker who knows its reason and this module's rules."""
    return (1, PRIMARY_MAX) if reason == "primary" else (SECONDARY_MIN, UNBOUNDED)


def _rates(table: Table, cells: Mapping[Cell, Shown]) -> dict[Cell, Shown]:
    assert table.denominators is not None
    out: dict[Cell, Shown] = {}
    for cell, shown in cells.items():
        den = table.denominators.get(cell, 0)
        if den == 0:
            out[cell] = NOT_APPLICABLE
        elif shown == SUPPRESSED or den <= PRIMARY_MAX:
            out[cell] = SUPPRESSED
        else:
            out[cell] = round(100 * table.count(*cell) / den, RATE_DP)
    return out


@dataclass(slots=True)
class _State:
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    counts: dict[Cell, int]
    suppressed: dict[Cell, Reason]
    hidden_rows: set[str]
    hidden_columns: set[str]
    hidden_total: bool
    row_totals: dict[str, int]
    column_totals: dict[str, int]
    total: int
    step: int

    def order(self, cell: Cell) -> tuple[int, int]:
        return self.rows.index(cell[0]), self.columns.index(cell[1])

    def shown_total(self, value: int, hidden: bool) -> Shown:
        return SUPPRESSED if hidden else round_total(value, self.step)


def _protect(state: _State) -> None:
    """Secondary suppression until no suppressed cell is pinned (module docstring)."""
    work = deque(sorted(state.suppressed, key=state.order))
    while work:
        cell = work.popleft()
        if not pinned(state, cell):
            continue
        chosen = _freeing_cell(state, cell)
        if chosen is not None:
            state.suppressed[chosen] = "secondary"
            work.append(chosen)  # the new secondary must itself be safe
        elif cell[0] not in state.hidden_rows:
            state.hidden_rows.add(cell[0])
        elif cell[1] not in state.hidden_columns:
            state.hidden_columns.add(cell[1])
        else:
            state.hidden_total = True
        work.appendleft(cell)  # until it is free


def _freeing_cell(state: _State, cell: Cell) -> Cell | None:
    """The smallest count of 6 or more, in any row or column that holds a suppressed cell, whose suppression frees
    `cell`; failing one, the smallest such count in the cell's own row or column (a step towards a set that does);
    None if there is none."""
    rows = {r for r, _ in state.suppressed}
    columns = {c for _, c in state.suppressed}
    candidates = sorted((c for c, n in state.counts.items() if n >= SECONDARY_MIN and c not in state.suppressed
                         and (c[0] in rows or c[1] in columns)), key=lambda c: (state.counts[c], state.order(c)))
    for candidate in candidates:
        state.suppressed[candidate] = "secondary"
        freed = not pinned(state, cell)
        del state.suppressed[candidate]
        if freed:
            return candidate
    own = [c for c in candidates if c[0] == cell[0] or c[1] == cell[1]]
    return own[0] if own else None


def pinned(state: _State, cell: Cell) -> bool:
    """True when everything published allows the cell only its true value."""
    truth = state.counts[cell]
    lo, hi = cell_range(state.suppressed[cell])
    return not (_feasible(state, cell, lo, truth - 1) or _feasible(state, cell, truth + 1, hi))


def _feasible(state: _State, fixed: Cell, lo: int, hi: int) -> bool:
    """Is there an integer table agreeing with everything published in which `fixed` lies in lo..hi?"""
    if lo > hi:
        return False
    arcs: list[tuple[object, object, int, int]] = []
    known_rows = {r: 0 for r in state.rows}
    known_columns = {c: 0 for c in state.columns}
    for (r, c), n in state.counts.items():
        if (r, c) in state.suppressed:
            a, b = (lo, hi) if (r, c) == fixed else cell_range(state.suppressed[r, c])
            arcs.append((("row", r), ("column", c), a, b))
        else:
            known_rows[r] += n
            known_columns[c] += n
    for r in state.rows:
        a, b = total_range(state.shown_total(state.row_totals[r], r in state.hidden_rows), state.step)
        arcs.append(("source", ("row", r), max(0, a - known_rows[r]), b - known_rows[r]))
    for c in state.columns:
        a, b = total_range(state.shown_total(state.column_totals[c], c in state.hidden_columns), state.step)
        arcs.append((("column", c), "sink", max(0, a - known_columns[c]), b - known_columns[c]))
    known = sum(known_rows.values())
    a, b = total_range(state.shown_total(state.total, state.hidden_total), state.step)
    arcs.append(("sink", "source", max(0, a - known), b - known))
    return circulation_exists(arcs)


def circulation_exists(arcs: Iterable[tuple[object, object, int, int]]) -> bool:
    """Whether a circulation exists with every arc's flow within its [lower, upper] (integers): the textbook
    reduction to one max flow from a super source to a super sink that must saturate the lower bounds."""
    capacity: dict[object, dict[object, int]] = {}
    excess: dict[object, int] = {}

    def add(u: object, v: object, cap: int) -> None:
        capacity.setdefault(u, {}).setdefault(v, 0)
        capacity[u][v] += cap
        capacity.setdefault(v, {}).setdefault(u, 0)

    for u, v, lower, upper in arcs:
        if upper < lower:
            return False
        add(u, v, upper - lower)
        excess[v] = excess.get(v, 0) + lower
        excess[u] = excess.get(u, 0) - lower
    need = 0
    for node, e in excess.items():
        if e > 0:
            add("super-source", node, e)
            need += e
        elif e < 0:
            add(node, "super-sink", -e)
    return need == 0 or _max_flow(capacity, "super-source", "super-sink", need) == need


def _max_flow(capacity: dict[object, dict[object, int]], source: object, sink: object, enough: int) -> int:
    """Edmonds-Karp (shortest augmenting paths), stopping once `enough` flows; mutates `capacity` to residuals."""
    flow = 0
    while flow < enough:
        parent: dict[object, object] = {source: source}
        queue = deque([source])
        while queue and sink not in parent:
            u = queue.popleft()
            for v, cap in capacity[u].items():
                if cap > 0 and v not in parent:
                    parent[v] = u
                    queue.append(v)
        if sink not in parent:
            return flow
        path, v = [], sink
        while v != source:
            path.append((parent[v], v))
            v = parent[v]
        push = min(capacity[u][v] for u, v in path)
        for u, v in path:
            capacity[u][v] -= push
            capacity[v][u] += push
        flow += push
    return flow


Unit = tuple[str, ...]  # one published figure of a linked pair: ("cell", side, row, column), ("row", side, row),
#                         ("column", column), ("total",)


@dataclass(slots=True)
class _Pair:
    """Two tables sharing their columns' totals, as one circulation (module docstring, Linked tables)."""

    arcs: list[tuple[object, object, Unit]]
    truth: dict[Unit, int]
    hidden: dict[Unit, Reason | None]  # a cell's reason; a total's: "primary" (1 to 5) or None (to protect cells)
    order: dict[Unit, int]

    def bounds(self, unit: Unit) -> tuple[int, int]:
        """What the attacker knows of a figure. A "c" total's reason is not told apart (a total is hidden when it is
        1 to 5 and also to protect a cell), and every hidden total adds up a "c" or is one: 1 or more."""
        if unit not in self.hidden:
            return self.truth[unit], self.truth[unit]
        reason = self.hidden[unit]
        return cell_range(reason) if unit[0] == "cell" and reason is not None else (1, UNBOUNDED)

    def feasible(self, fixed: Unit, lo: int, hi: int) -> bool:
        if lo > hi:
            return False
        return circulation_exists((u, v, *((lo, hi) if unit == fixed else self.bounds(unit)))
                                  for u, v, unit in self.arcs)

    def pinned(self, unit: Unit) -> bool:
        truth = self.truth[unit]
        lo, hi = self.bounds(unit)
        return not (self.feasible(unit, lo, truth - 1) or self.feasible(unit, truth + 1, hi))

    def lines(self, unit: Unit) -> set[Unit]:
        """The totals a unit adds into (the lines a secondary cell must share with what it protects)."""
        if unit[0] == "cell":
            return {("row", unit[1], unit[2]), ("column", unit[3])}
        return {unit} if unit[0] == "column" else set()


def _protect_pair(pair: _Pair) -> bool:
    """Suppress until no "c" of either table is pinned. False when a pinned one is left with nothing near it to
    hide (every total hidden, no cell left to take): the caller then withholds both tables whole."""
    work = deque(sorted((u for u, r in pair.hidden.items() if r is not None), key=pair.order.__getitem__))
    while work:
        unit = work.popleft()
        if not pair.pinned(unit):
            continue
        held = set().union(*(pair.lines(u) for u, r in pair.hidden.items() if r is not None))
        candidates = sorted((u for u, n in pair.truth.items() if u[0] == "cell" and n >= SECONDARY_MIN
                             and u not in pair.hidden and pair.lines(u) & held),
                            key=lambda u: (pair.truth[u], pair.order[u]))
        chosen = None
        for candidate in candidates:
            pair.hidden[candidate] = "secondary"
            freed = not pair.pinned(unit)
            del pair.hidden[candidate]
            if freed:
                chosen = candidate
                break
        if chosen is None:
            chosen = next((u for u in candidates if pair.lines(u) & pair.lines(unit)), None)
        if chosen is not None:
            pair.hidden[chosen] = "secondary"
            work.append(chosen)
        else:
            # its own totals, the grand total, then (a month or grand total of 1 to 5, which the rows add up to)
            # the row totals of rows holding a "c"
            rows = sorted((u for u in held if u[0] == "row"), key=pair.order.__getitem__)
            fallback = [u for u in (*sorted(pair.lines(unit)), ("total",), *rows) if u not in pair.hidden]
            if not fallback:  # every total near it is hidden and no cell is left to take: fail closed
                return False
            pair.hidden[fallback[0]] = None
        work.appendleft(unit)
    return True


def suppress_pair(first: Table, second: Table, *, min_population: int = DEFAULT_MIN_POPULATION
                  ) -> tuple[Published, Published]:
    """Two breakdowns of one measure across the same columns (two partitions of the same events, so the same column
    totals and grand total), protected together at local level (module docstring, Linked tables). ValueError when
    they do not share their totals (then they are not two partitions of one set of events)."""
    tables = (merge_small_rows(first, min_population), merge_small_rows(second, min_population))
    columns = tables[0].columns
    sums = [{c: sum(t.count(r, c) for r in t.rows) for c in t.columns} for t in tables]
    if tables[1].columns != columns or sums[0] != sums[1]:
        raise ValueError("linked tables: the two breakdowns do not share their column totals")
    arcs: list[tuple[object, object, Unit]] = []
    truth: dict[Unit, int] = {}
    for side, t in enumerate(tables):
        for r in t.rows:
            truth["row", str(side), r] = sum(t.count(r, c) for c in columns)
            row_node, row_arc = ("row", side, r), ("row", str(side), r)
            arcs.append(("source", row_node, row_arc) if side == 0 else (row_node, "sink", row_arc))
            for c in columns:
                truth["cell", str(side), r, c] = t.count(r, c)
                cell_arc = ("cell", str(side), r, c)
                arcs.append((row_node, ("in", c), cell_arc) if side == 0 else (("out", c), row_node, cell_arc))
    for c in columns:
        truth["column", c] = sums[0][c]
        arcs.append((("in", c), ("out", c), ("column", c)))
    truth["total",] = sum(sums[0].values())
    arcs.append(("sink", "source", ("total",)))
    hidden: dict[Unit, Reason | None] = {u: "primary" for u, n in truth.items()
                                         if u[0] in ("cell", "column", "total") and 1 <= n <= PRIMARY_MAX}
    pair = _Pair(arcs, truth, hidden, {u: i for i, u in enumerate(truth)})
    withheld = not _protect_pair(pair)  # seen on the demo's data: a month whose every figure the pair pins

    def shown(unit: Unit) -> Shown:
        return SUPPRESSED if withheld or unit in pair.hidden else pair.truth[unit]

    out = []
    for side, t in enumerate(tables):
        s = str(side)
        cells = {(r, c): shown(("cell", s, r, c)) for r in t.rows for c in columns}
        suppressed: dict[Cell, Reason] = {}
        for r in t.rows:
            for c in columns:
                reason = pair.hidden.get(("cell", s, r, c))
                if reason is not None:
                    suppressed[r, c] = reason
        out.append(Published(
            measure=t.measure, title=t.title, rows_by=t.rows_by, columns_by=t.columns_by, rows=t.rows,
            columns=columns, cells=cells, row_totals={r: shown(("row", s, r)) for r in t.rows},
            column_totals={c: shown(("column", c)) for c in columns}, total=shown(("total",)),
            suppressed=suppressed, rates=_rates(t, cells) if t.denominators is not None else None))
    return out[0], out[1]


COARSER = ("quarter", "all")  # what `coarsen` derives from a published month table


def coarsen(months: Published, exact: Table, across: str) -> Published:
    """A quarter (or "all") table made from the published month table alone, so that differencing the two (a
    quarter's cell minus its shown months) tells nothing the month table did not: a cell is the sum of its months
    when every one of them is shown, else "c"; the totals are the month table's. `exact` is the same measure and rows
    across `across`, with its small rows already merged (`merge_small_rows`): read only for the denominators of a
    rate that every one of its months' rates shows too."""
    if across not in COARSER:
        raise ValueError("across: not quarter or all")

    def label(month: str) -> str:
        if across == "all":
            return "all"
        if month[:4].isdigit() and month[5:7].isdigit():
            return f"{month[:4]}-Q{(int(month[5:7]) - 1) // 3 + 1}"
        return month  # "unknown": no date, no quarter

    columns = tuple(dict.fromkeys(label(c) for c in months.columns))
    parts: dict[str, list[str]] = {}
    for c in months.columns:
        parts.setdefault(label(c), []).append(c)

    def summed(values: Iterable[Shown]) -> Shown:
        shown = list(values)
        return SUPPRESSED if any(not isinstance(v, int) for v in shown) else sum(int(v) for v in shown)

    cells = {(r, q): summed(months.cells[r, c] for c in parts[q]) for r in months.rows for q in columns}
    suppressed: dict[Cell, Reason] = {}
    for (r, q), shown in cells.items():
        if shown == SUPPRESSED:  # what the truth's size says, as cell_range reads it
            suppressed[r, q] = "primary" if 1 <= exact.count(r, q) <= PRIMARY_MAX else "secondary"
    rates: dict[Cell, Shown] | None = None
    if months.rates is not None and exact.denominators is not None:
        rates = {}
        for (r, q), shown in cells.items():
            den = exact.denominators.get((r, q), 0)
            month_rates = [months.rates.get((r, c)) for c in parts[q]]
            if den == 0:
                rates[r, q] = NOT_APPLICABLE
            elif shown == SUPPRESSED or den <= PRIMARY_MAX or SUPPRESSED in month_rates:
                rates[r, q] = SUPPRESSED
            else:
                rates[r, q] = round(100 * int(shown) / den, RATE_DP)
    return Published(measure=months.measure, title=months.title, rows_by=months.rows_by, columns_by=across,
                     rows=months.rows, columns=columns, cells=cells, row_totals=dict(months.row_totals),
                     column_totals={q: summed(months.column_totals[c] for c in parts[q]) for q in columns},
                     total=months.total, suppressed=suppressed, rates=rates)
