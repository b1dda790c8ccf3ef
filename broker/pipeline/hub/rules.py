"""The hub's rules over one child's history, pure: cumulative concern, enquiry membership and repeat referrals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from broker.pipeline.hub.calendar import parse_instant
from broker.pipeline.hub.history import Enquiry, Entry
from broker.policy.hub import REFERRAL, CumulativeRule

CLOSED = "social_care.case_closed"


def concerns_in_window(rule: CumulativeRule, history: Sequence[Entry], at: str) -> list[Entry]:
    """The rule's low-level concerns in its window ending at `at` (inclusive at both ends), oldest first."""
    end = parse_instant(at)
    start = end - dt.timedelta(days=rule.window_days)
    return [e for e in history if rule.counts(e.event_type, e.level) and start <= parse_instant(e.occurred_at) <= end]


def holds(rule: CumulativeRule, concerns: Sequence[Entry]) -> bool:
    return len(concerns) >= rule.at_least and len({e.agency for e in concerns}) >= rule.agencies_at_least


def _window_ends(rule: CumulativeRule, history: Sequence[Entry], at: str) -> list[str]:
    """The ends of the windows that contain `at`, one per concern that could close one: `at` itself, then each
    later concern within a window's length (an agency's record dated earlier than others, read after them)."""
    start = parse_instant(at)
    later = [e for e in history if rule.counts(e.event_type, e.level)
             and start < parse_instant(e.occurred_at) <= start + dt.timedelta(days=rule.window_days)]
    return [at, *(e.occurred_at for e in sorted(later, key=lambda e: parse_instant(e.occurred_at)))]


def crossed(rule: CumulativeRule, parts: Sequence[Sequence[Entry]], after: Sequence[Entry],
            at: str) -> list[Entry] | None:
    """The concerns to name when the rule holds on `after` (the history with the new event, or two merged ones) in
    a window containing `at` where it held on none of the `parts` it was made of: raised once as a child's concerns
    accumulate, not again on every later one, and again once old concerns have left the window and new ones bring
    it back."""
    for end in _window_ends(rule, after, at):
        now = concerns_in_window(rule, after, end)
        if holds(rule, now) and not any(holds(rule, concerns_in_window(rule, part, end)) for part in parts):
            return now
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
