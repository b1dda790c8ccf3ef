"""The registers' facts a decision reads (broker/policy/facts.py), the conditions built on them, and the exclusions
written from the law: s47(9) binds only a body the local authority has called upon; Sch 1 para 18 covers a child or
an adult at risk on a recorded determination; s251B does not reach an anonymous access service; the child's voice
in an Operation Encompass notice is possibly special category and criminal whoever reviewed it. None of these held
before facts.py (checked against the previous tree: the conditions did not exist and the compiler accepted the rules).
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from adapters.health.fhir import ADAPTER as FHIR
from adapters.kit.interface import AdaptContext
from broker.policy import ConsentState, ProtocolError, decide, decide_all, explain, format_explanation
from broker.policy.facts import CaseFacts
from tests.adapters.health.builders import as_json, bundle, patient
from tests.conftest import assert_canonical
from tests.policy.conftest import CHILD, SECRETS, base_protocol, compile_data, make_event

ENQUIRY = ("social_care.section47_enquiry", "social_care", {"actual_start_date": "2026-05-01"})
ATTENDANCE = ("health.urgent_care_attendance", "health", {"setting": "emergency"})
FLAG = ("health.safeguarding_flag", "health", {"code": {"system": "http://snomed.info/sct", "code": "000000"}})
TRUST = {"id": "trust", "name": "Test Trust", "agency": "health", "role": "relevant_agency",
         "source_systems": ["TEST"]}
HEALTH_TO_HUB = ["uk_gdpr_art6_1_c", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "children_act_1989_s47_9"]


def _s47_9(**conditions: Any) -> dict[str, Any]:
    return {"id": "hub-s47-9", "description": "A health body assists the LA's enquiry when called upon",
            "subscribers": ["hub"], "event_types": ["health.urgent_care_attendance"], "source_agencies": ["health"],
            "purpose": "triage", "lawful_basis": HEALTH_TO_HUB, "conditions": conditions,
            "fields": [{"classifications": ["identity", "health"], "action": "release"}]}


def _with(rules: list[dict[str, Any]], partners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data = base_protocol()
    data["partners"][1] = copy.deepcopy(partners[0]) if partners else data["partners"][1]
    data["partners"] += [copy.deepcopy(p) for p in (partners or [])[1:]]
    if partners:  # the GP subscriber belongs to the health partner
        data["subscribers"][1]["partner"] = partners[0]["id"]
    data["rules"] = rules
    return data


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        compile_data(data)
    return [str(p) for p in info.value.problems]


# --- the facts themselves ----------------------------------------------------------------------------------------

def test_case_open_shorthand_and_facts_decide_alike_and_may_not_disagree() -> None:
    p = compile_data({**base_protocol(), "rules": [{**base_protocol()["rules"][0], "conditions": {"case_open": True}}]})
    event = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-04"})
    assert decide(p, event, "hub", case_open=True) == decide(p, event, "hub", facts=CaseFacts(case_open=True))
    assert decide_all(p, event, case_open=True) == decide_all(p, event, facts=CaseFacts(case_open=True))
    assert decide(p, event, "hub", facts=CaseFacts()).outcome == "withhold"  # unknown fails
    with pytest.raises(TypeError):
        decide(p, event, "hub", case_open=False, facts=CaseFacts(case_open=True))


# --- s47(9): only the body called upon, only when called upon ----------------------------------------------------

def test_s47_9_binds_only_the_disclosing_body_the_local_authority_called_upon() -> None:
    p = compile_data(_with([_s47_9(subject_under_18=True, s47_request=True)], [TRUST]))
    event = make_event(*ATTENDANCE)
    objection = ConsentState(objection=True, recorded_on="2026-05-02")
    called = decide(p, event, "hub", consent=objection, facts=CaseFacts(s47_requested_of=frozenset({"trust"})))
    assert called.outcome == "deliver" and called.consent_override.gateway == "children_act_1989_s47_9"
    # nobody called upon; another body called upon; the recipient's own partner "called upon" (no request to the
    # discloser)
    for requested in (set(), {"gp"}, {"la"}):
        d = decide(p, event, "hub", consent=objection, facts=CaseFacts(s47_requested_of=frozenset(requested)))
        assert d.outcome == "withhold" and "has not recorded calling upon partner trust" in d.reason, d.reason


def test_an_event_whose_source_no_partner_declares_is_never_a_s47_9_disclosure() -> None:
    """An attacker's event naming another system, or the trust's system under another agency, is not the trust's."""
    p = compile_data(_with([_s47_9(subject_under_18=True, s47_request=True)], [TRUST]))
    facts = CaseFacts(s47_requested_of=frozenset({"trust"}))
    other = make_event(*ATTENDANCE)
    other["source"]["system"] = "SOMEONE-ELSE"
    d = decide(p, other, "hub", facts=facts)
    assert d.outcome == "withhold" and "the disclosing partner is unknown" in d.reason
    assert p.source_partner(make_event(*ATTENDANCE)) == "trust"
    assert p.source_partner(make_event(*ENQUIRY)) == "la"  # same system code, other agency: the LA's own
    assert p.source_partner(make_event(*ENQUIRY) | {"source": {"agency": "police", "system": "TEST"}}) is None


def test_the_compiler_refuses_s47_9_without_a_request_and_a_request_it_cannot_match() -> None:
    without = _problems(_with([_s47_9(subject_under_18=True)], [TRUST]))
    assert any("binds a body only when the local authority calls upon it" in p and "s47_request: true" in p
               for p in without), without
    undeclared = {k: v for k, v in TRUST.items() if k != "source_systems"}
    unmatched = _problems(_with([_s47_9(subject_under_18=True, s47_request=True)], [undeclared]))
    assert any("no partner of the rule's source agencies declares source_systems" in p for p in unmatched), unmatched


def test_a_source_system_belongs_to_one_partner() -> None:
    twin = {**TRUST, "id": "other-trust", "name": "Other Trust", "source_systems": ["test"]}  # case-insensitive
    problems = _problems(_with([_s47_9(subject_under_18=True, s47_request=True)], [TRUST, twin]))
    assert any("also declared by partner" in p for p in problems), problems


# --- para 18 / Sch 8 para 4: a child, or an adult at risk on a recorded determination -----------------------------

def _para18(**conditions: Any) -> dict[str, Any]:
    return {"id": "hub-para18", "description": "Safeguarding without consent", "subscribers": ["hub"],
            "event_types": ["health.safeguarding_flag"], "source_agencies": ["health"], "purpose": "triage",
            "lawful_basis": ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para18", "children_act_2004_s11"],
            "para18_reason": "consent_would_prejudice_protection", "conditions": conditions,
            "fields": [{"classifications": ["identity", "health"], "action": "release"}]}


def test_para18_needs_a_child_or_an_adult_at_risk_and_accepts_either() -> None:
    problems = _problems(_with([_para18()]))
    assert any("add subject_under_18: true, or adult_at_risk: true" in p for p in problems), problems
    compile_data(_with([_para18(subject_under_18=True)]))
    compile_data(_with([_para18(adult_at_risk=True)]))


@pytest.mark.parametrize(("known", "words"), [
    (None, "no determination is recorded that the subject is an adult at risk"),
    (False, "the recorded determination is that the subject is not an adult at risk"),
])
def test_an_adult_is_at_risk_only_on_a_recorded_determination(known: bool | None, words: str) -> None:
    p = compile_data(_with([_para18(adult_at_risk=True)]))
    adult = make_event(*FLAG, child={"given_names": ["Testadult"], "family_name": "Example",
                                     "date_of_birth": "1985-01-01"})
    d = decide(p, adult, "hub", facts=CaseFacts(adult_at_risk=known))
    assert d.outcome == "withhold" and words in d.reason
    at_risk = decide(p, adult, "hub", facts=CaseFacts(adult_at_risk=True))
    assert at_risk.outcome == "deliver" and "without consent" in at_risk.reason  # para 18(2) reason stated


# --- the identity register's date of birth -------------------------------------------------------------------------

def _gp_protocol():
    data = base_protocol()
    data["rules"] = [{"id": "gp-child", "description": "Registered children's attendances",
                      "subscribers": ["gp_one"], "event_types": ["health.urgent_care_attendance"],
                      "source_agencies": ["health"], "purpose": "care",
                      "lawful_basis": ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h", "dpa2018_sch1_para2",
                                       "health_and_social_care_act_2012_s251b"],
                      "conditions": {"subject_under_18": True, "registered_with": "gp_practice"},
                      "fields": [{"classifications": ["identity", "health"], "action": "release"}]}]
    return compile_data(data)


NO_DOB = {k: v for k, v in CHILD.items() if k != "date_of_birth"}


def test_the_register_date_of_birth_is_used_only_when_the_event_has_none_and_the_reason_says_so() -> None:
    p = _gp_protocol()
    bare = make_event(*ATTENDANCE, child=NO_DOB)
    assert "age on the event date is unknown" in decide(p, bare, "gp_one").reason
    d = decide(p, bare, "gp_one", facts=CaseFacts(birth_date=date(2016, 5, 14)))
    assert d.outcome == "deliver" and "date of birth in the identity register" in d.reason
    adult = decide(p, bare, "gp_one", facts=CaseFacts(birth_date=date(1990, 2, 3)))
    assert adult.outcome == "withhold" and "(date of birth from the identity register)" in adult.reason
    # the event's own date of birth wins: a register entry cannot make an adult's record a child's
    own = decide(p, make_event(*ATTENDANCE, child={**NO_DOB, "date_of_birth": "1990-02-03"}), "gp_one",
                 facts=CaseFacts(birth_date=date(2016, 5, 14)))
    assert own.outcome == "withhold" and "identity register" not in own.reason
    told = decide(p, make_event(*ATTENDANCE), "gp_one", facts=CaseFacts(birth_date=date(2016, 5, 14)))
    assert told.outcome == "deliver" and "identity register" not in told.reason


def test_explain_shows_the_facts_without_the_date_of_birth() -> None:
    p = _gp_protocol()
    out = explain(p, make_event(*ATTENDANCE, child=NO_DOB), "gp_one",
                  facts=CaseFacts(birth_date=date(2016, 5, 14), adult_at_risk=False))
    assert out["facts"] == {"s47_requested_of": [], "adult_at_risk": False, "birth_date_known": True}
    text = repr(out)
    assert not [s for s in SECRETS if s in text]  # the date of birth is among them


# --- s251B(4)(b): never an anonymous access service ------------------------------------------------------------------

@pytest.mark.parametrize("mark", [True, False])  # present at all, the mark counts: the safe side of a bad record
def test_s251b_never_reaches_an_anonymous_access_service(mark: bool) -> None:
    p = _gp_protocol()
    event = make_event("health.urgent_care_attendance", "health", {"setting": "urgent_care",
                                                                    "anonymous_access": mark})
    d = decide(p, event, "gp_one")
    assert d.outcome == "withhold" and "s251B(4)(b)" in d.reason
    assert decide(p, make_event(*ATTENDANCE), "gp_one").outcome == "deliver"  # control


def test_a_rule_citing_no_s251b_is_not_affected_by_the_mark() -> None:
    data = _with([_s47_9(subject_under_18=True, s47_request=True)], [TRUST])
    event = make_event("health.urgent_care_attendance", "health", {"setting": "urgent_care", "anonymous_access": True})
    d = decide(compile_data(data), event, "hub", facts=CaseFacts(s47_requested_of=frozenset({"trust"})))
    assert d.outcome == "deliver"  # s47(9) has no anonymous-access exception


HL7_ACTCODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _encounter(security: list[dict[str, str]] | None) -> dict[str, Any]:
    encounter: dict[str, Any] = {
        "resourceType": "Encounter", "id": "enc-1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": "Patient/child-1"}, "period": {"start": "2026-05-03T02:30:00Z"}}
    if security is not None:
        encounter["meta"] = {"security": security}
    out = FHIR.adapt(as_json(bundle(patient(), encounter)), AdaptContext(source="test"))
    [event] = assert_canonical([e for e in out.events if e["event_type"] == "health.urgent_care_attendance"])
    return event


@pytest.mark.parametrize("code", ["STD", "HIV", "SEX"])
def test_the_fhir_adapter_marks_a_sexual_health_encounter_anonymous_access(code: str) -> None:
    assert _encounter([{"system": HL7_ACTCODE, "code": code}])["payload"]["anonymous_access"] is True
    assert "anonymous_access" not in _encounter(None)["payload"]
    assert "anonymous_access" not in _encounter([{"system": HL7_ACTCODE, "code": "PSY"}])["payload"]


# --- the child's voice (Operation Encompass) -------------------------------------------------------------------------

def _encompass(lawful: list[str], recipient: list[str], **extra: Any) -> dict[str, Any]:
    data = base_protocol()
    data["partners"].append({"id": "force", "name": "Test Police", "agency": "police",
                             "role": "safeguarding_partner"})
    data["partners"].append({"id": "school", "name": "Test School", "agency": "education",
                             "role": "relevant_agency"})
    data["subscribers"].append({"name": "dsl", "partner": "school", "role": "school_dsl", "purposes": ["care"],
                                "public_key": "A" * 43 + "=", "key_suite": "x25519", "delivery": "sse"})
    data["rules"] = [{"id": "encompass", "description": "Operation Encompass", "subscribers": ["dsl"],
                      "event_types": ["police.domestic_abuse_notification"], "source_agencies": ["police"],
                      "purpose": "care", "lawful_basis": lawful, "recipient_basis": recipient,
                      "conditions": {"subject_under_18": True},
                      "fields": [{"paths": ["payload.child_voice", "payload.incident_reference"],
                                  "action": "release"}], **extra}]
    return data


S49A = ["uk_gdpr_art6_1_c", "dpa2018_sch1_para6", "dpa2018_s36_4", "domestic_abuse_act_2021_s49a"]
SCHOOL = ["uk_gdpr_art6_1_e", "dpa2018_sch1_para6", "education_act_2002_s175"]
REVIEW = {"statement": "Reviewed: the sources' free text holds no special category data",
          "reviewed_by": "Test DPO", "reviewed_on": "2026-03-01"}


def test_the_childs_voice_needs_an_art9_condition_whoever_reviewed_the_narrative() -> None:
    """A child's account of abuse can reveal health or sex life: a narrative review cannot certify it holds none."""
    problems = _problems(_encompass(S49A, SCHOOL, narrative_review=REVIEW))
    assert any("payload.child_voice" in p and "Art 9(2)" in p for p in problems), problems
    with_art9 = _encompass([*S49A, "uk_gdpr_art9_2_g"], [*SCHOOL, "uk_gdpr_art9_2_g"])
    p = compile_data(with_art9)
    event = make_event("police.domestic_abuse_notification", "police",
                       {"incident_reference": "TEST/1", "child_voice": "Fictitious narrative of the child.",
                        "summary": "Fictitious narrative of the officer."}, categories=("domestic_abuse",))
    d = decide(p, event, "dsl")
    assert d.outcome == "deliver" and "payload.child_voice" in d.released and "payload.summary" in d.withheld


@pytest.mark.parametrize(("facts", "where", "words"), [
    ({"birth_date": "2016-02-30"}, "tests[0].facts.birth_date", "not a valid date"),  # the schema's format check
    ({"s47_requested_of": ["no-such-partner"]}, "tests[0].facts.s47_requested_of[0]", "not the id of a partner"),
])
def test_an_embedded_tests_facts_are_checked_when_the_protocol_loads(facts, where, words) -> None:
    data = base_protocol()
    data["tests"] = [{"name": "t", "subscriber": "hub", "facts": facts, "event": {"event_type": "social_care.referral"},
                      "expect": {"outcome": "withhold"}}]
    problems = _problems(data)
    assert any(where in p and words in p for p in problems), problems


def test_the_text_explanation_names_the_facts_and_never_the_date() -> None:
    text = format_explanation(explain(_gp_protocol(), make_event(*ATTENDANCE, child=NO_DOB), "gp_one",
                                      facts=CaseFacts(birth_date=date(2016, 5, 14))))
    assert "s47(9) requests: none recorded; adult at risk: no determination; register date of birth: known" in text
    assert not [s for s in SECRETS if s in text]
