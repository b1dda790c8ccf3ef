"""The hub's rules over one child's history, pure: cumulative concern, enquiry membership and repeat referrals."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from broker.pipeline.hub.calendar import parse_instant
from broker.pipeline.hub.history import Enquiry, Entry
from broker.policy.hub import REFERRAL, CumulativeRule

CLOSED = "social_care.case_closed"


class _Counted:
    """A history's concerns the rule counts, by time (ties in history order). A window is two bisects, and whether
    the rule holds in it a count per agency from running totals: a window's cost does not grow with the history,
    nor with how many concerns it holds (a crowded quarter is tested at every later concern's time)."""

    def __init__(self, rule: CumulativeRule, history: Sequence[Entry]) -> None:
        counted = sorted(((parse_instant(e.occurred_at), i, e) for i, e in enumerate(history)
                          if rule.counts(e.event_type, e.level)), key=lambda t: (t[0], t[1]))
        self.rule, self.items = rule, counted
        self.times = [t[0] for t in counted]
        self.days = dt.timedelta(days=rule.window_days)
        agencies = [e.agency for _, _, e in counted]
        # agency -> how many of its concerns come before each position
        self.totals = {a: list(accumulate((b == a for b in agencies), initial=0)) for a in set(agencies)}

    def _span(self, end: dt.datetime) -> tuple[int, int]:
        return bisect.bisect_left(self.times, end - self.days), bisect.bisect_right(self.times, end)

    def holds(self, end: dt.datetime) -> bool:
        """`holds` on the window ending at `end`, without gathering it."""
        lo, hi = self._span(end)
        if hi - lo < self.rule.at_least:
            return False
        return sum(1 for running in self.totals.values() if running[hi] > running[lo]) >= self.rule.agencies_at_least

    def within(self, end: dt.datetime) -> list[Entry]:
        """The concerns in the window ending at `end` (inclusive at both ends), in history order."""
        lo, hi = self._span(end)
        return [e for _, _, e in sorted(self.items[lo:hi], key=lambda t: t[1])]

    def later(self, start: dt.datetime) -> list[Entry]:
        """The concerns after `start` within a window's length, by time."""
        lo, hi = bisect.bisect_right(self.times, start), bisect.bisect_right(self.times, start + self.days)
        return [e for _, _, e in self.items[lo:hi]]


def _when(entry: Entry) -> dt.datetime:
    return parse_instant(entry.occurred_at)


def _between(history: Sequence[Entry], since: dt.datetime, until: dt.datetime) -> Sequence[Entry]:
    """The entries of a time-ordered history from `since` to `until`, both included, in its order."""
    return history[bisect.bisect_left(history, since, key=_when):bisect.bisect_right(history, until, key=_when)]


def holds(rule: CumulativeRule, concerns: Sequence[Entry]) -> bool:
    return len(concerns) >= rule.at_least and len({e.agency for e in concerns}) >= rule.agencies_at_least


def _window_ends(counted: _Counted, at: str) -> list[str]:
    """The ends of the windows that contain `at`, one per concern that could close one: `at` itself, then each
    later concern within a window's length (an agency's record dated earlier than others, read after them)."""
    return [at, *(e.occurred_at for e in counted.later(parse_instant(at)))]


def crossed(rule: CumulativeRule, parts: Sequence[Sequence[Entry]], after: Sequence[Entry],
            at: str) -> list[Entry] | None:
    """The concerns to name when the rule holds on `after` (the history with the new event, or two merged ones) in
    a window containing `at` where it held on none of the `parts` it was made of: raised once as a child's concerns
    accumulate, not again on every later one, and again once old concerns have left the window and new ones bring
    it back. Every history in time order (history.py `by_time`): only the entries within a window of `at` are
    looked at, so the cost is the windows', not the history's."""
    near = (parse_instant(at) - dt.timedelta(days=rule.window_days),
            parse_instant(at) + dt.timedelta(days=rule.window_days))
    whole, pieces = _Counted(rule, _between(after, *near)), [_Counted(rule, _between(p, *near)) for p in parts]
    for end in _window_ends(whole, at):
        when = parse_instant(end)
        if whole.holds(when) and not any(piece.holds(when) for piece in pieces):
            return whole.within(when)
    return None


def joins(enquiry: Enquiry | None, at: str, window_hours: int) -> bool:
    """Whether a contribution at `at` joins the child's open enquiry: within the window after its latest one (or
    before it: a contribution dated earlier than the enquiry's last, received late, belongs to it too)."""
    if enquiry is None or not enquiry.open:
        return False
    return parse_instant(at) - parse_instant(enquiry.last_at) <= dt.timedelta(hours=window_hours)


@dataclass(frozen=True, slots=True)
class Repeat:
    previous_referral_on: str  # the previous referral's date
    closed_on: str  # when the case it opened closed


def _months_before(day: dt.date, months: int) -> dt.date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    for d in range(day.day, 0, -1):  # 31 March less one month is 28 or 29 February
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise ValueError("unreachable")


def repeat_referral(history: Sequence[Entry], referral: Entry, within_months: int) -> Repeat | None:
    """The DfE's measure: a referral within `within_months` of the closure of the case a previous referral opened.
    `history` holds the child's events (the referral itself may be among them)."""
    if referral.event_type != REFERRAL:
        return None
    at = parse_instant(referral.occurred_at)
    closures = [e for e in history if e.event_type == CLOSED and parse_instant(e.occurred_at) <= at]
    if not closures:
        return None
    closure = max(closures, key=lambda e: parse_instant(e.occurred_at))
    closed = parse_instant(closure.occurred_at)
    if closed.date() < _months_before(at.date(), within_months):
        return None
    earlier = [e for e in history if e.event_type == REFERRAL and e.event_id != referral.event_id
               and parse_instant(e.occurred_at) <= closed]
    if not earlier:  # a case closed with no referral the broker saw: its date is unknown, so no measure
        return None
    previous = max(earlier, key=lambda e: parse_instant(e.occurred_at))
    return Repeat(parse_instant(previous.occurred_at).date().isoformat(), closed.date().isoformat())
