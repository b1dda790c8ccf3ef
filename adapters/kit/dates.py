"""Date parsing per source format, raising FieldProblem with the field's name and never its value."""

from __future__ import annotations

import datetime as dt

from adapters.kit.interface import FieldProblem

FORMATS = {"iso": "%Y-%m-%d", "dmy": "%d/%m/%Y"}


def parse_date(value: str, field: str, fmt: str = "iso") -> str:
    """An ISO 8601 date string from a date in the source's format ('iso' or 'dmy' for DD/MM/YYYY)."""
    text = (value or "").strip()
    try:
        return dt.datetime.strptime(text, FORMATS[fmt]).date().isoformat()
    except ValueError:
        shape = "YYYY-MM-DD" if fmt == "iso" else "DD/MM/YYYY"
        raise FieldProblem(field, f"not a valid date ({shape})") from None


def is_future(iso_date: str, today: dt.date) -> bool:
    return dt.date.fromisoformat(iso_date[:10]) > today
