"""The register facts of one batch of events, as data: what the share stage read from the determinations and
identity registers for the batch's children, and each event's `CaseFacts` from it (pure).

Read once per batch (broker/service/facts.py), one query per register, not per event. The case register's answer
changes inside a batch (an event may open or close the case), so it is given per event, and an s47(9) request holds
only while the case is not known to be closed: the enquiry it was made in is over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from broker.policy.facts import CaseFacts

SCHOOL, GP_PRACTICE = "school", "gp_practice"  # the registrations the identity register learns (`registered_with`)
_REGISTERED_AT = {SCHOOL: "urn", GP_PRACTICE: "ods_code"}  # subject.child.<kind>.<code>


@dataclass(frozen=True, slots=True)
class Registration:
    """A child's school or GP practice as one record named it: `as_of` is the record's date (occurred_at), so that
    the latest record wins whatever order they arrive in."""

    kind: str  # SCHOOL | GP_PRACTICE
    code: str  # URN | ODS code, upper case as `registered_with` compares them
    as_of: str


@dataclass(frozen=True, slots=True)
class Determined:
    """What the determinations register holds in force for one child (broker/stores/determinations.py)."""

    s47_requested_of: frozenset[str] = frozenset()  # partner ids called upon by an active s47(9) request
    adult_at_risk: bool | None = None  # the active determination, None when there is none
    s47_open: tuple[str, ...] = ()  # the tokens with an active request (the share stage ends them on closure)


NOTHING = Determined()


@dataclass(frozen=True, slots=True)
class BatchFacts:
    determined: Mapping[str, Determined] = field(default_factory=dict)  # child token -> what is in force
    birth_dates: Mapping[str, date] = field(default_factory=dict)  # child token -> the identity register's DOB
    # child token -> {school | gp_practice: URN | ODS code}, the latest the identity register learned
    registered: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def for_event(self, token: str, case_open: bool | None) -> CaseFacts:
        found = self.determined.get(token, NOTHING)
        return CaseFacts(case_open=case_open,
                         s47_requested_of=found.s47_requested_of if case_open is not False else frozenset(),
                         adult_at_risk=found.adult_at_risk, birth_date=self.birth_dates.get(token),
                         school_urn=(held := self.registered.get(token, {})).get(SCHOOL), gp_ods=held.get(GP_PRACTICE))


def children(tokens: Iterable[str], child_of: Mapping[str, str],
             members: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """Each event token -> every token its child has carried (itself first), from the identity register's
    `Known.child_of` and `Known.members`: what was recorded under a token since folded into the child's still
    counts, as consent and case state do after a merge."""
    out: dict[str, list[str]] = {}
    for token in tokens:
        child = child_of.get(token, token)
        out[token] = list(dict.fromkeys((token, child, *members.get(child, {}).values())))
    return out


def birth_dates(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(child token, ISO date of birth) of the events that carry one: what intake tells the identity register
    (broker/stores/identities.py), so a later event about the child without one (an SSDA903 episode row) is still
    decided on the child's age. An expected date of birth (an unborn child) is not a date of birth."""
    out: list[tuple[str, str]] = []
    for event in events:
        subject = event.get("subject") or {}
        dob = (subject.get("child") or {}).get("date_of_birth")
        token = (subject.get("linkage") or {}).get("token")
        if not (isinstance(dob, str) and isinstance(token, str)):
            continue
        try:
            out.append((token, date.fromisoformat(dob[:10]).isoformat()))
        except ValueError:
            continue
    return out


def plan_birth_dates(dates: Iterable[tuple[str, str]],
                     held: Mapping[str, str | None]) -> tuple[list[tuple[str, str]], list[str]]:
    """What the identity register learns from a request's dates of birth: (token, date) for tokens with none held,
    and the tokens whose date now disagrees (left unknown for good). `held`: token -> its date, or None when already
    in conflict; a token absent has none (or one no longer readable)."""
    seen: dict[str, str | None] = dict(held)
    learned: dict[str, str] = {}
    conflicts: list[str] = []
    for token, dob in dates:
        if token not in seen:
            seen[token] = learned[token] = dob
        elif seen[token] is not None and seen[token] != dob:
            seen[token] = None
            learned.pop(token, None)
            conflicts.append(token)
    return list(learned.items()), conflicts


def child_birth_dates(tied: Mapping[str, Iterable[str]], opened: Mapping[str, str | None]) -> dict[str, date]:
    """Each child's date of birth from what is held under any of its tokens (`opened`: token -> date, None when in
    conflict): none when two of them disagree or one is in conflict."""
    out: dict[str, date] = {}
    for child, tokens in tied.items():
        dates = {opened[t] for t in tokens if t in opened}
        if len(dates) == 1 and (only := next(iter(dates))) is not None:
            try:
                out[child] = date.fromisoformat(only)
            except ValueError:
                continue
    return out


def registrations(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, Registration]]:
    """(child token, registration) for each school URN and GP practice ODS code the events name as the child's own
    (subject.child.school, subject.child.gp_practice: not a school the record is about, such as a transfer's
    destination, which the child may never join)."""
    out: list[tuple[str, Registration]] = []
    for event in events:
        subject = event.get("subject") or {}
        child = subject.get("child") or {}
        token = (subject.get("linkage") or {}).get("token")
        as_of = event.get("occurred_at")
        if not (isinstance(token, str) and isinstance(as_of, str)):
            continue
        for kind, key in _REGISTERED_AT.items():
            org = child.get(kind)
            code = org.get(key) if isinstance(org, Mapping) else None
            if isinstance(code, str) and code.strip():
                out.append((token, Registration(kind, code.strip().upper(), as_of)))
    return out


def plan_registrations(found: Iterable[tuple[str, Registration]],
                       held: Mapping[str, Mapping[str, Registration]]) -> list[tuple[str, Registration]]:
    """What the identity register learns: per (token, kind), the registration of the latest record (by its date;
    a later one of equal date wins), when it differs from what is held. A record older than the one held teaches
    nothing: a late backfill of last year's school census does not move the child back to its old school."""
    best: dict[tuple[str, str], Registration] = {}
    for token, reg in found:
        now = best.get((token, reg.kind)) or held.get(token, {}).get(reg.kind)
        if now is None or _instant(reg.as_of) >= _instant(now.as_of):
            best[(token, reg.kind)] = reg
    return [(token, reg) for (token, _), reg in best.items() if held.get(token, {}).get(reg.kind) != reg]


def child_registrations(tied: Mapping[str, Iterable[str]],
                        opened: Mapping[str, Mapping[str, Registration]]) -> dict[str, dict[str, str]]:
    """Each child's school and GP practice codes: per kind, the latest held under any of its tokens (a merge joins
    two streams' records; the child is registered where its latest record says)."""
    out: dict[str, dict[str, str]] = {}
    for child, tokens in tied.items():
        latest: dict[str, Registration] = {}
        for token in tokens:
            for kind, reg in opened.get(token, {}).items():
                if kind not in latest or _instant(reg.as_of) > _instant(latest[kind].as_of):
                    latest[kind] = reg
        if latest:
            out[child] = {kind: reg.code for kind, reg in latest.items()}
    return out


def _instant(when: str) -> datetime:
    """A record date as a comparable instant: a date is its midnight, a time without a zone is UTC (the schema's
    dates and date-times); one that does not parse is older than any that does."""
    try:
        at = datetime.fromisoformat(when)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)
