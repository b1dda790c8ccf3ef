"""Brute force against the proof checker (broker/policy/prove.py): random protocols and invariants, concrete events
biased towards each rule's and each invariant's own values, and the cross-check that judges the checker by them.

Random events rarely meet every condition of a random rule at once, so a checker that forgot a whole fact (the risk
level, say) passed an unbiased cross-check. Here each event is aimed at one rule or invariant: every condition's
value is drawn from that rule's own literals and their neighbours (a threshold's level, the level either side of it),
plus the domain's edges (unknown, absent, malformed, the 18th birthday on the event date, a lower-case ODS code),
so the conditions are met together, and missed by one value, often. The cross-check's judge of an invariant is
written here from the language's definition (broker/policy/README.md, Invariants), not taken from invariants.py,
so a checker that misjudges an invariant is caught too. Deterministic: everything is drawn from a seeded Random.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from broker.policy import domains
from broker.policy import prove as prove_module
from broker.policy.codes import CONSENT_STATUSES, RISK_ORDER, STATUTES
from broker.policy.compile import _index, conditions_of
from broker.policy.conditions import unmet
from broker.policy.consent import KINDS, effective_consent, states_of
from broker.policy.decision import Decision
from broker.policy.domains import with_leaf
from broker.policy.engine import decide
from broker.policy.facts import CaseFacts
from broker.policy.fields import field_table
from broker.policy.invariants import Invariant, expand_basis
from broker.policy.lawful import overriding_duty, relies_on_para18_alone
from broker.policy.model import FieldRule, Partner, Protocol, Rule, Subscriber
from broker.schema.classification import field_classes
from broker.schema.loader import load_schema

TYPES = ("health.urgent_care_attendance", "social_care.referral", "health.child_protection_plan_notice",
         "police.domestic_abuse_notification", "education.attendance_concern", "mash.decision", "mash.action")
PARTNERS = {"la": Partner("la", "Test LA", "social_care", "safeguarding_partner"),
            "trust": Partner("trust", "Test Trust", "health", "relevant_agency", frozenset({"RXX"})),
            "school": Partner("school", "Test School", "education", "relevant_agency")}
SUBSCRIBERS = {
    "hub": Subscriber("hub", "la", "hub_role", ("p",), "x25519", "kafka", agency="social_care",
                      confidentiality="social_work_professional"),
    "gp": Subscriber("gp", "trust", "gp_role", ("p",), "x25519", "kafka", organisation={"ods_code": "Y99901"},
                     agency="health", confidentiality="health_professional"),
    "dsl": Subscriber("dsl", "school", "school_role", ("p",), "x25519", "kafka", organisation={"urn": "999001"},
                      agency="education"),
}
BASES = (("uk_gdpr_art6_1_a", "uk_gdpr_art9_2_a"), ("uk_gdpr_art6_1_e", "children_act_2004_s11"),
         ("uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g"), ("uk_gdpr_art6_1_c", "children_act_1989_s47_9"),
         ("uk_gdpr_art6_1_e", "health_and_social_care_act_2012_s251b"),
         ("uk_gdpr_art6_1_e", "dpa2018_sch1_para18", "children_act_1989_s17"), ("dpa2018_s31",))
CLASSES = ("identity", "health", "location", "contact", "criminal", "narrative", "sensitive_operational",
           "social_care", "education", "demographic")
AGENCIES = tuple(load_schema()["properties"]["source"]["properties"]["agency"]["enum"])
CATEGORIES = ("domestic_abuse", "neglect", "cse")
LEVELS = tuple(sorted(RISK_ORDER, key=RISK_ORDER.__getitem__))
PARTNER_FIELDS = {"mash.decision": ("contributing_partners", "referring_partners"),
                  "mash.action": ("assigned_partner",)}
REFERRAL_SOURCES = ("6", "1", "2")
PLAN_KINDS = ("unborn_child_protection_plan", "child_protection_plan")
EVENT_DATE = "2026-05-01T09:00:00Z"
# Dates of birth at the edges of "under 18 on 2026-05-01": 18 that very day (not under 18), 18 the day after (under).
BIRTHS = ("2016-05-14", "2008-05-01", "2008-05-02", "1990-02-03", "not a date")


# --- random protocols ---------------------------------------------------------------------------------------------


def _some(rng: random.Random, values: Sequence[Any], most: int = 3) -> list[Any]:
    return rng.sample(list(values), rng.randint(1, min(most, len(values))))


def random_conditions(rng: random.Random, event_types: Iterable[str], *, p: float = 0.3) -> dict[str, Any]:
    """Each condition of the language with probability p (the partner fields only where the types carry them)."""
    out: dict[str, Any] = {}
    if rng.random() < p:
        out["risk_at_least"] = rng.choice(LEVELS[1:])
    if rng.random() < p:
        out["risk_at_most"] = rng.choice(LEVELS[:-1])
    if rng.random() < p:
        out["risk_categories_any"] = _some(rng, CATEGORIES, 2)
    if rng.random() < p:
        out["subject_under_18"] = True
    if rng.random() < p:
        out["consent_status"] = _some(rng, CONSENT_STATUSES)
    for key in ("case_open", "restricted"):
        if rng.random() < p:
            out[key] = rng.random() < 0.5
    if rng.random() < p:
        out["registered_with"] = rng.choice(("gp_practice", "school"))
    if rng.random() < p:
        out["referral_sources"] = _some(rng, REFERRAL_SOURCES[:2], 1)
    if rng.random() < p:
        out["plan_kinds"] = _some(rng, PLAN_KINDS, 1)
    for key in ("s47_request", "adult_at_risk"):
        if rng.random() < p:
            out[key] = True
    fields = sorted({f for t in event_types for f in PARTNER_FIELDS.get(t, ())})
    if fields and rng.random() < 2 * p:
        out["partner_in"] = _some(rng, fields, 2)
    return out


def random_rule(rng: random.Random, i: int) -> Rule:
    types = frozenset(_some(rng, TYPES, 2))
    basis = rng.choice(BASES)
    fields = []
    for j, label in enumerate(rng.sample(CLASSES, rng.randint(1, 5))):
        action = rng.choice(("release", "release", "withhold", "mask"))
        fields.append(FieldRule(f"rules[{i}].fields[{j}]", frozenset({label}), (), action,
                                "redact" if action == "mask" else None))
    leaves = sorted({leaf for t in types for leaf in field_classes(t)})
    if rng.random() < 0.5:
        fields.append(FieldRule(f"rules[{i}].fields[p]", frozenset(), (rng.choice(leaves),),
                                rng.choice(("release", "withhold", "mask")), None))
        if fields[-1].action == "mask":
            fields[-1] = FieldRule(fields[-1].where, frozenset(), fields[-1].paths, "mask", "redact")
    return Rule(
        id=f"rule-{i}", where=f"rules[{i}]", description="random",
        subscribers=tuple(_some(rng, ("hub", "gp", "dsl", "hub_role", "gp_role", "school_role"), 2)),
        event_type_patterns=tuple(sorted(types)), event_types=types,
        source_agencies=frozenset(_some(rng, AGENCIES)) if rng.random() < 0.4 else None, purpose="p",
        lawful_basis=basis, conditions=conditions_of(random_conditions(rng, types)), field_rules=tuple(fields),
        consent_based="uk_gdpr_art6_1_a" in basis, overriding_duty=overriding_duty(basis),
        requires_human_decision="a person decides each of these" if rng.random() < 0.15 else None,
        requires_service_agreement=rng.random() < 0.2,
        restricted_release=frozenset(rng.sample(("location", "contact"), rng.randint(0, 2))),
        para18_alone=relies_on_para18_alone(basis), tables={t: field_table(t, fields) for t in sorted(types)})


def random_invariant(rng: random.Random, i: int, rules: Sequence[Rule] = ()) -> Invariant:
    """About the classes the rules name half the time (a masked class most of all), so an invariant is often met."""
    types = frozenset(_some(rng, TYPES, 3)) if rng.random() < 0.6 else frozenset(TYPES)
    shares = rng.choice((None, "classes", "classes", "paths"))
    named = sorted({c for r in rules for f in r.field_rules for c in f.classifications
                    if f.action != "withhold" and (f.action == "mask" or rng.random() < 0.5)})
    classes = _some(rng, named, 2) if named and rng.random() < 0.5 else _some(rng, CLASSES, 2)
    require = rng.choice((None, ["statute"], ["uk_gdpr_article_9"], ["duty_to_disclose"], ["uk_gdpr_art6_1_a"]))
    when = random_conditions(rng, types, p=0.15) if rng.random() < 0.5 else {}
    when.pop("registered_with", None)  # a registration names the subscriber's own code: asked per subscriber
    when.pop("partner_in", None)  # likewise the subscriber's own partner
    leaves = sorted({leaf for t in types for leaf in field_classes(t)})
    paths = rng.choice((("subject.child",), ("subject.child.date_of_birth",), ("risk",), (rng.choice(leaves),)))
    return Invariant(
        id=f"inv-{i}", where=f"invariants[{i}]", description="random",
        subscribers=tuple(_some(rng, ("hub", "gp_role", "dsl"), 2)) if rng.random() < 0.5 else None,
        event_types=types, source_agencies=frozenset(_some(rng, AGENCIES)) if rng.random() < 0.25 else None,
        when=conditions_of(when), objection=rng.choice((None, None, True, False)),
        classifications=frozenset(classes) if shares == "classes" else None,
        paths=paths if shares == "paths" else None, include_masked=rng.random() < 0.5,
        require_basis=expand_basis(require) if require else None, require_names=tuple(require or ()))


def random_protocol(rng: random.Random, rules: int | None = None) -> Protocol:
    found = tuple(random_rule(rng, i) for i in range(rules or rng.randint(1, 3)))
    invs = tuple(random_invariant(rng, i, found) for i in range(rng.randint(2, 4)))
    return Protocol(id="random", version="1.0.0", title="random", effective_from="2026-01-01", purposes={"p": "p"},
                    partners=PARTNERS, subscribers=SUBSCRIBERS, rules=found, tests=(), origin="<random>",
                    index=_index(SUBSCRIBERS, found), partner_by_system={("health", "RXX"): "trust"},
                    invariants=invs)


# --- concrete events, biased towards one rule's or invariant's values ----------------------------------------------


def _near(rng: random.Random, level: str) -> str:
    """A threshold's own level, or the level either side of it."""
    rank = RISK_ORDER[level] + rng.choice((-1, 0, 0, 1))
    return LEVELS[max(0, min(rank, len(LEVELS) - 1))]


def _level(rng: random.Random, c: Any) -> str | None:
    aims = [x for x in (c.risk_at_least, c.risk_at_most) if x]
    if aims and rng.random() < 0.85:
        return _near(rng, rng.choice(aims))
    return rng.choice((None, *LEVELS, "bogus"))  # the edges: absent, unknown, critical, a code the order lacks


def _pick(rng: random.Random, named: Iterable[str] | None, others: Sequence[Any], aim: float = 0.75) -> Any:
    named = sorted(named or ())
    return rng.choice(named) if named and rng.random() < aim else rng.choice(others)


def biased_event(rng: random.Random, protocol: Protocol, target: Rule | Invariant
                 ) -> tuple[dict[str, Any], CaseFacts]:
    """One concrete event and register facts aimed at `target`: its type, agency and every condition's literals
    (or a neighbour, or an edge), with consent records, marks, partners and stray leaves around them."""
    c = target.conditions if isinstance(target, Rule) else target.when
    agencies = target.source_agencies
    event_type = rng.choice(sorted(target.event_types))
    event: dict[str, Any] = {"event_id": "test-event", "event_type": event_type}
    source: dict[str, Any] = {"agency": _pick(rng, agencies, AGENCIES, 0.8)}
    if isinstance(target, Rule) and not STATUTES.intersection(target.lawful_basis) and rng.random() < 0.4:
        source["agency"] = "health"  # health data under no statute: the duty of confidence and its records
    if c.s47_request and rng.random() < 0.8:
        source.update(agency="health", system=rng.choice(("RXX", "RXX", "rxx ")))
    elif (system := rng.choice((None, None, "RXX", "OTHER"))) is not None:
        source["system"] = system
    event["source"] = source
    event["occurred_at"] = EVENT_DATE if rng.random() < 0.9 else rng.choice(("2026-05-01", "bad"))
    child: dict[str, Any] = {}
    if c.subject_under_18 and rng.random() < 0.9:
        if rng.random() < 0.15:
            child["expected_date_of_birth"] = "2026-09-01"
        else:
            child["date_of_birth"] = rng.choice(BIRTHS)
    elif rng.random() < 0.5:
        child["date_of_birth"] = rng.choice(BIRTHS)
    if c.registered_with == "gp_practice" or rng.random() < 0.3:
        child["gp_practice"] = {"ods_code": rng.choice(("Y99901", "Y99901", "y99901 ", "Y00000"))}
    school = rng.choice(("999001", "999001", "999999"))
    if c.registered_with == "school" or rng.random() < 0.3:
        where = rng.choice(("child", "school", "last_school", "destination_school"))
        if where == "child":
            child["school"] = {"urn": school}
        else:
            event.setdefault("payload", {})[where] = {"urn": school}
    if c.restricted is not None and rng.random() < 0.8:
        if rng.random() < 0.5 or not c.restricted:
            child["restricted"] = rng.random() < 0.7  # present at all, the mark counts
    elif rng.random() < 0.15:
        child["restricted"] = True
    related = []
    if rng.random() < 0.5:
        person: dict[str, Any] = {"given_names": ["Testparent"], "phones": ["07700900002"]}
        if rng.random() < (0.4 if c.restricted else 0.1):
            person["restricted"] = True
        related.append({"role": rng.choice(("parent", "suspect")), "person": person})
    event["subject"] = {"child": child, "related_people": related}
    risk: dict[str, Any] = {}
    if (level := _level(rng, c)) is not None:
        risk["level"] = level
    if c.risk_categories_any is not None and rng.random() < 0.85:
        risk["categories"] = rng.sample(sorted(c.risk_categories_any), 1) + rng.sample((*CATEGORIES, "other"),
                                                                                       rng.randint(0, 1))
        risk["categories"] = sorted(set(risk["categories"]))
    elif rng.random() < 0.4:
        risk["categories"] = rng.sample((*CATEGORIES, "other"), rng.randint(0, 2))
    if risk:
        event["risk"] = risk
    payload: dict[str, Any] = event.setdefault("payload", {})
    if c.referral_sources is not None or rng.random() < 0.3:
        payload["referral_source"] = _pick(rng, c.referral_sources, REFERRAL_SOURCES)
    if c.plan_kinds is not None or rng.random() < 0.3:
        payload["plan_kind"] = _pick(rng, c.plan_kinds, (*PLAN_KINDS, "other"))
    if rng.random() < 0.25:
        payload["anonymous_access"] = rng.random() < 0.5
    for name in PARTNER_FIELDS.get(event_type, ()):
        if (c.partner_in and name in c.partner_in and rng.random() < 0.8) or rng.random() < 0.3:
            partner = rng.choice((*sorted(PARTNERS), "other"))
            payload[name] = partner if name == "assigned_partner" else sorted({partner, rng.choice(sorted(PARTNERS))})
    consent: dict[str, Any] = {}
    if c.consent_status is not None or rng.random() < 0.6:
        consent["status"] = _pick(rng, c.consent_status, (*CONSENT_STATUSES, "bogus"), 0.7)
    if (objection := rng.choice((None, True, False))) is not None:
        consent["objection"] = objection
    records = []
    rules = [target] if isinstance(target, Rule) else [r for r in protocol.rules if event_type in r.event_types]
    if any(r.requires_service_agreement for r in rules) and rng.random() < 0.8:
        records.append({"kind": "service_agreement", "state": rng.choice(("given", "given", "refused", "unknown"))})
    if source["agency"] == "health" and rng.random() < 0.6:
        records.append({"kind": "confidentiality", "state": rng.choice(("given", "refused", "withdrawn", "unknown"))})
    for _ in range(rng.randint(0, 2)):
        kind = rng.choice(KINDS)
        records.append({"kind": kind, "state": rng.choice(states_of(kind)),
                        "subject": "child" if rng.random() < 0.8 else "parent"})
    if records:
        consent["records"] = records
    if consent:
        event["consent"] = consent
    labels = field_classes(event_type)
    if isinstance(target, Rule):
        aimed = {c for f in target.field_rules for c in f.classifications}
        paths: tuple[str, ...] = tuple(p for f in target.field_rules for p in f.paths)
    else:
        aimed, paths = set(target.classifications or ()), target.paths or ()
    near = sorted(leaf for leaf, label in labels.items() if label in aimed or any(_under(leaf, p) for p in paths))
    strays = rng.sample(sorted(labels), rng.randint(0, 6)) + rng.sample(near, min(len(near), rng.randint(0, 3)))
    for leaf in strays:
        event = with_leaf(event, leaf)  # placeholders where the event has none: the rule's and invariant's leaves too
    s47 = {"trust"} if c.s47_request and rng.random() < 0.8 else set(rng.sample(sorted(PARTNERS), rng.randint(0, 1)))
    case_open = (c.case_open if rng.random() < 0.6 else rng.choice((None, True, False))) if c.case_open is not None \
        else rng.choice((None, True, False))
    adult = rng.choice((True, True, None, False)) if c.adult_at_risk else rng.choice((None, True, False))
    return event, CaseFacts(case_open=case_open, s47_requested_of=frozenset(s47), adult_at_risk=adult)


def biased_events(rng: random.Random, protocol: Protocol, each: int) -> list[tuple[dict[str, Any], CaseFacts]]:
    """`each` events aimed at every rule and every invariant of the protocol."""
    targets: list[Rule | Invariant] = [*protocol.rules, *protocol.invariants]
    return [biased_event(rng, protocol, t) for t in targets for _ in range(each)]


# --- the judge and the cross-check --------------------------------------------------------------------------------


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[]")


def violates(inv: Invariant, protocol: Protocol, event: Mapping[str, Any], facts: CaseFacts, sub: Subscriber,
             decision: Decision) -> bool:
    """Does this decision break the invariant? From the language's definition: about the subscriber (name or role),
    the type, the source agency, `when` (the rule condition language, read by the engine's one condition check),
    the objection; `shares` the leaves released (and masked, unless include_masked is false) of those classes or
    under those paths, else the delivery; `require`: the deciding rule cites one of the codes (either side)."""
    event_type = str(event["event_type"])
    if not decision.delivered or event_type not in inv.event_types:
        return False
    if inv.subscribers is not None and sub.name not in inv.subscribers and sub.role not in inv.subscribers:
        return False
    if inv.source_agencies is not None and (event.get("source") or {}).get("agency") not in inv.source_agencies:
        return False
    consent = effective_consent(None, event)
    if inv.objection is not None and consent.objection is not inv.objection:
        return False
    if unmet(inv.when, event, sub, consent, facts, protocol.source_partner(event)) is not None:
        return False
    if inv.classifications is not None or inv.paths is not None:
        labels = field_classes(event_type)
        shared = [*decision.released, *((p for p, _ in decision.masked) if inv.include_masked else ())]
        if not any((inv.classifications is not None and labels.get(p) in inv.classifications)
                   or any(_under(p, q) for q in inv.paths or ()) for p in shared):
            return False
    if inv.require_basis is None:
        return True
    rule = protocol.rule(decision.rule_id or "")
    assert rule is not None
    return not ({*rule.lawful_basis, *(rule.recipient_basis or ())} & inv.require_basis)


def _leaf_states(decision: Decision) -> dict[str, str]:
    masked = dict(decision.masked)
    return {**{p: "withheld" for p in decision.withheld}, **dict.fromkeys(decision.released, "released"),
            **{p: f"masked:{k}" for p, k in masked.items()}}


def _referral(decision: Decision) -> str | None:
    """What a person is asked to decide (public interest, an objection, a confidentiality state), if anything. The
    walk writes a withdrawal as a refusal (its twin in every branch of the engine), so the two name one referral."""
    if decision.human_decision is None:
        return None
    return decision.human_decision.restriction.replace("withdrawn", "refused")


def cross_check(protocol: Protocol, events: Sequence[tuple[dict[str, Any], CaseFacts]]) -> list[str]:
    """What the brute force finds wrong with the checker (empty: nothing). The checker's walk must meet every
    concrete decision (outcome, rule, and the state of every leaf the event carries); every invariant a concrete
    event breaks must be reported broken; every counterexample must break its invariant when decided again. The
    walk and the proof are looked up on their modules at call time, so a broken checker put in their place is
    what is judged."""
    prove_module._SPLITS.clear()
    walked: dict[tuple[str, str], list[Any]] = {}
    for scope in domains.scopes([protocol]):
        walked[(scope.subscriber.name, scope.event_type)] = [
            prove_module.outcome(protocol, scope, case) for case in domains.cases(scope)]
    proof = prove_module.prove(protocol)
    broken = {c.invariant for c in proof.counterexamples}
    failures: list[str] = []
    for n, (event, facts) in enumerate(events):
        event_type = str(event["event_type"])
        for name, sub in protocol.subscribers.items():
            decision = decide(protocol, event, name, facts=facts)
            met = walked.get((name, event_type))
            if met is None:
                if decision.outcome != "withhold" or decision.human_decision:
                    failures.append(f"event {n}: {name} {event_type} decided by {decision.rule_id}, never walked")
                continue
            same = [r for r in met if r.decision.outcome == decision.outcome and r.decision.rule_id ==
                    decision.rule_id and _referral(r.decision) == _referral(decision)]
            states = _leaf_states(decision) if decision.delivered else {}
            if not any(all(r.state(p) == s for p, s in states.items()) for r in same):
                failures.append(f"event {n}: the walk never met {name} {event_type} {decision.outcome} under "
                                f"{decision.rule_id} with these leaves")
            for inv in protocol.invariants:
                if inv.id not in broken and violates(inv, protocol, event, facts, sub, decision):
                    failures.append(f"event {n}: {inv.id} broken by a concrete event, proven by the checker")
    for ce in proof.counterexamples:
        again = decide(protocol, ce.event, ce.subscriber, facts=ce.facts)
        inv = next(i for i in protocol.invariants if i.id == ce.invariant)
        if not violates(inv, protocol, ce.event, ce.facts, protocol.subscribers[ce.subscriber], again):
            failures.append(f"counterexample for {ce.invariant} does not break it when decided again")
    return sorted(set(failures))
