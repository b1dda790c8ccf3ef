"""The four kinds of "consent", each as the law has it, per data subject (broker/policy/README.md, Consent and
objections). Written from the law, not from the engine: each test fails on the old per-child status/objection model.

- UK GDPR Art 6(1), Art 7: data protection consent matters only where consent is the basis.
- UK GDPR Art 21(1): an objection to processing under 6(1)(e) stops it unless a person records compelling grounds;
  a legal obligation (6(1)(c)) is not reached by it.
- A consensual service (early help) works only with the family's agreement, whatever the data protection basis.
- The common-law duty of confidence: health information shared under no statute needs consent, or a public-interest
  judgement (a recorded human decision); within individual care, consent is implied (NDG / Caldicott principle 7).
- A related person's wishes cover that person's data, not the child's.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from broker.policy import ConsentState, decide, release, run_protocol_tests
from broker.policy.consent import ConsentRecord
from broker.policy.facts import CaseFacts
from tests.policy.conftest import PARENT, SECRETS, base_protocol, compile_data, make_event

KEY = b"k" * 32
OTHER_PARENT: dict[str, Any] = {"role": "parent", "person": {"given_names": ["Otherparent"], "family_name": "Example",
                                                             "local_ids": [{"system": "TEST", "value": "RP-0002"}]}}
ENQUIRY = ("social_care.section47_enquiry", "social_care", {"actual_start_date": "2026-05-01"})


def _protocol(*rules: dict[str, Any], subscribers: list[dict[str, Any]] | None = None):
    data = base_protocol()
    data["subscribers"] += subscribers or []
    data["rules"] = list(rules)
    return compile_data(data)


def _rule(rule_id: str, basis: list[str], *, who: str = "hub", types: tuple[str, ...] = ("social_care.*",),
          purpose: str = "triage", **extra: Any) -> dict[str, Any]:
    return {"id": rule_id, "description": "test", "subscribers": [who], "event_types": list(types),
            "purpose": purpose, "lawful_basis": basis,
            "fields": [{"classifications": ["identity"], "action": "release"}], **extra}


S47 = _rule("hub-s47", ["uk_gdpr_art6_1_e", "children_act_1989_s47"])
S47_9 = _rule("hub-s47-9", ["uk_gdpr_art6_1_c", "children_act_1989_s47_9"], types=("social_care.section47_enquiry",),
              conditions={"s47_request": True})
CALLED_UPON = CaseFacts(s47_requested_of=frozenset({"la"}))  # the test events' source partner was asked to assist


# --- data protection consent (Art 6(1)(a), Art 7) ------------------------------------------------------------------

@pytest.mark.parametrize("status", ["refused", "withdrawn"])
def test_a_refused_data_protection_consent_does_not_block_a_public_task_share(status) -> None:
    """Under public task a refusal of consent has no legal effect on the lawful basis: the s47 share goes ahead."""
    d = decide(_protocol(S47), make_event(*ENQUIRY), "hub", consent=ConsentState(status, recorded_on="2026-05-01"))
    assert d.outcome == "deliver" and d.rule_id == "hub-s47"
    assert d.human_decision is None and d.consent_override is None  # nothing to refer, nothing set aside


def test_data_protection_consent_is_honoured_where_consent_is_the_basis() -> None:
    p = _protocol(_rule("help", ["consent"], who="helper", purpose="support"))
    event = make_event(*ENQUIRY)
    assert decide(p, event, "helper", consent=ConsentState("given")).outcome == "deliver"
    withdrawn = decide(p, event, "helper", consent=ConsentState("withdrawn"))
    assert withdrawn.outcome == "withhold" and "honoured" in withdrawn.reason and withdrawn.human_decision is None


# --- the Art 21 objection --------------------------------------------------------------------------------------------

def test_an_objection_under_public_task_goes_to_a_recorded_human_decision() -> None:
    objection = ConsentState(records=[ConsentRecord("objection", "raised", recorded_on="2026-05-02")])
    d = decide(_protocol(S47), make_event(*ENQUIRY), "hub", consent=objection)
    assert d.outcome == "withhold" and d.human_decision is not None
    assert (d.human_decision.rule_id, d.human_decision.restriction) == ("hub-s47", "objection")


def test_an_objection_does_not_reach_a_duty_to_disclose_and_the_override_is_recorded() -> None:
    objection = ConsentState(records=[ConsentRecord("objection", "raised", recorded_on="2026-05-02")])
    d = decide(_protocol(S47_9), make_event(*ENQUIRY), "hub", consent=objection, facts=CALLED_UPON)
    assert d.outcome == "deliver" and d.consent_override.restriction == "objection"
    assert d.consent_override.gateway == "children_act_1989_s47_9"


def test_a_lifted_objection_no_longer_stops_the_share() -> None:
    lifted = ConsentState(records=[ConsentRecord("objection", "lifted", recorded_on="2026-05-09")])
    assert decide(_protocol(S47), make_event(*ENQUIRY), "hub", consent=lifted).outcome == "deliver"


# --- agreement to a consensual service -------------------------------------------------------------------------------

def test_a_consensual_service_needs_the_familys_agreement_whatever_its_basis() -> None:
    """Early help is consensual: a rule flagged requires_service_agreement applies only with agreement given; its
    data protection basis (public task here) is a separate question."""
    p = _protocol(_rule("early-help", ["uk_gdpr_art6_1_e", "children_act_1989_s17"], who="helper", purpose="support",
                        requires_service_agreement=True))
    event = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-04"})
    assert "agreement to it is unknown" in decide(p, event, "helper").reason
    agreed = ConsentState(records=[ConsentRecord("service_agreement", "given"),
                                   ConsentRecord("data_protection", "refused")])  # no effect under public task
    assert decide(p, event, "helper", consent=agreed).outcome == "deliver"
    left = decide(p, event, "helper", consent=ConsentState(records=[ConsentRecord("service_agreement", "withdrawn")]))
    assert left.outcome == "withhold" and "withdrawn: honoured" in left.reason and left.human_decision is None
    # and a data protection consent alone is not agreement to the service
    assert decide(p, event, "helper", consent=ConsentState("given")).outcome == "withhold"


# --- consent under the common-law duty of confidence ---------------------------------------------------------------

FLAG = ("health.safeguarding_flag", "health", {"code": {"code": "000000"}})
HEALTH_CARE = ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h", "dpa2018_sch1_para2"]  # no statute: confidence governs
SOCIAL_WORKER = {"name": "csc_worker", "partner": "la", "role": "social_worker", "purposes": ["care"],
                 "public_key": "A" * 43 + "=", "key_suite": "x25519", "delivery": "kafka",
                 "confidentiality": "social_work_professional"}


def _health_protocol(basis: list[str]):
    return _protocol(_rule("health-care", basis, who="gp_one", types=("health.*",), purpose="care"),
                     _rule("health-social", basis, who="csc_worker", types=("health.*",), purpose="care"),
                     subscribers=[copy.deepcopy(SOCIAL_WORKER)])


def test_health_data_under_no_statute_without_confidentiality_consent_is_a_public_interest_decision() -> None:
    p, flag = _health_protocol(HEALTH_CARE), make_event(*FLAG)
    # within individual care by a health professional, consent is implied
    assert decide(p, flag, "gp_one").outcome == "deliver"
    # to anyone else, without consent, disclosure is a public-interest judgement for a person
    d = decide(p, flag, "csc_worker")
    assert d.outcome == "withhold" and d.human_decision.restriction == "confidentiality_unknown"
    given = ConsentState(records=[ConsentRecord("confidentiality", "given")])
    assert decide(p, flag, "csc_worker", consent=given).outcome == "deliver"
    refused = ConsentState(records=[ConsentRecord("confidentiality", "refused")])
    d = decide(p, flag, "gp_one", consent=refused)  # an explicit refusal ends implied consent too
    assert d.outcome == "withhold" and d.human_decision.restriction == "confidentiality_refused"


def test_a_statutory_provision_takes_the_share_out_of_the_confidentiality_question() -> None:
    p = _health_protocol([*HEALTH_CARE, "children_act_2004_s11"])
    refused = ConsentState(records=[ConsentRecord("confidentiality", "refused")])
    assert decide(p, make_event(*FLAG), "csc_worker", consent=refused).outcome == "deliver"


# --- related people: their wishes, their data -------------------------------------------------------------------------

def _released(p, event, consent: ConsentState, who: str = "hub") -> tuple[Any, dict[str, Any]]:
    d = decide(p, event, who, consent=consent, facts=CALLED_UPON)
    assert d.outcome == "deliver", d.reason
    return d, release(event, d, mask_key=KEY)


def test_a_parents_objection_withholds_the_parents_data_not_the_childs() -> None:
    parent = copy.deepcopy(PARENT)
    parent["person"]["local_ids"] = [{"system": "TEST", "value": "RP-0001"}]  # told apart from the other by id
    event = make_event(*ENQUIRY, related=[parent, OTHER_PARENT])
    parent_objects = ConsentState(records=[ConsentRecord("objection", "raised", "parent", "RP-0002")])
    d, view = _released(_protocol(S47), event, parent_objects)
    assert d.people_withheld == (1,) and "related_people[1]" in d.reason
    assert view["subject"]["child"]["family_name"] == "Example"  # the child's data still goes
    names = [p["person"]["given_names"] for p in view["subject"]["related_people"]]
    assert names == [["Testparent"]]  # the objecting parent is gone, the other stays
    assert "RP-0002" not in d.reason and not [s for s in SECRETS if s in d.reason]


def test_an_objection_for_a_role_without_a_ref_covers_everyone_in_that_role() -> None:
    event = make_event(*ENQUIRY, related=[PARENT, OTHER_PARENT])
    d, view = _released(_protocol(S47), event, ConsentState(records=[ConsentRecord("objection", "raised", "parent")]))
    assert d.people_withheld == (0, 1) and "related_people" not in view["subject"]


def test_a_related_persons_objection_is_set_aside_only_by_a_duty_to_disclose() -> None:
    event = make_event(*ENQUIRY)
    d, view = _released(_protocol(S47_9), event, ConsentState(records=[ConsentRecord("objection", "raised", "parent")]))
    assert d.people_withheld == () and view["subject"]["related_people"][0]["person"]["family_name"] == "Example"


def test_a_related_persons_refused_consent_matters_only_under_a_consent_rule() -> None:
    refused = ConsentState("given", records=None)
    refused = ConsentState(records=[*refused.records, ConsentRecord("data_protection", "refused", "parent")])
    event = make_event(*ENQUIRY)
    d, _ = _released(_protocol(S47), event, refused)
    assert d.people_withheld == ()  # public task: no effect
    d, view = _released(_protocol(_rule("help", ["consent"], who="helper", purpose="support")), event, refused,
                        "helper")
    assert d.people_withheld == (0,) and "related_people" not in view["subject"]


def test_the_events_own_records_count_and_the_stricter_side_wins() -> None:
    """An agency's record of a victim's objection arrives in the event: it binds though the register is silent."""
    victim = {"role": "victim", "person": {"given_names": ["Testvictim"], "family_name": "Example"}}
    event = make_event(*ENQUIRY, related=[PARENT, victim],
                       consent={"status": "not_sought",
                                "records": [{"kind": "objection", "state": "raised", "subject": "victim"}]})
    d, view = _released(_protocol(S47), event, ConsentState("given"))
    assert d.people_withheld == (1,)
    assert [p["person"]["given_names"] for p in view["subject"]["related_people"]] == [["Testparent"]]


def test_embedded_protocol_tests_take_the_records_form() -> None:
    data = base_protocol()
    data["rules"] = [S47]
    data["tests"] = [{"name": "parent objects", "subscriber": "hub",
                      "consent": {"records": [{"kind": "objection", "state": "raised", "subject": "parent"}]},
                      "event": {"event_type": "social_care.section47_enquiry", "source": {"agency": "social_care"},
                                "subject": {"child": {"family_name": "Example"},
                                            "related_people": [{"role": "parent", "person": {"family_name": "X"}}]}},
                      "expect": {"outcome": "deliver", "reason_contains": "related_people[0]"}},
                     {"name": "an objection is never given", "subscriber": "hub",
                      "consent": {"records": [{"kind": "objection", "state": "given"}]},
                      "event": {"event_type": "social_care.section47_enquiry"}, "expect": {"outcome": "deliver"}}]
    results = run_protocol_tests(compile_data(data))
    assert results[0].passed, results[0].failures
    assert not results[1].passed and "objection record's state" in results[1].failures[0]
