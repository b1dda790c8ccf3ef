"""Decisions: default deny, conditions, consent honoured or overridden, deterministic ids, value-free records."""

from __future__ import annotations

import json
import uuid

import pytest

from adapters.health.fhir import ADAPTER as FHIR
from adapters.kit.interface import AdaptContext
from broker.policy import ConsentState, decide, decide_all
from broker.policy.facts import CaseFacts
from tests.conftest import assert_canonical
from tests.policy.conftest import CHILD, SECRETS, base_protocol, compile_data, make_event

REFERRAL = {"referral_date": "2026-05-04", "referral_source": "5A", "primary_need_code": "N1"}
CALLED_UPON = CaseFacts(s47_requested_of=frozenset({"la"}))  # the LA asked the test events' source to assist (s47(9))


def referral(**kw):
    return make_event("social_care.referral", "social_care", REFERRAL, **kw)


@pytest.fixture(scope="module")
def protocol():
    return compile_data(base_protocol())


def with_rule(**changes):
    data = base_protocol()
    data["rules"][0].update(changes)
    return compile_data(data)


def test_unknown_subscriber_gets_nothing(protocol) -> None:
    d = decide(protocol, referral(), "not_in_protocol")
    assert (d.outcome, d.rule_id, d.released, d.masked) == ("withhold", None, (), ())
    assert "not a subscriber" in d.reason and "default deny" in d.reason


def test_event_no_rule_covers_is_withheld(protocol) -> None:
    event = make_event("education.exclusion", "education", {"category": "suspension"})
    d = decide(protocol, event, "hub")
    assert d.outcome == "withhold" and "no rule shares education.exclusion with hub" in d.reason
    assert decide(protocol, referral(), "gp_one").outcome == "withhold"


def test_fields_no_rule_covers_are_withheld_operational_released(protocol) -> None:
    d = decide(protocol, referral(), "hub")
    assert d.outcome == "deliver" and d.rule_id == "hub-identity"
    assert {"event_id", "event_type", "source.agency", "subject.linkage.token"} <= set(d.released)
    # sensitive_operational (1.2.0): the risk level and the source system reveal something; no rule releases them
    assert {"risk.level", "source.system"} <= set(d.withheld)
    assert {"subject.child.given_names[]", "payload.referral_date", "subject.related_people[].role",
            "subject.related_people[].person.pnc_id"} <= set(d.released)
    assert {"subject.child.phones[]", "subject.child.addresses[].postcode", "subject.child.ethnicity",
            "subject.child.gp_practice.ods_code", "subject.child.school.urn"} <= set(d.withheld)
    assert set(d.released).isdisjoint(d.withheld)


def test_a_leaf_outside_the_schema_is_withheld(protocol) -> None:
    event = referral()
    event["payload"]["smuggled"] = "x"
    d = decide(protocol, event, "hub")
    assert "payload.smuggled" in d.withheld


def test_operational_default_can_be_overridden_by_a_path_rule() -> None:
    p = with_rule(fields=[{"classifications": ["identity"], "action": "release"},
                          {"paths": ["source.record_id"], "action": "withhold"}],
                  lawful_basis=["uk_gdpr_art6_1_e", "dpa2018_s36_4", "children_act_1989_s47"])
    d = decide(p, referral(), "hub")
    assert "source.record_id" in d.withheld and "source.record_version" in d.released


def test_longest_path_rule_wins_over_broader_path_and_classification() -> None:
    p = with_rule(fields=[{"paths": ["subject.related_people"], "action": "withhold"},
                          {"paths": ["subject.related_people[].role"], "action": "release"},
                          {"classifications": ["identity", "social_care", "criminal"], "action": "release"}])
    d = decide(p, referral(), "hub")
    assert "subject.related_people[].role" in d.released
    assert "subject.related_people[].person.family_name" in d.withheld
    assert "subject.child.family_name" in d.released


@pytest.mark.parametrize(("conditions", "event_kw", "outcome", "why"), [
    ({"risk_at_least": "high"}, {"risk": "medium"}, "withhold", "risk level medium is below high"),
    ({"risk_at_least": "high"}, {"risk": "critical"}, "deliver", ""),
    ({"risk_at_most": "medium"}, {"risk": "high"}, "withhold", "risk level high is above medium"),
    ({"risk_at_least": "low"}, {"risk": "unknown"}, "withhold", "risk level unknown is below low"),
    ({"risk_categories_any": ["domestic_abuse"]}, {"categories": ("neglect",)}, "withhold", "no risk category"),
    ({"risk_categories_any": ["domestic_abuse"]}, {"categories": ("neglect", "domestic_abuse")}, "deliver", ""),
    ({"subject_under_18": True}, {}, "deliver", ""),
    ({"subject_under_18": True}, {"child": {**CHILD, "date_of_birth": "2008-05-04"}}, "withhold",
     "not under 18"),
    ({"subject_under_18": True}, {"child": {**CHILD, "date_of_birth": "2008-05-05"}}, "deliver", ""),
    ({"subject_under_18": True}, {"child": {"family_name": "Example"}}, "withhold", "age on the event date is unknown"),
    ({"subject_under_18": True}, {"child": {"expected_date_of_birth": "2026-08-01"}}, "deliver", ""),
    ({"consent_status": ["given", "not_sought"]}, {"consent": {"status": "unknown"}}, "withhold",
     "consent status unknown is not among given, not_sought"),
])
def test_conditions(conditions, event_kw, outcome, why) -> None:
    d = decide(with_rule(conditions=conditions), referral(**event_kw), "hub")
    assert d.outcome == outcome
    assert why in d.reason


def test_source_agency_condition() -> None:
    p = with_rule(source_agencies=["police"])
    d = decide(p, referral(), "hub")
    assert d.outcome == "withhold" and "source agency social_care is not among police" in d.reason


def test_case_open_condition_fails_when_unknown() -> None:
    p = with_rule(conditions={"case_open": True})
    assert decide(p, referral(), "hub", case_open=True).outcome == "deliver"
    assert "the case is not open" in decide(p, referral(), "hub", case_open=False).reason
    assert "case status is unknown" in decide(p, referral(), "hub").reason


def _gp_protocol():
    data = base_protocol()
    data["rules"] = [{"id": "gp-notices", "description": "GP", "subscribers": ["gp_practice"],
                      "event_types": ["health.child_protection_plan_notice"], "purpose": "care",
                      "lawful_basis": ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h", "dpa2018_sch1_para2",
                                       "children_act_2004_s11"],
                      "conditions": {"registered_with": "gp_practice"},
                      "fields": [{"classifications": ["identity", "social_care", "health"], "action": "release"}]}]
    return compile_data(data)


def test_registered_with_gp_practice_compares_ods_codes() -> None:
    p = _gp_protocol()
    notice = {"plan_kind": "child_protection_plan", "contact_phone": "01632960000"}
    ours = make_event("health.child_protection_plan_notice", "health", notice)
    theirs = make_event("health.child_protection_plan_notice", "health", notice,
                        child={**CHILD, "gp_practice": {"ods_code": "Y99999"}})
    unknown = make_event("health.child_protection_plan_notice", "health", notice,
                         child={k: v for k, v in CHILD.items() if k != "gp_practice"})
    assert decide(p, ours, "gp_one").outcome == "deliver"
    assert "not known to be registered with the subscriber's GP practice" in decide(p, theirs, "gp_one").reason
    assert decide(p, unknown, "gp_one").outcome == "withhold"
    assert "payload.contact_phone" in decide(p, ours, "gp_one").withheld  # contact: no field rule covers it


def _consent_protocol():
    data = base_protocol()
    data["rules"] = [
        {"id": "help-by-consent", "description": "Early help", "subscribers": ["helper"],
         "event_types": ["social_care.referral"], "purpose": "support", "lawful_basis": ["consent"],
         "fields": [{"classifications": ["identity"], "action": "release"}]},
        {"id": "hub-s47", "description": "Hub s47", "subscribers": ["hub"], "event_types": ["social_care.referral"],
         "purpose": "triage", "lawful_basis": ["uk_gdpr_art6_1_e", "children_act_1989_s47"],
         "fields": [{"classifications": ["identity"], "action": "release"}]},
        {"id": "hub-s47-9-on-request", "description": "Duty to disclose", "subscribers": ["hub"],
         "event_types": ["social_care.section47_enquiry"], "purpose": "triage",
         "lawful_basis": ["uk_gdpr_art6_1_c", "children_act_1989_s47_9"], "conditions": {"s47_request": True},
         "fields": [{"classifications": ["identity"], "action": "release"}]},
        {"id": "hub-public-task-only", "description": "No gateway", "subscribers": ["hub"],
         "event_types": ["social_care.assessment"], "purpose": "triage", "lawful_basis": ["uk_gdpr_art6_1_e"],
         "fields": [{"classifications": ["identity"], "action": "release"}]},
    ]
    return compile_data(data)


def test_consent_based_rule_needs_consent_given_and_honours_withdrawal() -> None:
    p = _consent_protocol()
    given = decide(p, referral(), "helper", consent=ConsentState("given", recorded_on="2026-04-01"))
    assert given.outcome == "deliver" and given.consent_override is None
    withdrawn = decide(p, referral(), "helper", consent=ConsentState("withdrawn", recorded_on="2026-04-20"))
    assert withdrawn.outcome == "withhold" and "consent withdrawn: honoured" in withdrawn.reason
    assert "consent status is not_sought" in decide(p, referral(), "helper").reason  # the event's own block
    objected = decide(p, referral(), "helper", consent=ConsentState("given", objection=True))
    assert objected.outcome == "withhold" and "consent objection: honoured" in objected.reason


def test_a_power_or_duty_to_cooperate_never_overrides_an_objection_it_goes_to_a_human_decision() -> None:
    """Children Act 1989 s47 is the LA's function, not a duty on anyone to disclose: an objection under public task
    (Art 6(1)(e)) is weighed by a person (Art 21(1)), never set aside by the engine. A withdrawal of data protection
    consent has no legal effect there (consent is not the basis): the share goes ahead."""
    p = _consent_protocol()
    withdrawn = decide(p, referral(), "hub", consent=ConsentState("withdrawn", recorded_on="2026-04-20"))
    assert withdrawn.outcome == "deliver" and withdrawn.human_decision is None and withdrawn.consent_override is None
    d = decide(p, referral(), "hub", consent=ConsentState("withdrawn", objection=True, recorded_on="2026-04-20"))
    assert d.outcome == "withhold" and d.rule_id is None and d.consent_override is None
    assert d.human_decision is not None and d.human_decision.rule_id == "hub-s47"
    assert (d.human_decision.restriction, d.human_decision.recorded_on) == ("objection", "2026-04-20")
    assert d.human_decision.basis == ("uk_gdpr_art6_1_e", "children_act_1989_s47")
    assert "pending a recorded human decision under rule hub-s47" in d.reason
    assert d.to_record()["consent_override"] is None


def test_a_duty_to_disclose_overrides_an_objection_and_records_it() -> None:
    """s47(9) with Art 6(1)(c): a legal obligation, to which the Art 21 right to object does not apply."""
    p = _consent_protocol()
    enquiry = make_event("social_care.section47_enquiry", "social_care", {"actual_start_date": "2026-05-01"})
    d = decide(p, enquiry, "hub", consent=ConsentState("withdrawn", objection=True, recorded_on="2026-04-20"),
               facts=CALLED_UPON)
    assert d.outcome == "deliver" and d.rule_id == "hub-s47-9-on-request" and d.human_decision is None
    assert d.to_record()["consent_override"] == {"restriction": "objection", "recorded_on": "2026-04-20",
                                                 "gateway": "children_act_1989_s47_9"}
    assert "set aside under the duty to disclose children_act_1989_s47_9" in d.reason


def test_objection_without_a_duty_to_disclose_goes_to_a_human_decision() -> None:
    p = _consent_protocol()
    event = make_event("social_care.assessment", "social_care", {"actual_start_date": "2026-05-01"})
    assert decide(p, event, "hub").outcome == "deliver"
    d = decide(p, event, "hub", consent=ConsentState(objection=True))
    assert d.outcome == "withhold" and "cites no duty to disclose" in d.reason
    assert d.human_decision is not None and d.human_decision.restriction == "objection"


def test_the_more_restrictive_of_register_and_event_consent_wins() -> None:
    p = _consent_protocol()
    withdrawn_in_event = referral(consent={"status": "withdrawn", "recorded_on": "2026-03-01"})
    d = decide(p, withdrawn_in_event, "helper", consent=ConsentState("given"))
    assert d.outcome == "withhold" and "honoured" in d.reason
    objection_in_event = referral(consent={"status": "given", "objection": True, "recorded_on": "2026-03-01"})
    d = decide(p, objection_in_event, "hub", consent=ConsentState("given"))
    assert d.human_decision is not None and d.human_decision.recorded_on == "2026-03-01"


def test_a_later_statutory_rule_applies_when_a_consent_rule_is_honoured() -> None:
    data = base_protocol()
    data["subscribers"][0]["purposes"] = ["triage", "support"]
    data["rules"] = [
        {"id": "hub-consent", "description": "c", "subscribers": ["hub"], "event_types": ["social_care.referral"],
         "purpose": "support", "lawful_basis": ["consent"],
         "fields": [{"classifications": ["identity", "contact"], "action": "release"}]},
        {"id": "hub-s47", "description": "s", "subscribers": ["hub"], "event_types": ["social_care.referral"],
         "purpose": "triage", "lawful_basis": ["uk_gdpr_art6_1_c", "children_act_1989_s47_9"],
         "conditions": {"risk_at_least": "high", "s47_request": True},
         "fields": [{"classifications": ["identity"], "action": "release"}]},
    ]
    p = compile_data(data)
    refused = ConsentState("refused")
    d = decide(p, referral(risk="high"), "hub", consent=refused, facts=CALLED_UPON)
    assert d.rule_id == "hub-s47" and d.consent_override is None  # a refusal of consent has nothing to set aside
    assert "subject.child.phones[]" in d.withheld
    objected = decide(p, referral(risk="high"), "hub", consent=ConsentState("refused", objection=True),
                      facts=CALLED_UPON)
    assert objected.rule_id == "hub-s47" and objected.consent_override.restriction == "objection"
    d = decide(p, referral(risk="medium"), "hub", consent=refused)
    assert d.outcome == "withhold"
    assert "hub-consent: consent refused: honoured" in d.reason and "hub-s47: risk level medium" in d.reason


def test_decision_ids_are_deterministic_uuid5(protocol) -> None:
    event = referral()
    a, b = decide(protocol, event, "hub"), decide(protocol, event, "hub")
    assert a.decision_id == b.decision_id and uuid.UUID(a.decision_id).version == 5
    assert decide(protocol, event, "gp_one").decision_id != a.decision_id
    data = base_protocol()
    data["protocol"]["version"] = "2"
    assert decide(compile_data(data), event, "hub").decision_id != a.decision_id


def test_decision_record_names_paths_never_values(protocol) -> None:
    event = referral()
    event["payload"]["smuggled"] = "Fictitious narrative"
    for d in decide_all(protocol, event, ConsentState("withdrawn")):
        text = json.dumps(d.to_record())
        assert not [s for s in SECRETS if s in text]
    record = decide(protocol, event, "hub").to_record()
    assert set(record) == {"decision_id", "event_id", "event_type", "subscriber", "outcome", "rule_id",
                           "lawful_basis", "purpose", "fields_released", "fields_masked", "fields_withheld",
                           "protocol_id", "protocol_version", "reason", "consent_override", "human_decision"}


def test_decide_all_gives_one_decision_per_subscriber_matching_decide(protocol) -> None:
    event = referral()
    decisions = decide_all(protocol, event, None)
    assert [d.subscriber for d in decisions] == ["hub", "gp_one", "helper"]
    assert decisions == [decide(protocol, event, name) for name in protocol.subscribers]


def _fhir_events(external_cases):
    out = []
    for path in sorted((external_cases / "health").glob("*.xml")):
        result = FHIR.adapt(path.read_bytes(), AdaptContext(source=path.name, received_at="2026-01-01T00:00:00Z"))
        out += result.events
    return assert_canonical(out)


def test_real_fhir_events_under_the_sample_protocol(external_cases, sample) -> None:
    events = {e["event_type"]: e for e in _fhir_events(external_cases)}
    assert set(events) == {"person.identified", "health.admission", "health.clinical_flag", "person.updated"}
    adult = decide(sample, events["person.identified"], "mash_hub")  # the UK Core patient was born in 1970
    assert adult.outcome == "withhold" and "not under 18" in adult.reason
    admission = decide(sample, events["health.admission"], "mash_hub")  # subject is a bare reference: age unknown
    assert admission.outcome == "withhold" and "age on the event date is unknown" in admission.reason
    for event in events.values():
        assert all(d.outcome == "withhold" for d in decide_all(sample, event))


def test_real_fhir_admission_released_to_a_health_subscriber(external_cases) -> None:
    data = base_protocol()
    data["rules"] = [{"id": "gp-admissions", "description": "admissions", "subscribers": ["gp_one"],
                      "event_types": ["health.*"], "source_agencies": ["health"], "purpose": "care",
                      "lawful_basis": ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h", "dpa2018_sch1_para2",
                                       "children_act_2004_s11"],
                      "fields": [{"classifications": ["health"], "action": "release"},
                                 {"paths": ["payload.reasons[].display"], "action": "mask", "mask": "redact"}]}]
    p = compile_data(data)
    admission = next(e for e in _fhir_events(external_cases) if e["event_type"] == "health.admission")
    d = decide(p, admission, "gp_one")
    assert d.outcome == "deliver"
    assert {"payload.setting", "payload.reasons[].code", "payload.period_start"} <= set(d.released)
    assert ("payload.reasons[].display", "redact") in d.masked
    assert "subject.child.local_ids[].value" in d.withheld
