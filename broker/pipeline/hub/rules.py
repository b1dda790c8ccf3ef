"""The hub's rules over one child's history, pure: cumulative concern, enquiry membership and repeat referrals."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from broker.pipeline.hub.calendar import parse_instant
from broker.pipeline.hub.history import Enquiry, Entry, time_order
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


def _insert(entries: list[Entry], times: list[dt.datetime], entry: Entry) -> dt.datetime:
    """`entry` into time-ordered `entries` (and its time into `times`, kept beside them) where `bisect.insort` by
    history.py `time_order` puts it in the history; its time."""
    when = parse_instant(entry.occurred_at)
    at = bisect.bisect_right(entries, (when, entry.event_id), key=time_order)
    entries.insert(at, entry)
    times.insert(at, when)
    return when


class Concerns:
    """One child's concerns a rule counts, kept across a batch as its events join the history (`add`), so that
    `crossed_by`, which is `crossed` for the history and one new entry, neither rebuilds them per event nor tests
    every window end: its cost does not grow with how many concerns sit near the event (a feed replaying an
    incident under new record ids puts thousands in one window; issue 24).

    Which ends need testing: every window end (`_window_ends`: `at`, then each later concern within a window's
    length) has a window that holds the new concern, so it holds one concern more than without it, and perhaps one
    agency more. The window ending at the j-th later concern holds the j from `at` to it, so from the `at_least`-th
    on every window has enough concerns and the answer there turns on the agencies alone; an agency is in the window
    ending at e unless e falls past a window's length after its last concern at or before `at` and before its first
    one after. So past the first `at_least` later ends the answer changes only where an agency enters (its first
    concern after `at`) or leaves (the first end past its last concern before, a window's length on): the earliest
    end crossed is `at`, one of the first `at_least`, or one of those, at most two per agency, and only they are
    tested, each with bisects (tests/hub/test_crowded_child.py has a case for each)."""

    def __init__(self, rule: CumulativeRule, history: Sequence[Entry]) -> None:
        """`history` in time order (history.py `by_time`); each entry's time is parsed once here, not per event."""
        self.rule, self.days = rule, dt.timedelta(days=rule.window_days)
        self.entries = [e for e in history if rule.counts(e.event_type, e.level)]  # in the history's order
        self.times = [parse_instant(e.occurred_at) for e in self.entries]
        self.agencies: dict[str, list[dt.datetime]] = {}  # agency -> its concerns' times, in order
        for e, when in zip(self.entries, self.times, strict=True):
            self.agencies.setdefault(e.agency, []).append(when)

    def add(self, entry: Entry) -> None:
        """The entry joins the history (where `bisect.insort` by history.py `time_order` puts it in the history)."""
        if not self.rule.counts(entry.event_type, entry.level):
            return
        when = _insert(self.entries, self.times, entry)
        bisect.insort_right(self.agencies.setdefault(entry.agency, []), when)

    def _present(self, start: dt.datetime, end: dt.datetime) -> set[str]:
        out = set()
        for agency, times in self.agencies.items():
            i = bisect.bisect_left(times, start)
            if i < len(times) and times[i] <= end:
                out.add(agency)
        return out

    def crossed_by(self, entry: Entry) -> list[Entry] | None:
        """`crossed(rule, [history], history with entry, entry.occurred_at)`, the entry not yet added."""
        rule, days = self.rule, self.days
        at = parse_instant(entry.occurred_at)
        _, last = at - days, at + days  # both, as `crossed` computes them: a time past the calendar's ends raises
        if not rule.counts(entry.event_type, entry.level):
            return None  # every window holds what it held without it
        times = self.times
        first, beyond = bisect.bisect_right(times, at), bisect.bisect_right(times, last)  # later ends: [first, beyond)
        ends = {at, *times[first:min(beyond, first + max(rule.at_least, 1))]}
        for agency_times in self.agencies.values():
            i = bisect.bisect_right(agency_times, at)
            if i < len(agency_times) and agency_times[i] <= last:  # the agency enters: its first concern after `at`
                ends.add(agency_times[i])
            if i > 0:  # it leaves: the first end past a window's length after its last concern at or before `at`
                j = bisect.bisect_right(times, agency_times[i - 1] + days, first, beyond)
                if j < beyond:
                    ends.add(times[j])
        for end in sorted(ends):
            start = end - days
            lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
            count, present = hi - lo, self._present(start, end)
            held = count >= rule.at_least and len(present) >= rule.agencies_at_least
            if not held and count + 1 >= rule.at_least and len(present | {entry.agency}) >= rule.agencies_at_least:
                within = self.entries[lo:hi]
                bisect.insort_right(within, entry, key=time_order)
                return within
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


class Referrals:
    """A child's referrals and case closures in the history's order, kept across a batch as its events join it
    (`add`), so that `repeat` finds a previous referral and closure with bisects, not a scan of the history (a
    crowded child's thousands of other events)."""

    def __init__(self, history: Sequence[Entry]) -> None:
        """`history` in time order (history.py `by_time`)."""
        self.kinds: dict[str, tuple[list[Entry], list[dt.datetime]]] = {REFERRAL: ([], []), CLOSED: ([], [])}
        for entry in history:
            kept = self.kinds.get(entry.event_type)
            if kept is not None:
                kept[0].append(entry)
                kept[1].append(parse_instant(entry.occurred_at))

    def add(self, entry: Entry) -> None:
        """The entry joins the history (where `bisect.insort` by history.py `time_order` puts it in the history)."""
        kept = self.kinds.get(entry.event_type)
        if kept is None:
            return
        _insert(*kept, entry)

    def _latest(self, kind: str, until: dt.datetime, but: str | None = None) -> Entry | None:
        """The latest of `kind` at or before `until` other than the event `but`; of several at that instant, the
        first in the history's order (they may be written in different offsets, so on different dates)."""
        entries, times = self.kinds[kind]
        hi = bisect.bisect_right(times, until)
        while hi > 0:
            lo = bisect.bisect_left(times, times[hi - 1], 0, hi)
            for i in range(lo, hi):
                if entries[i].event_id != but:
                    return entries[i]
            hi = lo
        return None

    def repeat(self, referral: Entry, within_months: int) -> Repeat | None:
        """The DfE's measure: a referral within `within_months` of the closure of the case a previous referral
        opened (`referral` already added)."""
        if referral.event_type != REFERRAL:
            return None
        at = parse_instant(referral.occurred_at)
        closure = self._latest(CLOSED, at)
        if closure is None:
            return None
        closed = parse_instant(closure.occurred_at)
        if closed.date() < _months_before(at.date(), within_months):
            return None
        previous = self._latest(REFERRAL, closed, but=referral.event_id)
        if previous is None:  # a case closed with no referral the broker saw: its date is unknown, so no measure
            return None
        return Repeat(parse_instant(previous.occurred_at).date().isoformat(), closed.date().isoformat())
