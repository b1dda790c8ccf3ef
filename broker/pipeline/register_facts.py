"""The register facts of one batch of events, as data: what the share stage read from the determinations and
identity registers for the batch's children, and each event's `CaseFacts` from it (pure).

Read once per batch (broker/service/facts.py), one query per register, not per event. The case register's answer
changes inside a batch (an event may open or close the case), so it is given per event, and an s47(9) request holds
only while the case is not known to be closed: the enquiry it was made in is over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from broker.policy.facts import CaseFacts


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

    def for_event(self, token: str, case_open: bool | None) -> CaseFacts:
        found = self.determined.get(token, NOTHING)
        return CaseFacts(case_open=case_open,
                         s47_requested_of=found.s47_requested_of if case_open is not False else frozenset(),
                         adult_at_risk=found.adult_at_risk, birth_date=self.birth_dates.get(token))


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
