"""Classification written from the law (issue 19, "Classification"): fields that reveal a sensitive fact are released
only by rule; fields that can hold special category (UK GDPR Art 9) or criminal offence data (Art 10) carry a marker
the compile checks read whatever their label; narrative counts as possibly both; police intelligence and assessment
are a label apart from recorded offences. Each test failed under schema 1.1 labels (checked before the change)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from broker.policy import ProtocolError, decide
from broker.schema.classification import CRIMINAL, SPECIAL, field_classes, leaf_markers
from broker.schema.loader import load_schema
from tests.policy.conftest import compile_data, make_event

KEY = "A" * 43 + "="
SECRET_SYSTEM = "TEST-SEXUAL-HEALTH-CLINIC"  # a clinic's system id: what it is reveals what the record is about


def _protocol(**rule: Any) -> dict[str, Any]:
    """One LA hub and one police PPU (Part 3); one rule, varied by the test."""
    sub = {"public_key": KEY, "key_suite": "x25519", "delivery": "kafka"}
    base = {"id": "r", "description": "test rule", "subscribers": ["hub"], "event_types": ["social_care.referral"],
            "purpose": "work", "lawful_basis": ["uk_gdpr_art6_1_e", "children_act_1989_s17"],
            "fields": [{"classifications": ["identity"], "action": "release"}]}
    return copy.deepcopy({
        "protocol": {"id": "cls-isp", "version": "1", "title": "Classification tests", "effective_from": "2026-01-01"},
        "purposes": {"work": "Safeguarding work"},
        "partners": [{"id": "la", "name": "LA", "agency": "social_care", "role": "safeguarding_partner"},
                     {"id": "force", "name": "Force", "agency": "police", "role": "safeguarding_partner"}],
        "subscribers": [{"name": "hub", "partner": "la", "role": "mash_hub", "purposes": ["work"], **sub},
                        {"name": "ppu", "partner": "force", "role": "police_ppu", "purposes": ["work"],
                         "regime": "dpa2018_part3", **sub}],
        "rules": [{**base, **rule}],
    })


def _refusals(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        compile_data(data)
    return [f"{p.path}: {p.reason}" for p in info.value.problems]


def _sensitive_referral() -> dict[str, Any]:
    event = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-01"}, risk="critical",
                       consent={"status": "not_sought", "objection": False, "recorded_on": "2026-04-20"})
    event["source"]["system"] = SECRET_SYSTEM
    event["lawful_basis"] = {"article_6": "6(1)(e)", "article_9": "9(2)(g)",
                             "statutory_gateways": ["children_act_1989_s47"]}
    return event


# --- fields that reveal a sensitive fact -----------------------------------------------------------------------

SENSITIVE = ["risk.level", "consent.status", "consent.objection", "consent.recorded_on", "source.system",
             "lawful_basis.article_9", "lawful_basis.statutory_gateways[]", "subject.child.local_ids[].system"]


@pytest.mark.parametrize("path", SENSITIVE)
def test_fields_that_reveal_a_sensitive_fact_are_not_operational(path: str) -> None:
    """A child's risk level, the family's refusal or objection, a clinic's system and the source's s47 gateway are
    personal data about an identified child (UK GDPR Art 4(1)): never a default release."""
    for event_type in load_schema()["$defs"]["event_type"]["enum"]:
        assert field_classes(event_type)[path] == "sensitive_operational", (event_type, path)


def test_what_the_broker_must_read_to_route_stays_operational() -> None:
    """Event id, type (the Kafka routing header), schema version, linkage token, times and agency stay readable:
    the envelope's associated data and the share stage's routing need them before anything is revealed."""
    for event_type in load_schema()["$defs"]["event_type"]["enum"]:
        labels = field_classes(event_type)
        for path in ("event_id", "event_type", "schema_version", "subject.linkage.token", "occurred_at",
                     "recorded_at", "source.agency"):
            assert labels[path] == "operational", (event_type, path)


def test_a_rule_that_names_no_sensitive_field_delivers_none_of_them() -> None:
    """Default deny for fields: a rule releasing identity does not tell the recipient the child's risk level, the
    family's objection, the clinic's system or the source's gateway (all released as operational before 1.2.0)."""
    p = compile_data(_protocol())
    d = decide(p, _sensitive_referral(), "hub")
    assert d.outcome == "deliver"
    present = set(d.released) | set(d.withheld)
    for path in SENSITIVE[:-1]:  # the fixture carries no local ids
        assert path in present and path in d.withheld, path


def test_a_rule_may_release_the_sensitive_operational_fields_by_name() -> None:
    p = compile_data(_protocol(fields=[{"classifications": ["identity", "sensitive_operational"],
                                        "action": "release"}]))
    d = decide(p, _sensitive_referral(), "hub")
    assert {"risk.level", "consent.objection", "source.system", "lawful_basis.article_9"} <= set(d.released)


# --- special category and criminal offence markers -------------------------------------------------------------

@pytest.mark.parametrize(("event_type", "path", "markers"), [
    ("social_care.assessment", "payload.factors[]", {SPECIAL, CRIMINAL}),  # mental health, self-harm; gangs, FGM
    ("social_care.referral", "risk.categories[]", {SPECIAL, CRIMINAL}),  # self_harm; county_lines, trafficking
    ("social_care.referral", "payload.primary_need_code", {SPECIAL}),  # N2/N3: disability or illness
    ("social_care.looked_after_episode_started", "payload.category_of_need", {SPECIAL}),
    ("social_care.child_protection_plan_started", "payload.initial_category_of_abuse", {SPECIAL}),  # sexual abuse
    ("education.pupil_record", "payload.sen_needs[]", {SPECIAL}),  # SEMH, ASD, HI, VI
    ("social_care.referral", "subject.related_people[].role", {CRIMINAL}),  # suspect, offender, victim
    ("police.public_protection_notice", "payload.concerns[]", {SPECIAL}),  # mental_health, CSE
])
def test_fields_holding_special_or_criminal_data_are_marked(event_type: str, path: str, markers: set[str]) -> None:
    assert markers <= leaf_markers(event_type).get(path, frozenset())


def test_releasing_assessment_factors_under_art6_alone_is_refused() -> None:
    """CIN assessment factors (parental mental health, self-harm, gangs) are health data and criminal offence data
    under a social care label: Art 9(1) needs an Art 9(2) condition, Art 10 a Schedule 1 condition (s10(5))."""
    rule = {"event_types": ["social_care.assessment"],
            "fields": [{"paths": ["payload.factors"], "action": "release"}]}
    refused = _refusals(_protocol(**rule))
    assert any("special category data" in r and "payload.factors[]" in r for r in refused), refused
    assert any("criminal offence data" in r and "payload.factors[]" in r for r in refused), refused
    compile_data(_protocol(**rule, lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6",
                                                 "children_act_1989_s17"]))


def test_releasing_sen_needs_needs_an_art9_condition() -> None:
    """A SEN type that names a condition (autism, hearing impairment, SEMH) is data concerning health (Art 4(15))."""
    refused = _refusals(_protocol(event_types=["education.pupil_record"], source_agencies=["education"],
                                  lawful_basis=["uk_gdpr_art6_1_e", "education_act_2002_s175"],
                                  fields=[{"classifications": ["identity", "education"], "action": "release"}]))
    assert any("special category data" in r and "payload.sen_needs[]" in r for r in refused), refused


def test_an_adults_role_as_offender_on_consent_needs_para_29() -> None:
    """A related person's role (suspect, offender) is criminal offence data about that adult: consent to early help
    is Art 6(1)(a), and consent to criminal offence data is DPA 2018 Sch 1 para 29, not Art 6(1)(a)."""
    refused = _refusals(_protocol(lawful_basis=["consent"],
                                  fields=[{"paths": ["subject.related_people[].role"], "action": "release"}]))
    assert any("dpa2018_sch1_para29" in r and "subject.related_people[].role" in r for r in refused), refused


def test_special_category_markers_reach_the_part3_check() -> None:
    """A Part 3 recipient's sensitive processing (s35(8): health, sex life...) needs s35(5) and a Schedule 8
    condition, also when the health data sits under a social care label."""
    refused = _refusals(_protocol(subscribers=["ppu"], source_agencies=["social_care"], event_types=[
        "social_care.assessment"], recipient_basis=["dpa2018_s31", "dpa2018_s35_2_b"],
        lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "children_act_2004_s11"],
        fields=[{"paths": ["payload.factors"], "action": "release"}]))
    assert any(r.startswith("rules[0].recipient_basis") and "dpa2018_s35_5" in r for r in refused), refused


# --- narrative -------------------------------------------------------------------------------------------------

def _narrative_rule(**extra: Any) -> dict[str, Any]:
    return _protocol(event_types=["health.clinical_finding"], source_agencies=["health"],
                     fields=[{"classifications": ["narrative"], "action": "release"}], **extra)


def test_released_narrative_is_checked_as_possibly_special_and_criminal() -> None:
    """A professional's free text can hold a diagnosis or an allegation: a rule releasing it needs an Art 9
    condition and a Schedule 1 condition (issue 19: 'narrative is not treated as possibly special and criminal')."""
    refused = _refusals(_narrative_rule(lawful_basis=["uk_gdpr_art6_1_e", "children_act_2004_s11"]))
    assert any("special category data (narrative)" in r for r in refused), refused
    assert any("criminal offence data" in r and "narrative" in r for r in refused), refused
    only_art9 = _refusals(_narrative_rule(lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_a"]))
    assert any("criminal offence data" in r for r in only_art9), only_art9
    compile_data(_narrative_rule(lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6",
                                               "children_act_2004_s11"]))


def test_a_recorded_review_of_the_narrative_lifts_the_presumption() -> None:
    review = {"statement": "The finding notes of these sources are coded summaries reviewed to hold neither.",
              "reviewed_by": "Exampleshire ICB Caldicott guardian (fictitious)", "reviewed_on": "2026-03-01"}
    p = compile_data(_narrative_rule(lawful_basis=["uk_gdpr_art6_1_e", "children_act_2004_s11"],
                                     narrative_review=review))
    assert p.rules[0].narrative_review == review
    with pytest.raises(ProtocolError):  # a review names who and when, or it is not a review
        compile_data(_narrative_rule(lawful_basis=["uk_gdpr_art6_1_e", "children_act_2004_s11"],
                                     narrative_review={"statement": review["statement"]}))


# --- intelligence apart from recorded offences -----------------------------------------------------------------

def test_intelligence_and_assessment_are_a_label_apart_from_recorded_offences() -> None:
    ppn, da = field_classes("police.public_protection_notice"), field_classes("police.domestic_abuse_notification")
    assert {ppn["payload.dash_risk"], ppn["payload.assessment"], ppn["payload.concerns[]"],
            da["payload.dash_risk"]} == {"intelligence"}
    assert {da["payload.offences[].code"], da["subject.child.pnc_id"], ppn["payload.child_role"]} == {"criminal"}


def test_releasing_recorded_offences_does_not_release_intelligence() -> None:
    """A partnership can share what was recorded (offences) without the force's risk grading, and the reverse."""
    p = compile_data(_protocol(event_types=["police.domestic_abuse_notification"], source_agencies=["police"],
                               lawful_basis=["uk_gdpr_art6_1_e", "dpa2018_sch1_para6", "dpa2018_s36_4",
                                             "children_act_2004_s11"],
                               fields=[{"classifications": ["identity", "criminal"], "action": "release"}]))
    event = make_event("police.domestic_abuse_notification", "police",
                       {"incident_reference": "TEST/0001", "offences": [{"code": "TEST-OFF"}], "dash_risk": "high"},
                       risk="high", categories=("domestic_abuse",))
    d = decide(p, event, "hub")
    assert "payload.offences[].code" in d.released and "payload.dash_risk" in d.withheld


def test_releasing_intelligence_needs_a_schedule_1_condition() -> None:
    """Intelligence relates to alleged offences, which is criminal offence data (Art 10; ICO guidance)."""
    refused = _refusals(_protocol(event_types=["police.public_protection_notice"], source_agencies=["police"],
                                  lawful_basis=["uk_gdpr_art6_1_e", "dpa2018_s36_4", "children_act_2004_s11"],
                                  fields=[{"paths": ["payload.dash_risk"], "action": "release"}]))
    assert any("criminal offence data" in r and "intelligence" in r for r in refused), refused
