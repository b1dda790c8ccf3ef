"""Reading HL7 v2 ER7: splitting a stream into messages, field access by HL7 position, TS/DT values.

Segments and fields are parsed with the `hl7` package; a field is then re-split on the message's own separators
(python-hl7 nests a field with no components differently from one with them, so one shape is imposed here).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import hl7

from adapters.kit.interface import FieldProblem

MLLP_START, MLLP_END = b"\x0b", b"\x1c"
_SEGMENT_START = re.compile(r"(?:^|\r)(?=MSH)")
# HL7 TS/DTM: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,4}))?)?([+-]\d{4})?$")
LONDON = ZoneInfo("Europe/London")  # a TS without an offset is the sender's local time: England


def split_messages(data: bytes) -> list[str]:
    """Each message's text with CR segment ends; MLLP framing and LF/CRLF line ends tolerated."""
    text = data.replace(MLLP_START, b"").replace(MLLP_END, b"\r").decode("utf-8", errors="replace")
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    parts = _SEGMENT_START.split(text)
    return [p.strip("\r") for p in parts if p.strip("\r\t ")]


@dataclass(frozen=True)
class Message:
    """One parsed message; fields addressed as HL7 does (PID-3 is field 3 of PID, MSH-3 likewise)."""

    parsed: Any
    text: str

    @classmethod
    def parse(cls, text: str) -> Message:
        if not text.startswith("MSH") or len(text) < 8:
            raise FieldProblem("MSH", "message does not start with an MSH segment")
        try:
            parsed = hl7.parse(text)
        except Exception:  # hl7 raises bare ParseException/IndexError/ValueError on broken headers
            raise FieldProblem("MSH", "not a parseable HL7 v2 message") from None
        return cls(parsed, text)

    def segments(self, name: str) -> list[Any]:
        return [s for s in self.parsed if str(s[0]) == name]

    def segment(self, name: str) -> Any | None:
        found = self.segments(name)
        return found[0] if found else None

    def repetitions(self, segment: Any, field: int) -> list[list[list[str]]]:
        """Repetitions of a field, each a list of components, each a list of unescaped subcomponents."""
        if segment is None or field >= len(segment):
            return []
        raw = str(segment[field])
        sep = self.parsed.separators  # e.g. "\r|~^&"
        rep_sep, comp_sep, sub_sep = (sep[2], sep[3], sep[4]) if len(sep) >= 5 else ("~", "^", "&")
        if str(segment[0]) == "MSH" and field <= 2:
            return [[[raw]]]
        return [[[self.parsed.unescape(sub) for sub in comp.split(sub_sep)] for comp in rep.split(comp_sep)]
                for rep in raw.split(rep_sep)]

    def value(self, segment: Any, field: int, component: int = 1, repetition: int = 1, sub: int = 1) -> str:
        """One value, '' when absent; positions are 1-based as in HL7 (PID-5.2 = value(pid, 5, 2))."""
        reps = self.repetitions(segment, field)
        try:
            return reps[repetition - 1][component - 1][sub - 1].strip()
        except IndexError:
            return ""


def components(rep: list[list[str]], n: int) -> str:
    """Component n (1-based), first subcomponent, '' when absent."""
    return rep[n - 1][0].strip() if len(rep) >= n and rep[n - 1] else ""


def ts(value: str, field: str) -> str | None:
    """An HL7 TS as an ISO date or date-time (with offset); None when empty; FieldProblem when malformed.

    Year or year-month precision is not a date the canonical schema can hold: treated as malformed.
    """
    text = value.strip()
    if not text:
        return None
    m = _TS.match(text)
    if not m or m.group(3) is None:
        raise FieldProblem(field, "not a valid HL7 date/time (YYYYMMDD[HHMM[SS]][+/-ZZZZ])")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    try:
        date = dt.date(int(year), int(month), int(day))
        if hour is None:
            return date.isoformat()
        moment = dt.datetime(date.year, date.month, date.day, int(hour), int(minute or 0), int(second or 0),
                             int((frac or "0").ljust(6, "0")[:6]))
    except ValueError:
        raise FieldProblem(field, "not a valid HL7 date/time (out of range)") from None
    if offset:
        sign = 1 if offset[0] == "+" else -1
        try:
            tz = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        except ValueError:
            raise FieldProblem(field, "not a valid HL7 time zone offset") from None
        moment = moment.replace(tzinfo=tz)
    else:
        moment = moment.replace(tzinfo=LONDON)
    return moment.isoformat(timespec="seconds" if not frac else "microseconds")


def date_only(value: str, field: str) -> str | None:
    stamp = ts(value, field)
    return stamp[:10] if stamp else None
