"""Decide, for one event and one subscriber: default deny, first applying rule in file order wins.

A rule applies when it names the subscriber (or its role) and the event type, the source agency fits, its
conditions hold, and consent allows it (see consent.py). The field outcomes come from tables the compiler built per
event type, so a decision costs a dictionary lookup per leaf present in the event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from broker.policy import restricted
from broker.policy.codes import PARA18_REASONS, RESTRICTIVE_STATUSES, STATUTES
from broker.policy.conditions import age_from_register, registration_from_register, unmet
from broker.policy.consent import (
    CONFIDENTIALITY,
    DATA_PROTECTION,
    OBJECTION,
    SERVICE_AGREEMENT,
    ConsentRecord,
    ConsentState,
    effective_consent,
)
from broker.policy.decision import ConsentOverride, Decision, HumanDecisionNeeded, decision_id, default_deny_reason
from broker.policy.facts import CaseFacts, facts_of
from broker.policy.fields import NOT_IN_SCHEMA
from broker.policy.model import FieldOutcome, Partition, Protocol, Rule, Subscriber
from broker.policy.paths import present_paths
from broker.policy.thresholds import assessed


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One rule tried against one event: applied or not, and why."""

    rule: Rule
    applies: bool
    reason: str
    override: ConsentOverride | None = None
    referral: HumanDecisionNeeded | None = None  # would apply but for the family's wishes: a person decides
    para18_applied: bool = False  # shared under Sch 1 para 18 without consent: the decision names the 18(2) reason
    # Positions in subject.related_people whose data the delivery leaves out: that person's objection (or, under a
    # rule relying on consent or agreement, their refusal) is recorded. The child's data is not affected.
    people_withheld: tuple[int, ...] = ()
    note: str = ""  # said in the decision's reason when the rule applies


def confidential_source(rule: Rule, event: Mapping[str, Any]) -> bool:
    """Health-sourced data shared under no statutory provision: the common-law duty of confidence needs the
    person's consent, or a recorded public-interest judgement (there is no Act to rely on)."""
    return (event.get("source") or {}).get("agency") == "health" and not STATUTES.intersection(rule.lawful_basis)


def _person_withheld(rule: Rule, record: ConsentRecord, confidential: bool) -> bool:
    """Does this related person's record keep their data out of a delivery under `rule`?"""
    if not record.restrictive or rule.overriding_duty is not None:  # Art 21 does not reach a legal obligation
        return False
    if record.kind == OBJECTION:
        return True  # Art 21(1): their data stops unless a person records compelling grounds
    if record.kind == DATA_PROTECTION:
        return rule.consent_based  # a refusal of consent matters only where consent is the basis
    if record.kind == SERVICE_AGREEMENT:
        return rule.requires_service_agreement
    return confidential  # CONFIDENTIALITY


def people_withheld(rule: Rule, event: Mapping[str, Any], consent: ConsentState) -> tuple[int, ...]:
    records = consent.for_people()
    people = (event.get("subject") or {}).get("related_people") if records else None
    if not people or not isinstance(people, list):
        return ()
    confidential = confidential_source(rule, event)
    return tuple(i for i, person in enumerate(people) if isinstance(person, Mapping)
                 and any(r.covers(person) and _person_withheld(rule, r, confidential) for r in records))


def _consent_rule(rule: Rule, consent: ConsentState, confidential: bool) -> RuleCheck:
    """A rule relying on consent (Art 6(1)(a)): the child's consent must be given; a refusal, a withdrawal or an
    objection (in substance a withdrawal, Art 7(3)) is honoured, as is a refusal of confidentiality consent."""
    restriction = consent.restriction
    if restriction:
        return RuleCheck(rule, False, f"consent {restriction}: honoured, the rule relies on consent")
    if consent.status != "given":
        return RuleCheck(rule, False, f"the rule relies on consent and consent status is {consent.status}")
    if confidential and (found := consent.record(CONFIDENTIALITY)) is not None and found.restrictive:
        return RuleCheck(rule, False, f"confidentiality consent {found.state}: honoured (common-law duty of "
                                      "confidence)")
    return RuleCheck(rule, True, "consent given")


S251B = "health_and_social_care_act_2012_s251b"


def anonymous_access(event: Mapping[str, Any]) -> bool:
    """The event comes from an anonymous access provider (HSCA 2012 s251C(6)). The adapters set the mark only when
    true, so its presence is the mark: a mark set to false still counts, the safe side of a malformed record."""
    payload = event.get("payload")
    return isinstance(payload, Mapping) and "anonymous_access" in payload


REGISTER_AGE_NOTE = "under 18 by the date of birth in the identity register (the event carries none)"
REGISTER_ORG_NOTE = {kind: f"registered with the subscriber's {what} by the identity register (learned from the "
                           "child's latest record naming it; the event does not name it)"
                     for kind, what in (("school", "school"), ("gp_practice", "GP practice"))}


def check_rule(rule: Rule, event: Mapping[str, Any], sub: Subscriber, consent: ConsentState,
               facts: CaseFacts | bool | None, source_partner: str | None = None) -> RuleCheck:
    """`facts`: the registers' facts (a bare bool or None is the older `case_open` shorthand); `source_partner`:
    the partner that disclosed the event (Protocol.source_partner; None: unknown)."""
    facts = facts if isinstance(facts, CaseFacts) else facts_of(None, facts)
    check = _check_rule(rule, event, sub, consent, facts, source_partner)
    if check.applies and rule.conditions.subject_under_18 and age_from_register(event, facts):
        # The event carried no date of birth: say where the age came from, so a wrong register entry can be traced.
        check = replace(check, note="; ".join(filter(None, (check.note, REGISTER_AGE_NOTE))))
    kind = rule.conditions.registered_with
    if check.applies and kind and registration_from_register(event, kind, sub, facts):
        # likewise the school (or GP practice) the event does not name: learned from the child's latest record
        check = replace(check, note="; ".join(filter(None, (check.note, REGISTER_ORG_NOTE[kind]))))
    return check


def _check_rule(rule: Rule, event: Mapping[str, Any], sub: Subscriber, consent: ConsentState,
                facts: CaseFacts, source_partner: str | None) -> RuleCheck:
    agency = (event.get("source") or {}).get("agency")
    if rule.source_agencies is not None and agency not in rule.source_agencies:
        return RuleCheck(rule, False, f"source agency {agency} is not among {', '.join(sorted(rule.source_agencies))}")
    if S251B in rule.lawful_basis and anonymous_access(event):
        return RuleCheck(rule, False, "the record is from an anonymous access service (sexual health): the s251B duty "
                                      "to share does not reach it (Health and Social Care Act 2012 s251B(4)(b))")
    why_not = unmet(rule.conditions, event, sub, consent, facts, source_partner)
    if why_not:
        return RuleCheck(rule, False, why_not)
    if rule.requires_human_decision:  # a judgement the protocol reserves to a person, whatever the family wants
        referral = HumanDecisionNeeded(rule.id, "public_interest", None, rule.lawful_basis)
        return RuleCheck(rule, False, f"the rule reserves the decision to a person: {rule.requires_human_decision}",
                         referral=referral)
    if rule.requires_service_agreement:  # a consensual service takes on only a family that agreed to it
        agreed = consent.state(SERVICE_AGREEMENT)
        if agreed != "given":
            honoured = ": honoured" if agreed in RESTRICTIVE_STATUSES else ""
            return RuleCheck(rule, False, f"the service is consensual and the agreement to it is {agreed}{honoured}")
    confidential = confidential_source(rule, event)
    if rule.consent_based:
        check = _consent_rule(rule, consent, confidential)
        return replace(check, people_withheld=people_withheld(rule, event, consent)) if check.applies else check
    people = people_withheld(rule, event, consent)
    override = None
    if consent.objection:  # the child's Art 21 objection: a person decides, unless a duty to disclose applies
        recorded_on = consent.record(OBJECTION).recorded_on  # type: ignore[union-attr]
        if rule.overriding_duty is None:
            referral = HumanDecisionNeeded(rule.id, OBJECTION, recorded_on, rule.lawful_basis)
            return RuleCheck(rule, False, "objection recorded and the rule cites no duty to disclose: whether to "
                                          "share despite it is a recorded human decision (UK GDPR Art 21(1))",
                             referral=referral)
        override = ConsentOverride(OBJECTION, recorded_on, rule.overriding_duty)
    if confidential:
        found = consent.record(CONFIDENTIALITY)
        state = found.state if found else "unknown"
        implied = state not in RESTRICTIVE_STATUSES and sub.confidentiality == "health_professional"
        if state != "given" and not implied:
            referral = HumanDecisionNeeded(rule.id, f"confidentiality_{state}", found.recorded_on if found else None,
                                           rule.lawful_basis)
            return RuleCheck(rule, False, f"health data under no statutory provision and confidentiality consent "
                                          f"{state}: disclosure in the public interest is a recorded human decision "
                                          "(common-law duty of confidence)", referral=referral)
    if override:
        return RuleCheck(rule, True, f"objection set aside: {rule.overriding_duty} is a duty to disclose "
                                     "(Art 6(1)(c), to which Art 21 does not apply)", override, people_withheld=people)
    if rule.para18_alone and consent.status == "given":
        return RuleCheck(rule, False, "consent is given and the rule's only Schedule 1 condition is "
                                      "dpa2018_sch1_para18, which covers processing without consent (para 18(1)(c))")
    note = (f"data protection consent {consent.status} has no effect on a rule that does not rely on consent "
            "(UK GDPR Art 6(1))" if consent.status in RESTRICTIVE_STATUSES else "")
    return RuleCheck(rule, True, "; ".join(filter(None, ("all conditions met", note))), people_withheld=people,
                     para18_applied=rule.para18_reason is not None and consent.status != "given", note=note)


def _withhold(protocol: Protocol, event_id: str, event_type: str, name: str, reason: str,
              referral: HumanDecisionNeeded | None = None) -> Decision:
    return Decision(decision_id(event_id, name, protocol.id, protocol.version, "withhold"), event_id, event_type, name,
                    "withhold", None, (), None, (), (), (), protocol.id, protocol.version, reason,
                    human_decision=referral)


PARTITION_MEMO_SIZE = 512


def partition(table: Mapping[str, FieldOutcome], paths: Sequence[str]) -> Partition:
    """Present leaf paths split into released, masked (with kind) and withheld under one rule's field table."""
    released: list[str] = []
    masked: list[tuple[str, str]] = []
    withheld: list[str] = []
    for path in paths:
        outcome = table.get(path, NOT_IN_SCHEMA)
        if outcome.action == "release":
            released.append(path)
        elif outcome.action == "mask" and outcome.mask is not None:  # compile requires the kind; else withheld
            masked.append((path, outcome.mask))
        else:
            withheld.append(path)
    return tuple(released), tuple(masked), tuple(withheld)


def rule_split(rule: Rule, event_type: str, paths: Sequence[str]) -> Partition:
    """What `rule` releases, masks and withholds of these present paths: its field table, then a restricted
    record's location and contact withheld unless the rule's `restricted_records` releases them (restricted.py).
    Every delivery (the engine's, a person's decided share) splits fields here, so none skips the restriction."""
    split = partition(rule.tables[event_type], paths)
    return restricted.restrict(split, event_type, rule.restricted_release) if restricted.marked(paths) else split


def _deliver(protocol: Protocol, event_id: str, event_type: str, sub: Subscriber, check: RuleCheck,
             paths: Sequence[str]) -> Decision:
    rule = check.rule
    key = (event_type, tuple(paths))
    split = rule.partitions.get(key)
    if split is None:
        split = rule_split(rule, event_type, paths)
        if len(rule.partitions) >= PARTITION_MEMO_SIZE:
            rule.partitions.clear()
        rule.partitions[key] = split
    released, masked, withheld = split
    reason = f"delivered under rule {rule.id} for purpose {rule.purpose}"
    if check.para18_applied and rule.para18_reason:  # para 18 holds only without consent, for a reason shown
        reason += f"; without consent, {PARA18_REASONS[rule.para18_reason]}"
    if check.override:
        reason += f"; {check.override.restriction} set aside under the duty to disclose {check.override.gateway}"
    if check.note:
        reason += f"; {check.note}"
    if restricted.marked(paths):
        reason += f"; {restricted.note(rule)}"
    if check.people_withheld:  # positions only: a role (suspect, victim) would say something about the person
        reason += ("; the data of " + ", ".join(f"related_people[{i}]" for i in check.people_withheld)
                   + " withheld: that person's objection (UK GDPR Art 21) or refusal is recorded")
    return Decision(decision_id(event_id, sub.name, protocol.id, protocol.version), event_id, event_type,
                    sub.name, "deliver", rule.id, rule.lawful_basis, rule.purpose, released, masked, withheld,
                    protocol.id, protocol.version, reason, check.override, people_withheld=check.people_withheld)


def _decide(protocol: Protocol, event: Mapping[str, Any], name: str, consent: ConsentState,
            facts: CaseFacts, paths: Callable[[], Sequence[str]]) -> Decision:
    event_id = str(event.get("event_id", ""))
    event_type = str(event.get("event_type", ""))
    sub = protocol.subscribers.get(name)
    if sub is None:
        return _withhold(protocol, event_id, event_type, name,
                         f"withheld: {name} is not a subscriber of protocol {protocol.revision} (default deny)")
    rules = protocol.index.get((name, event_type), ())
    if not rules:
        return _withhold(protocol, event_id, event_type, name, default_deny_reason(event_type, name))
    misses, referral = [], None
    discloser = protocol.source_partner(event)
    for rule in rules:
        check = check_rule(rule, event, sub, consent, facts, discloser)
        if check.applies:
            return _deliver(protocol, event_id, event_type, sub, check, paths())
        misses.append(f"{rule.id}: {check.reason}")
        referral = referral or check.referral
    head = (f"withheld pending a recorded human decision under rule {referral.rule_id}; " if referral
            else "withheld: ")
    return _withhold(protocol, event_id, event_type, name, head + "no rule applied (" + "; ".join(misses) + ")",
                     referral)


def decide(protocol: Protocol, event: Mapping[str, Any], subscriber: str, *, consent: ConsentState | None = None,
           case_open: bool | None = None, facts: CaseFacts | None = None) -> Decision:
    """The decision for one subscriber. `consent` is the broker's register for this child (None: the event's own
    consent block only); `facts` are the registers' facts (facts.py; None: nothing known, so conditions reading them
    fail). `case_open=` is a shorthand for `facts=CaseFacts(case_open=...)`. The risk level decided on is the
    common scale's: the protocol's risk_scales map the agencies' own gradings (thresholds.py)."""
    event = assessed(protocol.risk_scales, event)
    return _decide(protocol, event, subscriber, effective_consent(consent, event), facts_of(facts, case_open),
                   lambda: present_paths(event))


def decide_all(protocol: Protocol, event: Mapping[str, Any], consent: ConsentState | None = None, *,
               case_open: bool | None = None, facts: CaseFacts | None = None) -> list[Decision]:
    """One decision per subscriber of the protocol, in protocol order (arguments as for `decide`)."""
    event = assessed(protocol.risk_scales, event)
    effective = effective_consent(consent, event)
    known = facts_of(facts, case_open)
    found: list[tuple[str, ...]] = []

    def paths() -> tuple[str, ...]:  # walked once, and only if some subscriber is delivered to (a tuple: the
        if not found:  # partition memo's key is then the same object for each of them)
            found.append(tuple(present_paths(event)))
        return found[0]

    return [_decide(protocol, event, name, effective, known, paths) for name in protocol.subscribers]
