"""The one shape every measure is computed into and every publisher (page, CSV, JSON, gauges) reads.

A `Table` holds exact counts, as computed from the broker's records: it never leaves the IG role as it is. What is
shown to anyone else is a `Published` table, made by statistical disclosure control (`broker/insight/sdc.py`), whose
cells are a number, "c" (suppressed) or "x" (not applicable), with the totals the same rules allow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

SUPPRESSED: Final = "c"  # DfE's symbol for a value suppressed to protect confidentiality
NOT_APPLICABLE: Final = "x"

Shown = int | float | Literal["c", "x"]


@dataclass(frozen=True, slots=True)
class Table:
    """Exact counts of one measure: rows by one breakdown (agency, area, school...), columns by period or a second
    breakdown. `denominators`, when the measure is a rate, holds the same cells' denominators."""

    measure: str  # the measure's id in schemas/measures.yaml
    title: str
    rows_by: str  # the breakdown down the side: "agency", "area", "school_urn", "gp_ods", "outcome", ...
    columns_by: str  # the breakdown across: "month", "week", "quarter", or a second breakdown
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    counts: Mapping[tuple[str, str], int]  # (row, column) -> numerator count; a missing cell is 0
    denominators: Mapping[tuple[str, str], int] | None = None
    populations: Mapping[str, int] = field(default_factory=dict)  # row -> population, for hotspot minimums

    def count(self, row: str, column: str) -> int:
        return self.counts.get((row, column), 0)


@dataclass(frozen=True, slots=True)
class Published:
    """A table as it may be shown outside the IG role: every cell and total after suppression and rounding,
    with the reason for each suppressed cell ("primary": 1-5; "secondary": protects a primary one)."""

    measure: str
    title: str
    rows_by: str
    columns_by: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: Mapping[tuple[str, str], Shown]
    row_totals: Mapping[str, Shown]
    column_totals: Mapping[str, Shown]
    total: Shown
    suppressed: Mapping[tuple[str, str], Literal["primary", "secondary"]] = field(default_factory=dict)
    rates: Mapping[tuple[str, str], Shown] | None = None
