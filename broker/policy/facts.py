"""What the broker's registers know about the child at decision time: the facts a rule's conditions read beyond the
event itself. The service fills them from its registers; the policy only reads them, so a decision stays a pure
function of (protocol, event, subscriber, consent, facts).

Every field's default means "not known", and an unknown fact fails the condition that reads it (a missing
determination is not "adult at risk", an empty request list is not "called upon").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """The register facts one decision reads, for the child (or adult subject) the event is about."""

    # The case register's answer: the child has an open social care contact, referral or case. None: unknown, so
    # `case_open` conditions fail either way.
    case_open: bool | None = None
    # Partner ids (protocol `partners[].id`) the local authority has called upon, under Children Act 1989 s47(9), to
    # assist its open s47 enquiry about this child. The duty to assist exists only once called upon, so an empty set
    # fails the `s47_request` condition.
    s47_requested_of: frozenset[str] = frozenset()
    # A recorded determination (Care Act 2014 s42(1) enquiry, or a safeguarding adults decision) that the adult
    # subject is an "adult at risk" in the sense of DPA 2018 Sch 1 para 18(3) / Sch 8 para 4(3): has needs for care
    # and support, is experiencing or at risk of abuse or neglect, and cannot protect themselves. None or False: no
    # such determination, so `adult_at_risk` conditions fail.
    adult_at_risk: bool | None = None
    # The child's date of birth as the identity register knows it, used only when the event carries none (a
    # health admission whose subject is a bare reference, say). None: unknown.
    birth_date: date | None = None
    # The school (DfE URN) and GP practice (ODS code) the identity register learned the child is registered with,
    # from the latest record that named them (broker/stores/identities.py): `registered_with` holds on them when the
    # event names neither (a police domestic abuse notification never names the school). None: unknown.
    school_urn: str | None = None
    gp_ods: str | None = None


NO_FACTS = CaseFacts()


def facts_of(facts: CaseFacts | None, case_open: bool | None) -> CaseFacts:
    """The facts for a decision, from the `facts=` argument or the older `case_open=` shorthand (not both)."""
    if facts is None:
        return NO_FACTS if case_open is None else CaseFacts(case_open=case_open)
    if case_open is not None and case_open is not facts.case_open:
        raise TypeError("pass case_open inside facts, or as case_open=, not both with different values")
    return facts
