"""Recorded human decisions, the pure part (broker/policy/referral.py): who may decide, what a decision may say,
what a share in part releases, and that both audit records the decision makes are schema-valid and value-free."""

from __future__ import annotations

import json

import pytest

from broker.audit import AuditRecordError, audit_record
from broker.policy import ConsentState, PolicyError, decide
from broker.policy.referral import (
    Withholding,
    deciders,
    human_decision_id,
    human_decision_record,
    person_decision,
    reason_problem,
    withholding_problems,
)
from tests.policy.conftest import SECRETS, base_protocol, compile_data, make_event

T = "2026-05-04T10:00:00Z"
TOKEN = "lt1_" + "B" * 32


def _protocol(**changes):
    data = base_protocol()
    data["partners"].append({"id": "force", "name": "Test Police", "agency": "police",
                             "role": "safeguarding_partner"})
    data["rules"][0]["fields"] = [
        {"paths": ["subject.child.nhs_number"], "action": "mask", "mask": "keyed_hash"},
        {"classifications": ["identity", "social_care", "criminal"], "action": "release"}]
    for key, value in changes.items():
        data[key] = value
    return compile_data(data)


def _assessment():
    return make_event("social_care.assessment", "social_care", {"actual_start_date": "2026-05-01"})


def _referred():
    p = _protocol()
    d = decide(p, _assessment(), "hub", consent=ConsentState(objection=True, recorded_on="2026-04-20"))
    assert d.outcome == "withhold" and d.human_decision is not None
    return p, d


@pytest.mark.parametrize("reason", ["NHS 9434765919", "nhs 943 476 5919 seen", "ref 943-476-5919",
                                    "from a.parent@example.org", "two\nlines", "tab\there", "", "   ", "x" * 2001])
def test_a_reason_that_could_carry_a_value_is_refused_without_quoting_it(reason: str) -> None:
    problem = reason_problem(reason)
    assert problem is not None
    assert "9434765919" not in problem and "5919" not in problem and "example.org" not in problem


def test_a_plain_reason_is_accepted() -> None:
    assert reason_problem("compelling grounds: risk of significant harm outweighs the objection (s47 meeting)") \
        is None


def test_deciders_are_the_hub_partner_and_the_owning_agencys_safeguarding_partner() -> None:
    p = _protocol()
    assert deciders(p, "police") == ("force", "la")  # the hub (la hosts mash_hub) and the force for its own data
    assert deciders(p, "social_care") == ("la",)
    assert deciders(p, "health") == ("la",)  # the GP is a relevant agency, not a safeguarding partner
    no_hub = base_protocol()
    for sub in no_hub["subscribers"]:
        sub["role"] = "other_role" if sub["role"] == "mash_hub" else sub["role"]
    assert deciders(compile_data(no_hub), "education") == ("la",)  # no hub: the LA safeguarding partner


def test_the_referred_decision_record_names_the_referral_and_is_schema_valid() -> None:
    _, d = _referred()
    record = audit_record("decision", time=T, actor="share", subject=TOKEN,
                          **{k: v for k, v in d.to_record().items() if v is not None})
    assert record["human_decision"] == {"status": "referred", "rule_id": "hub-identity", "restriction": "objection",
                                        "recorded_on": "2026-04-20", "basis": list(d.human_decision.basis)}


def test_share_releases_what_the_rule_would_and_share_in_part_withholds_what_the_person_named() -> None:
    p, referred = _referred()
    event = _assessment()
    unobjected = decide(p, event, "hub")
    did = human_decision_id(referred.decision_id)
    whole = person_decision(p, event, subscriber="hub", rule_id="hub-identity", decision_id=did, choice="share")
    assert (whole.released, whole.masked, whole.withheld) == \
        (unobjected.released, unobjected.masked, unobjected.withheld)
    assert whole.outcome == "deliver" and whole.decision_id == did and whole.lawful_basis == unobjected.lawful_basis

    part = person_decision(p, event, subscriber="hub", rule_id="hub-identity", decision_id=did,
                           choice="share_in_part",
                           withholding=Withholding(("social_care",), ("subject.child.nhs_number",
                                                                      "subject.child.given_names")))
    assert "subject.child.nhs_number" in part.withheld and "subject.child.nhs_number" not in dict(part.masked)
    assert "subject.child.given_names[]" in part.withheld  # a path covers the list items below it
    assert "payload.actual_start_date" in part.withheld  # social_care, by classification
    assert "subject.child.family_name" in part.released
    assert set(part.released) | set(dict(part.masked)) | set(part.withheld) == \
        set(whole.released) | set(dict(whole.masked)) | set(whole.withheld)  # nothing appears, nothing is lost


def test_a_rule_gone_from_the_protocol_is_never_shared_under() -> None:
    p, _ = _referred()
    with pytest.raises(PolicyError, match="protocol changed"):
        person_decision(p, _assessment(), subscriber="hub", rule_id="hub-gone", decision_id="x", choice="share")
    with pytest.raises(PolicyError):
        person_decision(p, _assessment(), subscriber="hub", rule_id="hub-identity", decision_id="x",
                        choice="withhold")


def test_what_a_decision_may_name_is_checked_by_position_never_quoting_it() -> None:
    kind = "social_care.assessment"
    assert withholding_problems(kind, "share", Withholding()) == []
    assert withholding_problems(kind, "share_in_part", Withholding(("health",))) == []
    assert withholding_problems(kind, "share_in_part", Withholding(paths=("subject.related_people",))) == []
    assert withholding_problems(kind, "share_in_part", Withholding()) != []
    assert withholding_problems(kind, "withhold", Withholding(("health",))) != []
    assert withholding_problems(kind, "override", Withholding()) != []
    bad = withholding_problems(kind, "share_in_part", Withholding(("Testchild",), ("subject.child.9990000018",)))
    assert [b.split(":")[0] for b in bad] == ["withhold_classifications[0]", "withhold_paths[0]"]
    assert not any(s in json.dumps(bad) for s in SECRETS)


def test_the_person_decision_record_is_schema_valid_and_refuses_a_reason_with_values() -> None:
    _, referred = _referred()
    hd = human_decision_record(referral_id=referred.decision_id, choice="share_in_part", restriction="objection",
                               recorded_on="2026-04-20", basis=referred.human_decision.basis,
                               decided_by_partners=["la"], withholding=Withholding(("health",), ("payload",)))
    common = {"time": T, "actor": "decision_maker:la:k_ab12cd34ef56", "subject": TOKEN, "subscriber": "hub",
              "event_id": referred.event_id, "decision_id": human_decision_id(referred.decision_id),
              "outcome": "deliver", "rule_id": "hub-identity", "human_decision": hd}
    record = audit_record("human_decision", reason="compelling grounds shown", **common)
    assert record["human_decision"]["withheld_paths"] == ["payload"]
    with pytest.raises(AuditRecordError):
        audit_record("human_decision", reason="told by a.parent@example.org", **common)
    with pytest.raises(AuditRecordError):  # the person's reason is required on the record
        audit_record("human_decision", **common)


def test_a_persons_share_about_the_childs_objection_still_leaves_out_a_parent_who_objected() -> None:
    """A decision weighs the objection it was referred for; a related person's own objection still withholds their
    data, as the engine would."""
    from broker.policy.consent import ConsentRecord
    from broker.policy.release import release

    p, _ = _referred()
    event = _assessment()
    parent = ConsentState(records=[ConsentRecord("objection", "raised", "parent")])
    d = person_decision(p, event, subscriber="hub", rule_id="hub-identity", decision_id="d", choice="share",
                        consent=parent)
    assert d.people_withheld == (0,)
    view = release(event, d, mask_key=b"k" * 32)
    assert "related_people" not in view["subject"] and view["subject"]["child"]["family_name"] == "Example"
