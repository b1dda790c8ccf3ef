"""A measure's table as JSON-ready data or CSV text (pure): one layout for the CLI, the page's exports and tests.

Both an exact `Table` and a disclosure-controlled `Published` one render the same way, cell by cell, so a reader
can tell them apart only by `exact` and by the "c" cells. CSV cells that a spreadsheet would run as a formula are
quoted (a row label is a code, but a code is still text from outside).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from broker.insight.table import Published, Shown, Table


def _cell(table: Table | Published, row: str, column: str) -> Shown:
    if isinstance(table, Table):
        return table.count(row, column)
    return table.cells.get((row, column), 0)


def _rate(table: Table | Published, row: str, column: str) -> Shown | None:
    if isinstance(table, Published):
        return None if table.rates is None else table.rates.get((row, column))
    if table.denominators is None:
        return None
    d = table.denominators.get((row, column), 0)
    return "x" if d == 0 else round(100 * table.count(row, column) / d, 1)


def _denominator(table: Table | Published, row: str, column: str) -> int | None:
    if isinstance(table, Table) and table.denominators is not None:
        return table.denominators.get((row, column), 0)
    return None


def table_dict(table: Table | Published) -> dict[str, Any]:
    """{measure, title, rows_by, columns_by, exact, rows: [{row, cells: {column: value}, rates?, denominators?}],
    totals?}. `exact` true for an exact table (IG only)."""
    exact = isinstance(table, Table)
    rows = []
    for row in table.rows:
        item: dict[str, Any] = {"row": row, "cells": {c: _cell(table, row, c) for c in table.columns}}
        rates = {c: _rate(table, row, c) for c in table.columns}
        if any(v is not None for v in rates.values()):
            item["rates"] = rates
        if isinstance(table, Table) and table.denominators is not None:
            item["denominators"] = {c: _denominator(table, row, c) for c in table.columns}
        if isinstance(table, Published):
            item["total"] = table.row_totals.get(row)
        rows.append(item)
    out: dict[str, Any] = {"measure": table.measure, "title": table.title, "rows_by": table.rows_by,
                           "columns_by": table.columns_by, "columns": list(table.columns), "exact": exact,
                           "rows": rows}
    if isinstance(table, Published):
        out["column_totals"] = dict(table.column_totals)
        out["total"] = table.total
    return out


def _safe(text: object) -> str:
    value = str(text)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def table_csv(table: Table | Published) -> str:
    """One line per (row, column): measure, rows_by value, column, value, rate (when a rate), denominator (exact)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["measure", table.rows_by, table.columns_by, "value", "rate_percent", "denominator"])
    for row in table.rows:
        for column in table.columns:
            rate, denominator = _rate(table, row, column), _denominator(table, row, column)
            writer.writerow([table.measure, _safe(row), _safe(column), _cell(table, row, column),
                             "" if rate is None else rate, "" if denominator is None else denominator])
    return out.getvalue()
