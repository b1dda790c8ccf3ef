"""The lawful-basis model, written from the law: each code's citation and kind, one vocabulary with the event
schema, every compile check refusing a legal error with the provision it rests on, and how objections meet duties
and powers in the engine. Each test names what UK GDPR or the DPA 2018 requires; none of them held under protocol
language 1.0 (checked against the previous commit's model)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from broker.policy import ConsentState, ProtocolError, decide
from broker.policy.codes import (
    ALIASES,
    BASES,
    BY_CODE,
    DUTY_TO_COOPERATE,
    DUTY_TO_DISCLOSE,
    KINDS,
    POWER,
    STATUTE,
    codes_of_event_basis,
    event_schema_vocabulary,
)
from broker.schema.loader import load_schema
from tests.conftest import ROOT
from tests.policy.conftest import compile_data, make_event

KEY = "A" * 43 + "="


def _protocol(**rule: Any) -> dict[str, Any]:
    """A partnership of the four agencies; one rule, varied by the test."""
    sub = {"public_key": KEY, "key_suite": "x25519", "delivery": "kafka"}
    base_rule = {"id": "r", "description": "test rule", "subscribers": ["hub"], "event_types": ["social_care.referral"],
                 "purpose": "work", "lawful_basis": ["uk_gdpr_art6_1_e", "children_act_1989_s17"],
                 # identity only: social care fields can hold special category and criminal offence data (risk
                 # categories, needs, roles: schema markers), which the tests of those checks release on purpose
                 "fields": [{"classifications": ["identity"], "action": "release"}]}
    return copy.deepcopy({
        "protocol": {"id": "law-isp", "version": "1", "title": "Law tests", "effective_from": "2026-01-01"},
        "purposes": {"work": "Safeguarding work"},
        "partners": [{"id": "la", "name": "LA", "agency": "social_care", "role": "safeguarding_partner"},
                     {"id": "trust", "name": "Trust", "agency": "health", "role": "safeguarding_partner"},
                     {"id": "force", "name": "Force", "agency": "police", "role": "safeguarding_partner"},
                     {"id": "school", "name": "School", "agency": "education", "role": "relevant_agency"}],
        "subscribers": [
            {"name": "hub", "partner": "la", "role": "mash_hub", "purposes": ["work"], **sub},
            {"name": "gp_one", "partner": "trust", "role": "gp_practice", "purposes": ["work"],
             "confidentiality": "health_professional", **sub},
            {"name": "nurse", "partner": "trust", "role": "school_nurse", "purposes": ["work"], **sub},
            {"name": "ppu", "partner": "force", "role": "police_ppu", "purposes": ["work"], "regime": "dpa2018_part3",
             **sub},
            {"name": "dsl", "partner": "school", "role": "school_dsl", "purposes": ["work"], **sub},
        ],
        "rules": [{**base_rule, **rule}],
    })


def _refusals(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ProtocolError) as info:
        compile_data(data)
    return [(p.path, p.reason) for p in info.value.problems]


HEALTH = [{"classifications": ["identity", "health"], "action": "release"}]
CRIMINAL = [{"classifications": ["identity", "criminal"], "action": "release"}]
FLAG = "health.safeguarding_flag"

# (what the law requires, the rule or protocol change, where the refusal sits, words it must contain)
REFUSED = [
    ("Art 9(2)(h) needs Sch 1 para 2 (DPA 2018 s10(2))",
     _protocol(subscribers=["gp_one"], event_types=[FLAG], source_agencies=["health"], fields=HEALTH,
               lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h"]),
     "rules[0].lawful_basis", "uk_gdpr_art9_2_h needs DPA 2018 Schedule 1 paragraph 2"),
    ("Art 9(2)(h) needs a recipient under a duty of confidentiality (DPA 2018 s11(1), Art 9(3))",
     _protocol(subscribers=["nurse"], event_types=[FLAG], source_agencies=["health"], fields=HEALTH,
               lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h", "dpa2018_sch1_para2"]),
     "rules[0].subscribers", "give nurse a confidentiality"),
    ("Art 9(2)(h) serves health or social care processing, not a police disclosure",
     _protocol(subscribers=["gp_one"], event_types=["police.domestic_abuse_notification"], fields=HEALTH,
               lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h", "dpa2018_sch1_para2", "dpa2018_s36_4",
                             "children_act_2004_s11"]),
     "rules[0].source_agencies", "uk_gdpr_art9_2_h serves health or social care"),
    ("Art 9(2)(g) needs a Sch 1 Part 2 condition (s10(3))",
     _protocol(event_types=[FLAG], fields=HEALTH, lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g",
                                                                  "dpa2018_sch1_para2", "children_act_1989_s17"]),
     "rules[0].lawful_basis", "uk_gdpr_art9_2_g needs a DPA 2018 Schedule 1 Part 2 condition (s10(3))"),
    ("Art 9(2)(b) needs Sch 1 para 1",
     _protocol(event_types=[FLAG], fields=HEALTH, lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_b"]),
     "rules[0].lawful_basis", "uk_gdpr_art9_2_b needs DPA 2018 Schedule 1 paragraph 1"),
    ("special category data needs an Art 9 condition",
     _protocol(event_types=[FLAG], fields=HEALTH, lawful_basis=["uk_gdpr_art6_1_e", "children_act_1989_s17"]),
     "rules[0].lawful_basis", "releases special category data (health): cite a UK GDPR Art 9(2) condition"),
    ("criminal offence data on consent needs Sch 1 para 29, not Art 6(1)(a)",
     _protocol(fields=CRIMINAL, lawful_basis=["uk_gdpr_art6_1_a"]),
     "rules[0].lawful_basis", "consent to it is DPA 2018 Schedule 1 paragraph 29, not Art 6(1)(a)"),
    ("criminal offence data needs a Sch 1 condition (Art 10, s10(5))",
     _protocol(event_types=["police.domestic_abuse_notification"], fields=CRIMINAL,
               lawful_basis=["uk_gdpr_art6_1_e", "dpa2018_s36_4", "children_act_2004_s11"]),
     "rules[0].lawful_basis", "releases criminal offence data (UK GDPR Art 10): cite a DPA 2018 Schedule 1"),
    ("police data reused outside law enforcement needs s36(4) authority",
     _protocol(event_types=["police.incident_child_present"], lawful_basis=["uk_gdpr_art6_1_e",
                                                                              "children_act_2004_s11"]),
     "rules[0].lawful_basis", "only where authorised by law (DPA 2018 s36(4))"),
    ("s36(4) needs the provision that authorises the reuse",
     _protocol(event_types=["police.incident_child_present"], lawful_basis=["uk_gdpr_art6_1_e", "dpa2018_s36_4"]),
     "rules[0].lawful_basis", "cite dpa2018_s36_4 and the provision that authorises it"),
    ("a person.* rule may carry a police record (person.linked): s36(4) again",
     _protocol(event_types=["person.*"], lawful_basis=["uk_gdpr_art6_1_e", "children_act_1989_s17"]),
     "rules[0].lawful_basis", "DPA 2018 s36(4)"),
    ("para 18 covers a child or an adult at risk only (para 18(1)(b))",
     _protocol(event_types=[FLAG], source_agencies=["health"], fields=HEALTH, para18_reason="consent_cannot_be_given",
               lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para18", "children_act_2004_s11"]),
     "rules[0].conditions", "covers a child or an adult at risk (Sch 1 para 18(1)(b)"),
    ("para 18 needs the reason consent is not the basis (para 18(2))",
     _protocol(event_types=[FLAG], source_agencies=["health"], fields=HEALTH, conditions={"subject_under_18": True},
               lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para18", "children_act_2004_s11"]),
     "rules[0].para18_reason", "for a reason in para 18(2): record it with para18_reason"),
    ("para 18 is processing without consent: never with a consent rule",
     _protocol(event_types=[FLAG], source_agencies=["health"], fields=HEALTH, conditions={"subject_under_18": True},
               para18_reason="consent_cannot_be_given",
               lawful_basis=["consent", "uk_gdpr_art9_2_g", "dpa2018_sch1_para18"]),
     "rules[0].lawful_basis", "covers processing without consent (para 18(1)(c))"),
    ("a Part 3 recipient names its own basis",
     _protocol(subscribers=["ppu"], lawful_basis=["uk_gdpr_art6_1_e", "children_act_2004_s11"]),
     "rules[0].recipient_basis", "processes under DPA 2018 Part 3 (law enforcement)"),
    ("a Part 3 recipient relies on s35, not Art 6",
     _protocol(subscribers=["ppu"], lawful_basis=["uk_gdpr_art6_1_e", "children_act_2004_s11"],
               recipient_basis=["uk_gdpr_art6_1_e", "dpa2018_s31", "dpa2018_s35_2_b"]),
     "rules[0].recipient_basis", "a competent authority processing for the law enforcement purposes relies on s35"),
    ("sensitive processing under Part 3 needs s35(5) and a Sch 8 condition",
     _protocol(subscribers=["ppu"], event_types=[FLAG], source_agencies=["health"], fields=HEALTH,
               conditions={"subject_under_18": True}, para18_reason="consent_would_prejudice_protection",
               lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para10", "dpa2018_sch1_para18",
                             "crime_and_disorder_act_1998_s115"],
               recipient_basis=["dpa2018_s31", "dpa2018_s35_2_b"]),
     "rules[0].recipient_basis", "cite dpa2018_s35_5 and one of"),
    ("police processing for law enforcement is Part 3 (s31, s35(2)(b))",
     _protocol(subscribers=["ppu"], event_types=["police.domestic_abuse_notification"], source_agencies=["police"],
               fields=CRIMINAL, lawful_basis=["uk_gdpr_art6_1_e"], recipient_basis=["dpa2018_s31", "dpa2018_s35_2_b"]),
     "rules[0].lawful_basis", "processing for the law enforcement purposes is under DPA 2018 Part 3"),
    ("Part 3 codes where nothing is law enforcement processing",
     _protocol(lawful_basis=["uk_gdpr_art6_1_e", "children_act_1989_s17", "dpa2018_s35_2_b"]),
     "rules[0].lawful_basis", "but no part of the rule is law enforcement processing"),
    ("one rule, one regime",
     _protocol(subscribers=["hub", "ppu"], lawful_basis=["uk_gdpr_art6_1_e", "children_act_2004_s11"],
               recipient_basis=["dpa2018_s31", "dpa2018_s35_2_b"]),
     "rules[0].subscribers", "write one rule per regime"),
    ("Art 6(1)(c) needs the law imposing the obligation (Art 6(3)); s11 is a duty to co-operate",
     _protocol(lawful_basis=["uk_gdpr_art6_1_c", "children_act_2004_s11"]),
     "rules[0].lawful_basis", "uk_gdpr_art6_1_c (legal obligation) needs the law that imposes it (Art 6(3))"),
    ("a duty to disclose is a legal obligation, Art 6(1)(c), not public task",
     _protocol(source_agencies=["social_care"], lawful_basis=["uk_gdpr_art6_1_e", "children_act_1989_s47_9"]),
     "rules[0].lawful_basis", "is a legal obligation: cite uk_gdpr_art6_1_c"),
    ("s47(9) binds only the bodies in s47(11): not the police",
     _protocol(event_types=["police.incident_child_present"],
               lawful_basis=["uk_gdpr_art6_1_c", "children_act_1989_s47_9", "dpa2018_s36_4"]),
     "rules[0].source_agencies", "binds only the bodies in s47(11)"),
    ("s47(9) is a duty to assist the local authority: not a school",
     _protocol(subscribers=["dsl"], source_agencies=["health"], event_types=[FLAG], fields=HEALTH,
               lawful_basis=["uk_gdpr_art6_1_c", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "children_act_1989_s47_9"]),
     "rules[0].subscribers", "only the local authority may receive under it"),
    ("s49A binds chief officers of police",
     _protocol(subscribers=["dsl"], event_types=["social_care.referral"], conditions={"subject_under_18": True},
               lawful_basis=["uk_gdpr_art6_1_c", "domestic_abuse_act_2021_s49a"]),
     "rules[0].source_agencies", "binds chief officers of police"),
    ("s49A notifies the child's school, nobody else",
     _protocol(subscribers=["hub"], event_types=["police.domestic_abuse_notification"], source_agencies=["police"],
               conditions={"subject_under_18": True},
               lawful_basis=["uk_gdpr_art6_1_c", "domestic_abuse_act_2021_s49a", "dpa2018_s36_4"]),
     "rules[0].subscribers", "only education subscribers may receive under it"),
    ("s49A concerns a child (s49A(4))",
     _protocol(subscribers=["dsl"], event_types=["police.domestic_abuse_notification"], source_agencies=["police"],
               lawful_basis=["uk_gdpr_art6_1_c", "domestic_abuse_act_2021_s49a", "dpa2018_s36_4"]),
     "rules[0].conditions", "concerns a child (under 18, s49A(4))"),
    ("s251B is between health and adult social care bodies",
     _protocol(subscribers=["hub"], event_types=[FLAG], source_agencies=["health"], fields=HEALTH,
               lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6",
                             "health_and_social_care_act_2012_s251b"]),
     "rules[0].lawful_basis", "health_and_social_care_act_2012_s251b is a duty between health"),
]


@pytest.mark.parametrize(("requirement", "data", "where", "words"), REFUSED, ids=[r[0] for r in REFUSED])
def test_compile_refuses_a_legal_error_citing_the_provision(requirement, data, where, words) -> None:
    found = _refusals(data)
    assert any(path == where and words in reason for path, reason in found), found


def test_a_police_subscriber_must_say_which_regime_it_processes_under() -> None:
    data = _protocol()
    del data["subscribers"][3]["regime"]
    assert any(path == "subscribers[3]" and "say which with regime" in reason for path, reason in _refusals(data))


@pytest.mark.parametrize(("why", "rule"), [
    ("9(2)(g) with para 6 (statutory purposes), not only para 18",
     {"event_types": [FLAG], "fields": HEALTH,
      "lawful_basis": ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "children_act_1989_s17"]}),
    ("9(2)(g) with para 10 for a disclosure to the police",
     {"subscribers": ["ppu"], "event_types": [FLAG], "source_agencies": ["health"], "fields": HEALTH,
      "lawful_basis": ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para10",
                       "crime_and_disorder_act_1998_s115"],
      "recipient_basis": ["dpa2018_s31", "dpa2018_s35_2_b", "dpa2018_s35_5", "dpa2018_sch8_para1"]}),
    ("criminal offence data on para 6: any Sch 1 condition serves Art 10",
     {"event_types": ["police.domestic_abuse_notification"], "fields": CRIMINAL,
      "lawful_basis": ["uk_gdpr_art6_1_e", "dpa2018_sch1_para6", "dpa2018_s36_4", "children_act_2004_s11"]}),
    ("criminal offence data (a parent's PNC id) on consent with para 29",
     {"fields": CRIMINAL, "lawful_basis": ["uk_gdpr_art6_1_a", "dpa2018_sch1_para29"]}),
    ("Operation Encompass: s49A with Art 6(1)(c) and s36(4), police to the child's school",
     {"subscribers": ["dsl"], "event_types": ["police.domestic_abuse_notification"], "source_agencies": ["police"],
      "conditions": {"subject_under_18": True},
      "lawful_basis": ["uk_gdpr_art6_1_c", "dpa2018_s36_4", "domestic_abuse_act_2021_s49a"]}),
    ("9(2)(h) with para 2 to a recipient under a duty of confidence",
     {"subscribers": ["gp_one"], "event_types": [FLAG], "source_agencies": ["health"], "fields": HEALTH,
      "lawful_basis": ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h", "dpa2018_sch1_para2",
                       "health_and_social_care_act_2012_s251b"]}),
])
def test_compile_accepts_what_the_law_allows(why, rule) -> None:
    assert compile_data(_protocol(**rule)).rules[0].id == "r"


def test_every_refusal_cites_a_provision() -> None:
    """A plain message a DPO can check: each names an Article, a section, a Schedule or a paragraph."""
    cites = re.compile(r"Art \d|\bs\d+|Schedule \d|Sch \d|para(graph)? \d|s47\(11\)|s49A|regime|s251B|s11\(1\)")
    for _, data, _, _ in REFUSED:
        for _, reason in _refusals(data):
            assert cites.search(reason) or "cite " in reason, reason


# --- the vocabulary -----------------------------------------------------------------------------------------------

def test_the_event_schema_lawful_basis_vocabulary_is_codes_py() -> None:
    block = load_schema()["properties"]["lawful_basis"]["properties"]
    vocabulary = event_schema_vocabulary()
    assert set(block) == set(vocabulary)
    for name, prop in block.items():
        enum = prop.get("enum") or prop["items"]["enum"]
        assert set(enum) == vocabulary[name], name


def test_every_code_cites_legislation_gov_uk_and_every_statute_is_marked() -> None:
    for b in BASES:
        assert b.citation.startswith("https://www.legislation.gov.uk/"), b.code
        if b.group == STATUTE:
            assert b.kind in KINDS, b.code
        assert not b.overrides_objection or b.kind == DUTY_TO_DISCLOSE, b.code
    kinds = {b.code: b.kind for b in BASES if b.group == STATUTE}
    assert {c for c, k in kinds.items() if k == DUTY_TO_DISCLOSE} == {
        "children_act_1989_s47_9", "domestic_abuse_act_2021_s49a", "health_and_social_care_act_2012_s251b"}
    assert {c for c, k in kinds.items() if k == DUTY_TO_COOPERATE} == {
        "children_act_2004_s10", "children_act_2004_s11", "education_act_2002_s175", "education_act_2002_s157"}
    assert {c for c, k in kinds.items() if k == POWER} == {
        "children_act_1989_s17", "children_act_1989_s47", "crime_and_disorder_act_1998_s115",
        "education_act_1996_s436a"}
    # s251B(4): the duty does not apply where the individual objects, so it never overrides an objection
    assert {b.code for b in BASES if b.overrides_objection} == {"children_act_1989_s47_9",
                                                                  "domestic_abuse_act_2021_s49a"}
    assert BY_CODE["dpa2018_sch1_para18"].citation == \
        "https://www.legislation.gov.uk/ukpga/2018/12/schedule/1/paragraph/18"


def test_the_readme_lists_every_code_with_its_citation_and_kind() -> None:
    readme = (ROOT / "broker" / "policy" / "README.md").read_text()
    for b in BASES:
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{b.code}` ")), None)
        assert row is not None, b.code
        assert b.citation in row, b.code
        if b.kind:
            assert b.kind.replace("_", " ") in row, b.code
    for alias in ALIASES:
        assert f"`{alias}`" in readme


def test_an_events_asserted_basis_reads_as_protocol_codes() -> None:
    from adapters.kit.events import DEFAULT_LAWFUL_BASIS

    assert codes_of_event_basis(DEFAULT_LAWFUL_BASIS["health"]) == (
        "uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h", "dpa2018_sch1_para18", "children_act_2004_s11")
    assert codes_of_event_basis({"article_6": "6(1)(c)", "dpa_2018_part_3": ["s36_4_authorised_by_law"],
                                 "statutory_gateways": ["domestic_abuse_act_2021_s49a"]}) == (
        "uk_gdpr_art6_1_c", "dpa2018_s36_4", "domestic_abuse_act_2021_s49a")


# --- objections, duties and powers in the engine --------------------------------------------------------------------

def _notification() -> dict[str, Any]:
    return make_event("police.domestic_abuse_notification", "police", {"incident_reference": "TEST/0009"},
                      risk="high", categories=("domestic_abuse",))


def test_operation_encompass_s49a_reaches_the_school_despite_an_objection_and_records_the_duty() -> None:
    p = compile_data(_protocol(subscribers=["dsl"], event_types=["police.domestic_abuse_notification"],
                               source_agencies=["police"], conditions={"subject_under_18": True},
                               lawful_basis=["uk_gdpr_art6_1_c", "dpa2018_s36_4", "domestic_abuse_act_2021_s49a"],
                               fields=[{"classifications": ["identity"], "action": "release"}]))
    d = decide(p, _notification(), "dsl", consent=ConsentState("not_sought", objection=True, recorded_on="2026-04-02"))
    assert d.outcome == "deliver" and d.human_decision is None
    assert d.consent_override is not None and d.consent_override.gateway == "domestic_abuse_act_2021_s49a"


@pytest.mark.parametrize("basis", [
    ["uk_gdpr_art6_1_e", "crime_and_disorder_act_1998_s115"],  # a power
    ["uk_gdpr_art6_1_e", "children_act_2004_s10"],  # a duty to co-operate
    ["uk_gdpr_art6_1_e", "education_act_2002_s175"],
    ["uk_gdpr_art6_1_e", "children_act_1989_s17"],
    ["uk_gdpr_art6_1_d"],  # vital interests: an emergency judgement, case by case
])
@pytest.mark.parametrize("restriction", [ConsentState("not_sought", objection=True),
                                         ConsentState("refused", objection=True),
                                         ConsentState("given", objection=True)])
def test_no_power_or_duty_to_cooperate_overrides_an_objection_a_person_decides(basis, restriction) -> None:
    p = compile_data(_protocol(lawful_basis=basis))
    event = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-01"})
    assert decide(p, event, "hub").outcome == "deliver"
    d = decide(p, event, "hub", consent=restriction)
    assert d.outcome == "withhold" and d.consent_override is None
    assert d.human_decision is not None and d.human_decision.basis == tuple(basis)
    assert "recorded human decision" in d.reason


@pytest.mark.parametrize("basis", [
    ["uk_gdpr_art6_1_e", "crime_and_disorder_act_1998_s115"],
    ["uk_gdpr_art6_1_e", "children_act_1989_s17"],
    ["uk_gdpr_art6_1_d"],
])
@pytest.mark.parametrize("status", ["refused", "withdrawn"])
def test_a_refused_or_withdrawn_consent_has_no_effect_where_consent_is_not_the_basis(basis, status) -> None:
    """UK GDPR Art 6(1): one basis per processing. Where it is public task or vital interests, a refusal of data
    protection consent changes nothing (only an Art 21 objection does): no block, no referral, no override."""
    p = compile_data(_protocol(lawful_basis=basis))
    event = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-01"})
    d = decide(p, event, "hub", consent=ConsentState(status, recorded_on="2026-04-02"))
    assert d.outcome == "deliver" and d.human_decision is None and d.consent_override is None
    assert f"data protection consent {status} has no effect" in d.reason


def test_s251b_never_overrides_an_objection() -> None:
    p = compile_data(_protocol(subscribers=["gp_one"], event_types=[FLAG], source_agencies=["health"], fields=HEALTH,
                               lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h", "dpa2018_sch1_para2",
                                             "health_and_social_care_act_2012_s251b"]))
    flag = make_event(FLAG, "health", {"code": {"code": "000000"}}, risk="high")
    d = decide(p, flag, "gp_one", consent=ConsentState("not_sought", objection=True))
    assert d.outcome == "withhold" and d.human_decision is not None


def _para18_rule(*extra: str) -> dict[str, Any]:
    return _protocol(event_types=[FLAG], source_agencies=["health"], fields=HEALTH,
                     conditions={"subject_under_18": True}, para18_reason="consent_would_prejudice_protection",
                     lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para18",
                                   "children_act_2004_s11", *extra])


def test_para18_alone_does_not_apply_when_consent_is_given_another_condition_does() -> None:
    flag = make_event(FLAG, "health", {"code": {"code": "000000"}}, risk="high")
    alone = compile_data(_para18_rule())
    shared = decide(alone, flag, "hub", consent=ConsentState("not_sought"))
    assert shared.outcome == "deliver" and "without consent, para 18(2)(c)" in shared.reason  # the reason recorded
    given = decide(alone, flag, "hub", consent=ConsentState("given"))
    assert given.outcome == "withhold" and "covers processing without consent (para 18(1)(c))" in given.reason
    with_para6 = compile_data(_para18_rule("dpa2018_sch1_para6"))
    assert decide(with_para6, flag, "hub", consent=ConsentState("given")).outcome == "deliver"


def test_the_consent_alias_is_recorded_as_the_codes_it_stands_for() -> None:
    p = compile_data(_protocol(lawful_basis=["consent"]))
    assert p.rules[0].lawful_basis == ("uk_gdpr_art6_1_a", "uk_gdpr_art9_2_a") and p.rules[0].consent_based
    event = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-01"})
    assert decide(p, event, "hub", consent=ConsentState("given")).lawful_basis == ("uk_gdpr_art6_1_a",
                                                                                 "uk_gdpr_art9_2_a")
