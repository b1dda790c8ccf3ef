"""Working days and school days, pure: which days count and when a clock falls due.

England's bank holidays are data (deploy/calendars/england-bank-holidays.yaml, from GOV.UK's published list); a
partnership's school holidays and the times its working and school days start come from its calendar file
(MASH_CALENDAR_FILE). Times are compared in the partnership's own zone (Europe/London), so a clock started at
23:30 UTC in summer is already the next day locally.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from broker.errors import InputRejected

_SEARCH_DAYS = 400  # a calendar with no working or school day within this is a configuration error, not a loop


class CalendarError(InputRejected, ValueError):
    """A calendar file that does not say what the clocks need (names the field and the reason, never a value)."""


@dataclass(frozen=True, slots=True)
class Calendar:
    zone: ZoneInfo
    bank_holidays: frozenset[dt.date]
    school_holidays: frozenset[dt.date]  # every day schools are closed beyond weekends and bank holidays
    working_day_starts: dt.time = dt.time(9, 0)
    school_day_starts: dt.time = dt.time(8, 45)

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self.bank_holidays

    def is_school_day(self, day: dt.date) -> bool:
        return self.is_working_day(day) and day not in self.school_holidays


def _days(ranges: Iterable[Mapping[str, Any]], where: str) -> set[dt.date]:
    out: set[dt.date] = set()
    for i, span in enumerate(ranges):
        try:
            first, last = dt.date.fromisoformat(str(span["from"])), dt.date.fromisoformat(str(span["to"]))
        except (KeyError, TypeError, ValueError):
            raise CalendarError(f"{where}[{i}]: needs `from` and `to` as ISO dates (YYYY-MM-DD)") from None
        if last < first:
            raise CalendarError(f"{where}[{i}]: `to` is before `from`")
        out.update(first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    return out


def _time(value: Any, where: str, default: dt.time) -> dt.time:
    if value is None:
        return default
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        raise CalendarError(f"{where}: not a time of day (HH:MM)") from None


def build_calendar(config: Mapping[str, Any], bank_holidays: Iterable[Any]) -> Calendar:
    """A Calendar from a calendar file's mapping and the bank holiday dates (ISO strings or dates)."""
    try:
        zone = ZoneInfo(str(config.get("zone", "Europe/London")))
    except (KeyError, ValueError):
        raise CalendarError("zone: not an IANA time zone name") from None
    try:
        banks = frozenset(d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)) for d in bank_holidays)
    except ValueError:
        raise CalendarError("bank_holidays: every entry must be an ISO date (YYYY-MM-DD)") from None
    return Calendar(zone, banks, frozenset(_days(config.get("school_holidays") or [], "school_holidays")),
                    _time(config.get("working_day_starts"), "working_day_starts", dt.time(9, 0)),
                    _time(config.get("school_day_starts"), "school_day_starts", dt.time(8, 45)))


# Cached: the planner parses each history entry's time again for every event that sorts or windows the history
# (a datetime is immutable, so sharing one is safe)
@functools.lru_cache(maxsize=8192)
def parse_instant(when: str) -> dt.datetime:
    """An event time as an aware datetime: a date alone is midnight UTC; a naive time is UTC."""
    text = when.replace("Z", "+00:00")
    out = dt.datetime.fromisoformat(text) if "T" in text else dt.datetime.combine(dt.date.fromisoformat(text),
                                                                                    dt.time())
    return out if out.tzinfo else out.replace(tzinfo=dt.UTC)


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def next_school_day_start(cal: Calendar, after: dt.datetime) -> dt.datetime:
    """Operation Encompass's deadline: the start of the first school day that begins after `after` (an incident at
    02:00 on a school day is due that morning; one on a Friday evening, on Monday, or after the holidays)."""
    local = after.astimezone(cal.zone)
    day = local.date()
    for _ in range(_SEARCH_DAYS):
        start = dt.datetime.combine(day, cal.school_day_starts, cal.zone)
        if cal.is_school_day(day) and start > local:
            return start
        day += dt.timedelta(days=1)
    raise CalendarError(f"no school day within {_SEARCH_DAYS} days: check school_holidays")


def _next_working_day(cal: Calendar, day: dt.date) -> dt.date:
    for _ in range(_SEARCH_DAYS):
        day += dt.timedelta(days=1)
        if cal.is_working_day(day):
            return day
    raise CalendarError(f"no working day within {_SEARCH_DAYS} days: check bank_holidays")


def one_working_day_after(cal: Calendar, start: dt.datetime) -> dt.datetime:
    """The hub decision's deadline (Working Together 2023: the local authority decides within one working day).
    Received on a working day: the same time on the next working day (before the working day starts: from its
    start). Received on a weekend or bank holiday: from the start of the next working day."""
    local = start.astimezone(cal.zone)
    day = local.date()
    if not cal.is_working_day(day):
        day = _next_working_day(cal, day)
        begun = cal.working_day_starts
    else:
        begun = max(local.time().replace(tzinfo=None), cal.working_day_starts)
    return dt.datetime.combine(_next_working_day(cal, day), begun, cal.zone)
