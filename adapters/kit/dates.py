"""Date parsing per source format, raising FieldProblem with the field's name and never its value."""

from __future__ import annotations

import datetime as dt
import re

from adapters.kit.interface import FieldProblem

FORMATS = {"iso": "%Y-%m-%d", "dmy": "%d/%m/%Y"}
# The usual shape of each format, in ASCII digits: read directly, since strptime's own regex and locale machinery
# cost several times more. Anything else (single-digit day or month, other digits, stray text) goes to strptime,
# which stays the judge of what the format accepts.
_PLAIN = {"iso": re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"),
          "dmy": re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})")}


def parse_date(value: str, field: str, fmt: str = "iso") -> str:
    """An ISO 8601 date string from a date in the source's format ('iso' or 'dmy' for DD/MM/YYYY)."""
    text = (value or "").strip()
    try:
        m = _PLAIN[fmt].fullmatch(text)
        if m is None:
            return dt.datetime.strptime(text, FORMATS[fmt]).date().isoformat()
        a, b, c = m.groups()
        day = dt.date(int(a), int(b), int(c)) if fmt == "iso" else dt.date(int(c), int(b), int(a))
        return day.isoformat()
    except ValueError:
        shape = "YYYY-MM-DD" if fmt == "iso" else "DD/MM/YYYY"
        raise FieldProblem(field, f"not a valid date ({shape})") from None


def is_future(iso_date: str, today: dt.date) -> bool:
    return dt.date.fromisoformat(iso_date[:10]) > today
