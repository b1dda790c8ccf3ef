"""Consent and objections for one child, and how they meet a rule's lawful basis (engine.check_rule).

Where a rule relies on consent (Art 6(1)(a)), a refusal, withdrawal or objection is honoured: the rule does not
apply. Where a rule cites a duty to disclose with Art 6(1)(c) (Children Act 1989 s47(9), Domestic Abuse Act 2021
s49A), the sharing goes ahead and the decision records the override and the duty: the Art 21 right to object does
not reach a legal obligation. Any other rule (public task under a duty to co-operate or a power: s17, s47, s10,
s11, s115, s175) does not share while a refusal, withdrawal or objection stands: under Art 21(1) it may go on only
on compelling grounds the controller shows, case by case, so the decision is withheld and marked for a recorded
human decision (Decision.human_decision), never overridden by the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.policy.codes import CONSENT_STATUSES, RESTRICTIVE_STATUSES


@dataclass(frozen=True, slots=True)
class ConsentState:
    """For one child: consent status, whether an objection (UK GDPR Art 21) is recorded, and when."""

    status: str = "unknown"  # given | refused | withdrawn | not_sought | not_applicable | unknown
    objection: bool = False
    recorded_on: str | None = None  # ISO date

    def __post_init__(self) -> None:
        if self.status not in CONSENT_STATUSES:
            raise ValueError(f"consent status must be one of {', '.join(CONSENT_STATUSES)}")

    @property
    def restriction(self) -> str | None:
        """'objection', 'withdrawn' or 'refused' when the family has said no; None otherwise."""
        if self.objection:
            return "objection"
        return self.status if self.status in RESTRICTIVE_STATUSES else None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> ConsentState:
        block = event.get("consent") or {}
        status = block.get("status", "unknown")
        return cls(status if status in CONSENT_STATUSES else "unknown", bool(block.get("objection", False)),
                   block.get("recorded_on"))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ConsentState:
        return cls(data.get("status", "unknown"), bool(data.get("objection", False)), data.get("recorded_on"))


def stricter(first: ConsentState, second: ConsentState) -> ConsentState:
    """Two records of one child's consent combined, the more restrictive winning.

    A refusal, withdrawal or objection in either counts; otherwise `first`'s status, unless it is unknown.
    """
    sources = (first, second)
    said_no = next((c for c in sources if c.status in RESTRICTIVE_STATUSES), None)
    objected = next((c for c in sources if c.objection), None)
    status = said_no.status if said_no else (first.status if first.status != "unknown" else second.status)
    dated = objected or said_no
    return ConsentState(status, objected is not None,
                        dated.recorded_on if dated else first.recorded_on or second.recorded_on)


def effective_consent(register: ConsentState | None, event: Mapping[str, Any]) -> ConsentState:
    """The broker's consent register and the event's own consent block, the more restrictive winning."""
    from_event = ConsentState.from_event(event)
    return from_event if register is None else stricter(register, from_event)
