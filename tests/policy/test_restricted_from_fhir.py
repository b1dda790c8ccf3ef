"""A PDS-style restricted Patient, through the FHIR adapter and small protocols of this test's own: the child's
address and phone leave the broker only to the local authority, under a rule that says why (`restricted_records`),
never to anyone else; the compiler refuses a release to anyone else; rules can test `restricted` (issue 22;
broker/policy/restricted.py)."""

from __future__ import annotations

import pytest

from adapters.health.fhir import ADAPTER as FHIR
from adapters.kit.interface import AdaptContext
from broker.policy import decide, decide_all, explain
from broker.policy.errors import ProtocolError
from broker.policy.referral import person_decision
from tests.adapters.health.builders import as_json, bundle, concept, flag, patient
from tests.conftest import assert_canonical
from tests.policy.conftest import base_protocol, compile_data

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


@pytest.fixture(scope="module")
def protocol():
    data = base_protocol()
    data["rules"].append({
        "id": "health-to-all", "description": "Health flags with the child's address and phone, to hub and GP",
        "subscribers": ["hub", "gp_one"], "event_types": ["health.*"], "purpose": "triage",
        "lawful_basis": ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "children_act_2004_s11"],
        "fields": [{"classifications": ["identity", "location", "contact"], "action": "release"}]})
    data["subscribers"][1]["purposes"].append("triage")
    return compile_data(data)


def _flag_event(security: list[dict] | None) -> dict:
    child = patient()
    child["telecom"] = [{"system": "phone", "value": "07000 000001"}]
    if security is not None:
        child["meta"] = {"security": security}
    out = FHIR.adapt(as_json(bundle(child, flag(concept("836881000000105")))), AdaptContext(source="test"))
    [event] = assert_canonical([e for e in out.events if e["event_type"] == "health.safeguarding_flag"])
    return event


def _sent(decisions) -> set[str]:
    return {p for d in decisions if d.delivered for p in (*d.released, *(p for p, _ in d.masked))}


def test_unrestricted_child_address_is_released_where_the_rule_says(protocol) -> None:
    """Control: without the label this protocol does release the address and phone (so the next test means it)."""
    sent = _sent(decide_all(protocol, _flag_event(None)))
    assert {"subject.child.addresses[].postcode", "subject.child.phones[]"} <= sent


@pytest.mark.parametrize("code", ["R", "V"])
def test_restricted_child_address_and_phone_reach_no_subscriber(protocol, code: str) -> None:
    """Promise: a child PDS marks restricted has no location or contact leave the broker, whatever a rule releases."""
    decisions = decide_all(protocol, _flag_event([{"system": CONFIDENTIALITY, "code": code}]))
    assert any(d.delivered for d in decisions)  # the flag itself still reaches the subscribers
    sent = _sent(decisions)
    assert not {p for p in sent if p.startswith(("subject.child.addresses", "subject.child.phones"))}, sent
    assert "subject.child.nhs_number" in sent


# --- restricted_records: the local authority may receive a restricted child's whereabouts, no one else ------------
BASIS = ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "children_act_2004_s11"]
WHEREABOUTS = {"release": ["location", "contact"],
               "reason": "children's social care must know where a restricted child is to protect them"}
RESTRICTED_R = [{"system": CONFIDENTIALITY, "code": "R"}]
WHERE = ("subject.child.addresses", "subject.child.phones")


def _releasing(**hub_rule) -> dict:
    """The test protocol with a hub rule (its keys overridden by `hub_rule`) before a GP rule, both releasing the
    child's location and contact from health flags."""
    data = base_protocol()
    data["subscribers"][1]["purposes"].append("triage")
    rule = {"id": "hub-whereabouts", "description": "Health flags to the hub for its s47 enquiries",
            "subscribers": ["hub"], "event_types": ["health.*"], "purpose": "triage",
            "lawful_basis": [*BASIS, "children_act_1989_s47"], "restricted_records": WHEREABOUTS,
            "fields": [{"classifications": ["identity", "location", "contact"], "action": "release"}]}
    rule.update(hub_rule)
    data["rules"] += [rule, {
        "id": "gp-health", "description": "Health flags with the child's address and phone to the GP",
        "subscribers": ["gp_one"], "event_types": ["health.*"], "purpose": "triage", "lawful_basis": BASIS,
        "fields": [{"classifications": ["identity", "location", "contact"], "action": "release"}]}]
    return data


def _refusals(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(ProtocolError) as info:
        compile_data(data)
    return [(p.path, p.reason) for p in info.value.problems]


def _where_sent(decision) -> set[str]:
    return {p for p in (*decision.released, *(p for p, _ in decision.masked)) if p.startswith(WHERE)}


def test_the_hub_rule_releases_a_restricted_childs_whereabouts_and_the_gp_still_gets_none() -> None:
    """Promise: under a rule with restricted_records the LA's hub gets the address and phone, saying why; the GP,
    in the same protocol and for the same event, gets neither."""
    protocol = compile_data(_releasing())
    event = _flag_event(RESTRICTED_R)
    hub, gp = decide(protocol, event, "hub"), decide(protocol, event, "gp_one")
    assert hub.rule_id == "hub-whereabouts"
    assert {"subject.child.addresses[].postcode", "subject.child.phones[]"} <= _where_sent(hub)
    assert "released to the local authority under rule hub-whereabouts" in hub.reason
    assert WHEREABOUTS["reason"] in hub.reason
    assert gp.delivered and gp.rule_id == "gp-health" and not _where_sent(gp), gp.released
    assert "no location or contact is released" in gp.reason


def test_a_release_of_location_only_still_withholds_contact() -> None:
    protocol = compile_data(_releasing(restricted_records={**WHEREABOUTS, "release": ["location"]}))
    hub = decide(protocol, _flag_event(RESTRICTED_R), "hub")
    assert "subject.child.addresses[].postcode" in hub.released
    assert "subject.child.phones[]" in hub.withheld
    assert "no contact is released" in hub.reason


def test_a_school_or_gp_rule_releasing_restricted_records_is_refused_naming_the_rule_and_why() -> None:
    """Attack: a protocol author gives the GP a refuge address. Compile refuses, naming the rule's path, the
    subscriber and that only the local authority may receive it."""
    data = _releasing()
    data["rules"][-1]["restricted_records"] = WHEREABOUTS
    data["rules"][-1]["lawful_basis"] = [*BASIS, "children_act_1989_s47"]  # a duty cited does not make it the LA
    refusals = _refusals(data)
    gp_rule = f"rules[{len(data['rules']) - 1}].restricted_records"
    assert [path for path, _ in refusals] == [gp_rule], refusals
    assert "to gp_one, whose partner gp is not the local authority" in refusals[0][1]


def test_a_rule_naming_the_la_and_another_subscriber_is_refused() -> None:
    """A role list slips in one outsider: every subscriber must be the LA's."""
    refusals = _refusals(_releasing(subscribers=["hub", "gp_practice"]))
    assert any("to gp_one" in reason for path, reason in refusals if path.endswith("restricted_records")), refusals


def test_an_la_rule_under_no_s17_or_s47_duty_is_refused() -> None:
    """The early help team is the LA's too, but a consensual service is no duty to find a child: refused."""
    refusals = _refusals(_releasing(lawful_basis=BASIS))
    assert ("rules[1].restricted_records", refusals[0][1]) in refusals
    assert "cite children_act_1989_s17 or children_act_1989_s47" in refusals[0][1]


def test_a_release_without_a_reason_is_refused() -> None:
    refusals = _refusals(_releasing(restricted_records={"release": ["location"]}))
    assert any(path.startswith("rules[1].restricted_records") and "reason" in reason for path, reason in refusals), \
        refusals


def test_a_release_of_what_the_rules_fields_withhold_is_refused_as_dead() -> None:
    refusals = _refusals(_releasing(fields=[{"classifications": ["identity"], "action": "release"}]))
    assert ("rules[1].restricted_records.release",
            "the rule's fields withhold every contact field, so releasing contact from a restricted record changes "
            "nothing: remove it") in refusals, refusals


@pytest.mark.parametrize(("wanted", "security", "applies"), [(True, RESTRICTED_R, True), (True, None, False),
                                                             (False, None, True), (False, RESTRICTED_R, False)])
def test_rules_can_test_the_restricted_condition(wanted: bool, security, applies: bool) -> None:
    """`conditions: {restricted: true|false}` holds when anyone in the event is (or no one is) marked restricted."""
    data = _releasing(conditions={"restricted": wanted})
    decision = decide(compile_data(data), _flag_event(security), "hub")
    assert (decision.rule_id == "hub-whereabouts") is applies, decision.reason
    if not applies:
        assert "marked restricted" in decision.reason


def test_a_restricted_related_person_makes_the_condition_hold() -> None:
    protocol = compile_data(_releasing(conditions={"restricted": True}))
    event = _flag_event(None)
    event["subject"]["related_people"] = [{"role": "parent", "person": {"family_name": "Example",
                                                                        "restricted": True}}]
    assert decide(protocol, event, "hub").rule_id == "hub-whereabouts"


def test_explain_says_per_field_why_a_restricted_field_went_or_not() -> None:
    protocol = compile_data(_releasing())
    event = _flag_event(RESTRICTED_R)
    told = explain(protocol, event, "hub")
    hub = {f["path"]: f for f in told["fields"]}
    [rule] = [r for r in told["rules"] if r["rule_id"] == "hub-whereabouts"]
    assert rule["restricted_records"] == {"release": ["contact", "location"], "reason": WHEREABOUTS["reason"]}
    gp = {f["path"]: f for f in explain(protocol, event, "gp_one")["fields"]}
    postcode = "subject.child.addresses[].postcode"
    assert hub[postcode]["outcome"] == "released"
    assert "restricted record" in hub[postcode]["because"] and "hub-whereabouts" in hub[postcode]["because"]
    assert gp[postcode]["outcome"] == "withheld"
    assert "no location or contact is released" in gp[postcode]["because"]
    assert gp["subject.child.nhs_number"]["outcome"] == "released"


def test_a_persons_decided_share_of_a_restricted_record_withholds_the_whereabouts_too() -> None:
    """A share a person decides (a referral) splits fields as the engine does: without restricted_records on the
    rule, a restricted record's address and phone stay withheld."""
    protocol = compile_data(_releasing())
    event = _flag_event(RESTRICTED_R)
    shared = person_decision(protocol, event, subscriber="gp_one", rule_id="gp-health", decision_id="test-d-1",
                             choice="share")
    assert shared.delivered and not _where_sent(shared), shared.released
    assert "subject.child.nhs_number" in shared.released
