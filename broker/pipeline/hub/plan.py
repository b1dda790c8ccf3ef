"""The hub watch's planner: a batch of events from the events topic and a snapshot of the children's histories in,
the register writes and the hub's own events out (broker/service/hub_watch.py reads, plans, produces, writes).

Per event, in order (one child's events share a partition, so they come in the order intake published them):
- a `person.linked` folds the superseded token's history, enquiry and clocks into the child's, and the merged
  history is tested against the cumulative-concern rules (a merge can show what neither stream showed alone);
- a hub decision (the protocol's `hub.enquiries.decided_by`) closes the child's open enquiry and stops its clock;
- an agency's event joins the child's history; then the cumulative-concern rules, the enquiry it contributes to
  (opening one, with its decision clock, or joining the open one), the repeat-referral test, and an Operation
  Encompass clock for a police incident with a child present.
An event already in the history was planned before (a batch read again after a crash between producing and
writing): it is skipped, and since every derived id is fixed by its inputs, what was produced then is not repeated.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from broker.pipeline.hub.calendar import Calendar, iso, next_school_day_start, one_working_day_after, parse_instant
from broker.pipeline.hub.history import (
    Clock,
    Enquiry,
    Entry,
    by_time,
    derived_id,
    fold_enquiries,
    fold_history,
    time_order,
)
from broker.pipeline.hub.rules import CLOSED, Concerns, Referrals, Repeat, crossed, joins
from broker.policy.hub import REFERRAL, CumulativeRule, HubRules
from broker.policy.thresholds import RiskScale, assess

LINKED, ERASED = "person.linked", "person.erased"
CUMULATIVE, ENQUIRY, BREACHED = "mash.cumulative_concern", "mash.enquiry", "mash.clock_breached"
HUB_TYPES = frozenset({CUMULATIVE, ENQUIRY, BREACHED})  # the watch's own output: read back, never history
SOURCE = {"agency": "broker", "system": "mash-broker", "record_id": "hub-watch", "format": "hub-watch"}


@dataclass
class HubFacts:
    """The registers' view of the batch's children: history and open enquiry per token (tokens folded in too)."""

    history: dict[str, list[Entry]] = field(default_factory=dict)
    enquiries: dict[str, Enquiry] = field(default_factory=dict)
    clocks: dict[str, list[Clock]] = field(default_factory=dict)  # running clocks per token
    # token -> the token the identity register says the child carries now: one child's streams sit on different
    # partitions, so an event under a token already folded into another can be read after the person.linked
    current: dict[str, str] = field(default_factory=dict)


@dataclass
class HubPlan:
    entries: list[tuple[str, Entry]] = field(default_factory=list)  # (token, entry) to record
    folds: list[tuple[str, str]] = field(default_factory=list)  # (absorbed, into): move rows, in order
    enquiries: dict[str, Enquiry] = field(default_factory=dict)  # enquiry id -> its state after the batch
    started: list[Clock] = field(default_factory=list)
    stopped: list[tuple[Clock, str]] = field(default_factory=list)  # (clock, when its stop event occurred)
    events: list[dict[str, Any]] = field(default_factory=list)  # the hub's events, to publish on the events topic
    counts: list[tuple[str, str]] = field(default_factory=list)  # (metric, label) once each


def hub_event(event_type: str, linkage: Mapping[str, Any], schema_version: str, key: str, at: str,
              payload: dict[str, Any]) -> dict[str, Any]:
    """A canonical event the broker makes for the hub about the child of `linkage` (the triggering event's):
    operational fields only (ids, types, agencies, times, rule names), never a record's content; its id is fixed
    by `key`."""
    event_id = derived_id(event_type, key)
    linkage = {k: v for k, v in linkage.items() if k != "via_register"}
    return {
        "event_id": event_id, "event_type": event_type, "schema_version": schema_version,
        "occurred_at": at, "recorded_at": iso(parse_instant(at)), "source": {**SOURCE, "record_version": event_id},
        "subject": {"linkage": linkage, "child": {}, "related_people": []},
        "risk": {"level": "unknown", "categories": []},
        # the local authority's public task: Children Act 1989 s17 and s47, for which the hub assesses contacts
        "lawful_basis": {"article_6": "6(1)(e)"},
        "consent": {"status": "not_applicable"}, "data_quality": [], "payload": payload,
    }


def _linkage(linkage: Mapping[str, Any]) -> dict[str, Any]:
    return {k: linkage[k] for k in ("token", "key_version", "basis", "confidence")}


def _entry(event: Mapping[str, Any], scales: Mapping[str, RiskScale]) -> Entry:
    """The event as history: its level on the partnership's common scale (the protocol's risk_scales map a police
    DASH grading, say), so a threshold means the same to the hub watch as to the share stage."""
    return Entry(event["event_id"], event["event_type"], event["source"]["agency"], event["occurred_at"],
                 assess(scales, event).level)


class _Batch:
    def __init__(self, facts: HubFacts, rules: HubRules, calendar: Calendar) -> None:
        self.facts, self.rules, self.calendar = facts, rules, calendar
        self.plan = HubPlan()
        # token -> the event ids of its history, once it is in time order (the register's is in text order)
        self.known: dict[str, set[str]] = {}
        # token -> its concerns per cumulative rule (the rules' order), built once per batch and kept up to date as
        # events join, so that an event's test does not rebuild them from the history (a crowded child's thousands)
        self.concerns: dict[str, list[Concerns]] = {}
        self.referrals: dict[str, Referrals] = {}  # token -> its referrals and closures, likewise (once one is asked)

    def history(self, token: str) -> list[Entry]:
        """The child's history in time order, so that each new event is inserted, not the history sorted again."""
        if token not in self.known:
            self.facts.history[token] = ordered = by_time(self.facts.history.get(token, []))
            self.known[token] = {e.event_id for e in ordered}
        return self.facts.history[token]

    def planned(self, token: str, event_id: str) -> bool:
        """Whether the event is in the child's history already (planned before: a batch read again)."""
        self.history(token)
        return event_id in self.known[token]

    def set_enquiry(self, enquiry: Enquiry) -> None:
        self.plan.enquiries[enquiry.enquiry_id] = enquiry
        if enquiry.open:
            self.facts.enquiries[enquiry.token] = enquiry
        elif self.facts.enquiries.get(enquiry.token, enquiry).enquiry_id == enquiry.enquiry_id:
            self.facts.enquiries.pop(enquiry.token, None)

    def cumulative(self, trigger: Mapping[str, Any], rule: CumulativeRule, named: list[Entry] | None, at: str) -> None:
        """The hub's event when `rule` was crossed (`named`: the concerns to name), else nothing."""
        if named is not None:
            self.plan.events.append(hub_event(CUMULATIVE, trigger["subject"]["linkage"], trigger["schema_version"],
                                              f"{rule.id}:{trigger['event_id']}", at, {
                "record_kind": "cumulative concern", "rule": rule.id, "window_days": rule.window_days,
                "at_least": rule.at_least, "agencies_at_least": rule.agencies_at_least, "below": rule.below,
                "contributing": [e.ref for e in named]}))
            self.plan.counts.append(("cumulative_concern", rule.id))

    def linked(self, event: Mapping[str, Any], token: str) -> None:
        absorbed = event["payload"]["superseded_token"]
        histories = self.facts.history
        parts = [by_time(histories.get(token, [])), by_time(histories.get(absorbed, []))]
        histories[token] = fold_history(histories, absorbed, token)
        histories.pop(absorbed, None)
        for kept in (self.concerns, self.referrals):  # both children's are the merged history's now: built again
            kept.pop(token, None)
            kept.pop(absorbed, None)
        self.known[token] = {e.event_id for e in histories[token]}
        self.known.pop(absorbed, None)
        self.plan.folds.append((absorbed, token))
        # later events of the batch under the folded token are the child's, though the identity register may not
        # hold the link yet (intake writes it after Kafka's acknowledgement)
        self.facts.current.update({t: token for t, into in self.facts.current.items() if into == absorbed})
        self.facts.current[absorbed] = token
        for side in (token, absorbed):  # an enquiry whose window passed unfed is over, not merged
            stale = self.facts.enquiries.get(side)
            if stale is not None and not joins(stale, event["occurred_at"], self.rules.enquiry_window_hours):
                self.set_enquiry(replace(stale, open=False))
        merged, folded = fold_enquiries(self.facts.enquiries.get(token), self.facts.enquiries.pop(absorbed, None),
                                        token)
        if merged is not None:
            self.set_enquiry(merged)
        if folded is not None:
            self.set_enquiry(folded)
            self.plan.events.append(hub_event(ENQUIRY, event["subject"]["linkage"], event["schema_version"],
                                              f"folded:{folded.enquiry_id}", event["occurred_at"], {
                "record_kind": "MASH enquiry", "enquiry_id": merged.enquiry_id if merged else folded.enquiry_id,
                "action": "folded", "folded_enquiry_id": folded.enquiry_id}))
            self.plan.counts.append(("enquiry", "folded"))
        clocks = [replace(c, token=token) for c in self.facts.clocks.pop(absorbed, [])]
        self.facts.clocks.setdefault(token, []).extend(clocks)
        if any(p for p in parts):
            for rule in self.rules.cumulative:
                at = event["occurred_at"]
                self.cumulative(event, rule, crossed(rule, parts, histories[token], at), at)

    def decided(self, event: Mapping[str, Any], token: str) -> None:
        """A hub decision closes the enquiry it names (`payload.enquiry_id`), else the child's open enquiry when the
        decision is about one of its contributions (`payload.concerns`) or names none; and stops its clock."""
        payload = event.get("payload") or {}
        named, concerns = payload.get("enquiry_id"), set(payload.get("concerns") or ())
        enquiry = self.facts.enquiries.get(token)
        decided = {named} if named else set()
        if enquiry is not None and (named == enquiry.enquiry_id or (
                not named and (not concerns or concerns & set(enquiry.contributions)))):
            self.set_enquiry(replace(enquiry, open=False))
            decided.add(enquiry.enquiry_id)
        for clock in list(self.facts.clocks.get(token, [])):
            if clock.kind == "decision" and clock.enquiry_id in decided:
                self.plan.stopped.append((clock, event["occurred_at"]))
                self.facts.clocks[token].remove(clock)

    def contributed(self, event: Mapping[str, Any], token: str, entry: Entry) -> None:
        after = self.history(token)
        if token not in self.concerns:
            self.concerns[token] = [Concerns(rule, after) for rule in self.rules.cumulative]
        for rule, concerns in zip(self.rules.cumulative, self.concerns[token], strict=True):
            named = concerns.crossed_by(entry)  # rules.py `crossed` on the history without and with the entry
            concerns.add(entry)
            self.cumulative(event, rule, named, entry.occurred_at)
        bisect.insort(after, entry, key=time_order)  # in place: this list is the batch's own (`history`)
        if token in self.referrals:
            self.referrals[token].add(entry)
        self.known[token].add(entry.event_id)
        self.plan.entries.append((token, entry))
        linkage = event["subject"]["linkage"]
        if entry.event_type in self.rules.enquiry_types:
            if token not in self.referrals:  # from the history with the entry
                self.referrals[token] = Referrals(after)
            self.enquiry(event, token, entry, self.referrals[token].repeat(entry, self.rules.repeat_within_months))
        if entry.event_type in self.rules.encompass_types:
            self.start(Clock(derived_id("encompass", entry.event_id), "encompass", token, entry.event_id,
                             entry.event_type, entry.occurred_at,
                             iso(next_school_day_start(self.calendar, parse_instant(entry.occurred_at))),
                             linkage=_linkage(linkage)))

    def enquiry(self, event: Mapping[str, Any], token: str, entry: Entry, repeat: Repeat | None) -> None:
        current = self.facts.enquiries.get(token)
        if joins(current, entry.occurred_at, self.rules.enquiry_window_hours):
            assert current is not None  # joins() holds only for an open enquiry
            last = max((current.last_at, entry.occurred_at), key=parse_instant)
            enquiry, action = replace(current, last_at=last,
                                      contributions=(*current.contributions, entry.event_id)), "joined"
        else:
            if current is not None:  # its window passed unfed: the next contribution is a new enquiry
                self.set_enquiry(replace(current, open=False))
            enquiry = Enquiry(derived_id("enquiry", token, entry.event_id), token, entry.occurred_at,
                              entry.occurred_at, (entry.event_id,))
            action = "opened"
            if self.rules.decision_clock:  # from when the front door received it
                received = event.get("recorded_at") or entry.occurred_at
                self.start(Clock(derived_id("decision", enquiry.enquiry_id), "decision", token, entry.event_id,
                                 entry.event_type, received,
                                 iso(one_working_day_after(self.calendar, parse_instant(received))),
                                 enquiry.enquiry_id, _linkage(event["subject"]["linkage"])))
        self.set_enquiry(enquiry)
        payload: dict[str, Any] = {"record_kind": "MASH enquiry", "enquiry_id": enquiry.enquiry_id,
                                   "action": action, "contribution": entry.ref,
                                   "contributions": len(enquiry.contributions)}
        if repeat is not None:
            payload["repeat_referral"] = {"previous_referral_on": repeat.previous_referral_on,
                                          "previous_referral_closed_on": repeat.closed_on}
            self.plan.counts.append(("repeat_referral", entry.event_type))
        self.plan.events.append(hub_event(ENQUIRY, event["subject"]["linkage"], event["schema_version"],
                                          f"{enquiry.enquiry_id}:{entry.event_id}", entry.occurred_at, payload))
        self.plan.counts.append(("enquiry", action))

    def start(self, clock: Clock) -> None:
        self.plan.started.append(clock)
        self.facts.clocks.setdefault(clock.token, []).append(clock)


def reads(event_type: str, rules: HubRules) -> bool:
    """Whether the plan reads an event of this type at all: the hub's own events (read back from the events topic),
    erasure notices and the hub's other records it passes over, so the watch can leave them unopened (by the
    message's `event_type` header, before decoding or revealing anything)."""
    if event_type in HUB_TYPES or event_type == ERASED:
        return False
    return event_type == LINKED or event_type in rules.decision_types or not event_type.startswith("mash.")


# The register compares stored times as text, and a stored time's text starts with its local date (the schema's
# date_or_datetime), at most a day from its UTC date (offsets are under 24 hours). A window of whole days from an
# event at t reaches UTC dates from t's less the window to t's plus it: one day more either side holds every stored
# time the rules can reach (tests/hub/test_history_reads.py has both edges; an extra row never changes a plan).
_SPAN_MARGIN = dt.timedelta(days=1)
_DAY = dt.timedelta(days=1)
ANY_DATE = (REFERRAL, CLOSED)  # the repeat-referral rule looks back at a child's referrals and closures at any date


@dataclass(frozen=True)
class HistoryReads:
    """What of each child's history the plan of a batch can look at, so the register reads that and not a whole
    history that grows with every event: per token, the stored times (as text, [from, to)) within reach of the
    cumulative-concern windows of its events in the batch; the whole history of tokens a `person.linked` merges
    (the merged history is tested whole); and the referrals and closures at any date of a child with a referral
    in the batch."""

    spans: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    whole: frozenset[str] = frozenset()
    any_date: frozenset[str] = frozenset()  # tokens whose ANY_DATE types are read at any date

    def following(self, current: Mapping[str, str]) -> HistoryReads:
        """The same reads under the tokens the children carry now as well (`current`: token -> its child's)."""
        def under(tokens: Iterable[str]) -> frozenset[str]:
            return frozenset(t for token in tokens for t in (token, current.get(token, token)))
        spans: dict[str, list[tuple[str, str]]] = {}
        for token, ranges in self.spans.items():
            for t in {token, current.get(token, token)}:
                spans.setdefault(t, []).extend(ranges)
        return HistoryReads({t: _merged(r) for t, r in spans.items()}, under(self.whole), under(self.any_date))


def _merged(ranges: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _day_text(day: dt.date, by: dt.timedelta, beyond: str) -> str:
    """The date `by` from `day` as the text it starts stored times with; `beyond` (sorting before or after every
    stored time) where that date is outside the calendar."""
    try:
        return (day + by).isoformat()
    except OverflowError:
        return beyond


def history_reads(events: Iterable[Mapping[str, Any]], rules: HubRules) -> HistoryReads:
    """What `plan_hub` can read of the history of this batch's children (under the events' own tokens; see
    `HistoryReads.following` for the tokens they carry now). An agency's event at t is planned against the windows
    that contain t (rules.py `crossed`: window ends from t to t + window, each window as long), so against times
    within one window of t, its own among them (the 'already planned' test)."""
    reach = dt.timedelta(days=max((r.window_days for r in rules.cumulative), default=0)) + _SPAN_MARGIN
    spans: dict[str, list[tuple[str, str]]] = {}
    whole: set[str] = set()
    any_date: set[str] = set()
    for event in events:
        event_type, token = event["event_type"], event["subject"]["linkage"]["token"]
        if event_type == LINKED:
            whole.update((token, event["payload"]["superseded_token"]))
        elif reads(event_type, rules) and event_type not in rules.decision_types:
            day = parse_instant(event["occurred_at"]).astimezone(dt.UTC).date()  # its UTC date: see _SPAN_MARGIN
            # past the calendar's ends: "" sorts before every stored time and "9999-12-32" after, in any collation
            spans.setdefault(token, []).append((_day_text(day, -reach, ""), _day_text(day, reach + _DAY, "9999-12-32")))
            if event_type == REFERRAL:
                any_date.add(token)
    return HistoryReads({t: _merged(r) for t, r in spans.items()}, frozenset(whole), frozenset(any_date))


def plan_hub(events: Sequence[Mapping[str, Any]], facts: HubFacts, rules: HubRules, calendar: Calendar,
             scales: Mapping[str, RiskScale] | None = None) -> HubPlan:
    """The module docstring's plan for one batch of revealed events (`facts` is updated as the batch goes;
    `scales`: the protocol's risk_scales)."""
    batch = _Batch(facts, rules, calendar)
    for event in events:
        event_type, token = event["event_type"], event["subject"]["linkage"]["token"]
        if facts.current.get(token, token) != token and event_type != LINKED:  # read after its stream was folded
            token = facts.current[token]
            event = {**event, "subject": {**event["subject"],
                                          "linkage": {**event["subject"]["linkage"], "token": token}}}
        if not reads(event_type, rules):  # the hub's own events and other records: not an agency's history
            continue
        if event_type == LINKED:
            batch.linked(event, token)
        elif event_type in rules.decision_types:
            batch.decided(event, token)
        elif not batch.planned(token, event["event_id"]):
            batch.contributed(event, token, _entry(event, scales or {}))
    return batch.plan


@dataclass(frozen=True, slots=True)
class Settled:
    met: list[tuple[Clock, str]]  # (clock, when it was seen met)
    breached: list[Clock]


def settle(running: Sequence[Clock], reached: Mapping[str, str | None], now: str) -> Settled:
    """The running clocks at `now`. An Encompass clock is met, at its delivery time, when its incident reached a
    school DSL before the next school day started (`reached`: event id -> when it was first delivered to a
    subscriber of the clock's role, None when the delivered log holds no time for it); a delivery at or after the
    deadline, or at a time the log cannot prove, does not meet it. Every clock not met breaches once due; a decision
    clock is met only by a decision, in the batch."""
    at = parse_instant(now)
    met = []
    for c in running:
        when = reached.get(c.event_id) if c.kind == "encompass" else None
        if when is not None and parse_instant(when) < parse_instant(c.due_at):
            met.append((c, when))
    done = {c.clock_id for c, _ in met}
    return Settled(met, [c for c in running if c.clock_id not in done and parse_instant(c.due_at) < at])


def breach_event(clock: Clock, schema_version: str, now: str) -> dict[str, Any]:
    """`mash.clock_breached` for the hub, about the child the clock's event was about."""
    return hub_event(BREACHED, clock.linkage, schema_version, clock.clock_id, now, {
        "record_kind": "timeliness clock", "clock": clock.kind, "event_id": clock.event_id,
        "event_type": clock.event_type, "started_at": clock.started_at, "due_by": clock.due_at,
        **({"enquiry_id": clock.enquiry_id} if clock.enquiry_id else {})})
