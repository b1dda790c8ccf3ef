"""What the registers held about a child at one moment, as data (pure): the recorded determinations in force then
(each s47(9) request and adult-at-risk determination keeps when it was recorded and when it ended), and which of a
decision's facts the registers can give "as decided" and which only "as of now".

The consent and case registers hold each child's current state only (no history), so for them the broker can say
what is recorded now, and says so; the determinations register keeps every record with its start and end, so its
facts are given as they stood at the decision's time. A date of birth does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from broker.pipeline.register_facts import Determined


class _Dated(Protocol):
    subject: str
    recorded_at: str
    ended_at: str | None


# Where each fact of an explanation "as decided" comes from: "as_decided" when the register keeps its history,
# "now" when only the present state is held. Said in every explanation so no one mistakes one for the other.
AS_OF = {"consent": "now", "case_open": "now", "s47_requested_of": "as_decided", "adult_at_risk": "as_decided",
         "birth_date": "as_decided"}
AS_OF_NOTE = ("consent and case status are the registers' state now (they keep no history); s47(9) requests and "
              "adult-at-risk determinations are those in force at the decision's time; the date of birth does not "
              "change")


def in_force_at(at: str) -> Callable[[_Dated], bool]:
    """True of a record in force at `at` (ISO times sort as text: the registers write UTC 'Z' times)."""
    return lambda r: r.recorded_at <= at and (r.ended_at is None or r.ended_at > at)


def determined_at(records: Iterable[_Dated], children: Mapping[str, Iterable[str]], at: str) -> dict[str, Determined]:
    """Each child token -> the determinations in force at `at` under any token it carried (`children`: child token
    -> its tokens, as register_facts.children gives). `records` are the register's S47Request / AdultAtRisk rows
    (an s47 request has `partners`, a determination `at_risk`); the newest determination in force wins."""
    owner = {t: child for child, tokens in children.items() for t in (child, *tokens)}
    live = in_force_at(at)
    s47: dict[str, set[str]] = {}
    opened: dict[str, set[str]] = {}
    risk: dict[str, tuple[str, bool]] = {}
    for r in records:
        child = owner.get(r.subject)
        if child is None or not live(r):
            continue
        partners = getattr(r, "partners", None)
        if partners is not None:
            s47.setdefault(child, set()).update(partners)
            opened.setdefault(child, set()).add(r.subject)
        elif child not in risk or risk[child][0] < r.recorded_at:
            risk[child] = (r.recorded_at, bool(getattr(r, "at_risk", False)))
    return {child: Determined(frozenset(s47.get(child, ())), risk[child][1] if child in risk else None,
                              tuple(sorted(opened.get(child, ()))))
            for child in children if child in s47 or child in risk}
