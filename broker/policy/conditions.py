"""A rule's conditions against one event: each check returns None when met, else the reason in plain words.

Reasons name levels, codes and facts the decision needs, never a value that identifies the child.
Unknown facts fail (an unknown date of birth is not 'under 18').
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from broker.policy.codes import RISK_ORDER
from broker.policy.consent import ConsentState
from broker.policy.facts import NO_FACTS, CaseFacts, facts_of
from broker.policy.model import Conditions, Subscriber
from broker.policy.restricted import anyone_marked


def under_18(event: Mapping[str, Any], birth_date: date | None = None) -> bool | None:
    """Is the child under 18 (or unborn) on the event date? None when the dates are unknown. `birth_date` (the
    identity register's) is used only when the event carries no date of birth and no expected date of birth."""
    child = (event.get("subject") or {}).get("child") or {}
    dob = child.get("date_of_birth")
    if not dob and child.get("expected_date_of_birth"):
        return True
    try:
        born = date.fromisoformat(str(dob)[:10]) if dob else birth_date
        day = date.fromisoformat(str(event.get("occurred_at", ""))[:10])
    except ValueError:
        return None
    if born is None:
        return None
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day)) < 18


def age_from_register(event: Mapping[str, Any], facts: CaseFacts) -> bool:
    """Did (or would) `under_18` take the date of birth from the identity register rather than the event?"""
    child = (event.get("subject") or {}).get("child") or {}
    return facts.birth_date is not None and not child.get("date_of_birth") and not child.get("expected_date_of_birth")


def _code(org: Any, key: str) -> str | None:
    value = org.get(key) if isinstance(org, Mapping) else None
    return str(value).strip().upper() if value else None


def registered_with(event: Mapping[str, Any], kind: str, sub: Subscriber, facts: CaseFacts | None = None) -> bool:
    """The child's GP practice (ODS code) or school (URN: the child's, or the school the event is about), as the
    event names it or, when `facts` holds one, as the identity register learned it from the child's latest record
    naming it (a police notification never names the school)."""
    child = (event.get("subject") or {}).get("child") or {}
    learned = facts or NO_FACTS
    if kind == "gp_practice":
        mine = sub.organisation.get("ods_code", "").upper()
        return bool(mine) and mine in (_code(child.get("gp_practice"), "ods_code"), _upper(learned.gp_ods))
    mine = sub.organisation.get("urn", "").upper()
    payload = event.get("payload") or {}
    schools = (child.get("school"), payload.get("school"), payload.get("last_school"),
               payload.get("destination_school"))
    return bool(mine) and (any(_code(s, "urn") == mine for s in schools) or _upper(learned.school_urn) == mine)


def registration_from_register(event: Mapping[str, Any], kind: str, sub: Subscriber, facts: CaseFacts) -> bool:
    """Did `registered_with` hold only by the identity register's learned school or GP practice (for explain)?"""
    return registered_with(event, kind, sub, facts) and not registered_with(event, kind, sub)


def _upper(code: str | None) -> str | None:
    return code.strip().upper() if code else None


def partner_named(event: Mapping[str, Any], fields: frozenset[str], partner: str) -> bool:
    """Is `partner` named in one of these payload fields (a partner id, or a list of them) of a MASH hub record?"""
    payload = event.get("payload")
    if not isinstance(payload, Mapping) or not partner:
        return False
    for name in fields:
        value = payload.get(name)
        if value == partner or (isinstance(value, list) and partner in value):
            return True
    return False


def unmet(cond: Conditions, event: Mapping[str, Any], sub: Subscriber, consent: ConsentState,
          facts: CaseFacts | bool | None, source_partner: str | None = None) -> str | None:
    """The first condition the event fails, in words; None when every condition holds. `facts`: the registers'
    facts (a bare bool or None is the older `case_open` shorthand); `source_partner`: the partner that disclosed
    the event (Protocol.source_partner), None when unknown."""
    facts = facts if isinstance(facts, CaseFacts) else facts_of(None, facts)
    if cond.risk_at_least or cond.risk_at_most:
        level = str((event.get("risk") or {}).get("level", "unknown"))
        rank = RISK_ORDER.get(level, 0)
        if cond.risk_at_least and rank < RISK_ORDER[cond.risk_at_least]:
            return f"risk level {level} is below {cond.risk_at_least}"
        if cond.risk_at_most and rank > RISK_ORDER[cond.risk_at_most]:
            return f"risk level {level} is above {cond.risk_at_most}"
    if cond.risk_categories_any is not None:
        categories = set((event.get("risk") or {}).get("categories") or ())
        if not categories & cond.risk_categories_any:
            return f"no risk category among {', '.join(sorted(cond.risk_categories_any))}"
    if cond.subject_under_18:
        young = under_18(event, facts.birth_date)
        if young is None:
            return "the child's age on the event date is unknown (date of birth or event date missing)"
        if not young:
            where = " (date of birth from the identity register)" if age_from_register(event, facts) else ""
            return f"the subject is not under 18 on the event date{where}"
    if cond.registered_with and not registered_with(event, cond.registered_with, sub, facts):
        what = "GP practice" if cond.registered_with == "gp_practice" else "school"
        return f"the child is not known to be registered with the subscriber's {what}"
    if cond.referral_sources is not None:
        source = (event.get("payload") or {}).get("referral_source")
        if source not in cond.referral_sources:
            return f"the referral source is {source or 'unknown'}, not among {', '.join(sorted(cond.referral_sources))}"
    if cond.plan_kinds is not None:
        kind = (event.get("payload") or {}).get("plan_kind")
        if kind not in cond.plan_kinds:
            return f"the plan kind is {kind or 'unknown'}, not among {', '.join(sorted(cond.plan_kinds))}"
    if cond.case_open is not None and facts.case_open is not cond.case_open:
        if facts.case_open is None:
            return "the case status is unknown"
        return "the case is not open" if cond.case_open else "the case is open"
    if cond.s47_request and source_partner not in facts.s47_requested_of:
        # s47(9) binds the disclosing body only once the authority has called upon it to assist, for this enquiry
        if source_partner is None:
            return ("the disclosing partner is unknown (no partner declares the event's source system), so no s47(9) "
                    "request can be matched to it")
        return (f"the local authority has not recorded calling upon partner {source_partner} to assist its s47 "
                "enquiry (Children Act 1989 s47(9))")
    if cond.adult_at_risk and facts.adult_at_risk is not True:
        found = ("the recorded determination is that the subject is not" if facts.adult_at_risk is False
                 else "no determination is recorded that the subject is")
        return f"{found} an adult at risk (Care Act 2014 s42(1); DPA 2018 Sch 1 para 18(3))"
    if cond.partner_in is not None and not partner_named(event, cond.partner_in, sub.partner):
        return (f"the subscriber's partner {sub.partner} is not named in the record's "
                + " or ".join(f"payload.{f}" for f in sorted(cond.partner_in)))
    if cond.restricted is not None and anyone_marked(event) is not cond.restricted:
        return ("no one in the event is marked restricted" if cond.restricted
                else "someone in the event is marked restricted (a PDS restricted or redacted record)")
    if cond.consent_status is not None and consent.status not in cond.consent_status:
        return f"consent status {consent.status} is not among {', '.join(sorted(cond.consent_status))}"
    return None
