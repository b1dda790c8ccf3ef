"""explain (JSON and text) and diff between protocol versions."""

from __future__ import annotations

import copy
import json

from broker.policy import ConsentState, diff, explain, format_explanation
from tests.policy.conftest import SECRETS, base_protocol, compile_data, make_event


def _referral(**kw):
    return make_event("social_care.referral", "social_care", {"referral_date": "2026-05-04"}, **kw)


def test_explain_json_gives_rules_and_fields_with_reasons(sample) -> None:
    event = make_event("police.incident_child_present", "police",
                       {"incident_reference": "TEST/0001", "child_role": "present",
                        "summary": "Fictitious narrative."}, risk="medium", categories=("domestic_abuse",))
    # the hub receives partners' events while a referral is open (issue 19)
    withdrawn = explain(sample, event, "mash_hub", ConsentState("withdrawn", True, recorded_on="2026-04-01"),
                        case_open=True)
    assert withdrawn["decision"]["outcome"] == "withhold" and withdrawn["decision"]["consent_override"] is None
    assert withdrawn["human_decision"] == {"rule_id": "mash-police-contact", "restriction": "objection",
                                           "recorded_on": "2026-04-01"}
    assert {k: withdrawn["consent"][k] for k in ("status", "objection", "recorded_on")} == {
        "status": "withdrawn", "objection": True, "recorded_on": "2026-04-01"}
    assert {(r["kind"], r["state"], r["subject"]) for r in withdrawn["consent"]["records"]} == {
        ("data_protection", "withdrawn", "child"), ("objection", "raised", "child")}
    rules_of = {r["rule_id"]: r for r in withdrawn["rules"]}
    assert rules_of["mash-police-contact"]["human_decision"] is True
    result = explain(sample, event, "mash_hub", ConsentState("not_sought"), case_open=True)
    decision = result["decision"]
    assert decision["outcome"] == "deliver" and decision["rule_id"] == "mash-police-contact"
    assert result["citations"]["dpa2018_s36_4"] == "https://www.legislation.gov.uk/ukpga/2018/12/section/36"
    # every rule for the hub, in the protocol's order (the hub's own decisions and the hub watch's rules, 1.5.0,
    # cover other event types)
    assert [(r["rule_id"], r["applies"], r["chosen"]) for r in result["rules"]] == [
        ("hub-own-decisions", False, False), ("mash-s47-significant-harm", False, False),
        ("mash-police-contact", True, True), ("mash-health-s47-9-assistance", False, False),
        ("mash-hub-watch", False, False), ("mash-hotspot-rise", False, False), ("mash-s17-child-in-need", True, False)]
    # the s47 rule is the LA's recorded decision, not a risk level: a police incident is not one
    by_id = {r["rule_id"]: r for r in result["rules"]}
    assert by_id["mash-s47-significant-harm"]["reason"].startswith("covers social_care.section47_enquiry")
    fields = {f["path"]: f for f in result["fields"]}
    assert fields["payload.summary"] == {"path": "payload.summary", "classification": "narrative",
                                         "outcome": "masked", "mask": "redact",
                                         "because": "rules[8].fields[3]: classification narrative"}
    assert fields["subject.related_people[].person.phones[]"]["outcome"] == "withheld"
    assert fields["event_id"]["because"].startswith("default: operational")
    assert "Children Act 2004 s11" in result["lawful_basis_text"]["children_act_2004_s11"]
    assert not [s for s in SECRETS if s in json.dumps(result)]


def test_explain_shows_rules_that_do_not_cover_the_event_type(sample) -> None:
    event = make_event("health.safeguarding_flag", "health", {"code": {"code": "000000"}}, risk="high")
    result = explain(sample, event, "oakfield_dsl")
    assert result["decision"]["outcome"] == "withhold"
    assert all(not r["covers_event_type"] for r in result["rules"])
    assert all(f["outcome"] == "withheld" for f in result["fields"])
    assert explain(sample, event, "stranger")["subscriber"] == {"name": "stranger", "known": False}


def test_explain_text_is_readable_and_value_free(sample) -> None:
    event = _referral(risk="low")
    text = format_explanation(explain(sample, event, "early_help", ConsentState("given"), case_open=True))
    assert "DECISION: DELIVER" in text and "rule early-help-consented-support" in text
    assert "discloser's basis: UK GDPR Art 6(1)(a): consent" in text
    assert "recipient's basis: UK GDPR Art 9(2)(a): explicit consent" in text
    assert "=> early-help-consented-support: consent given" in text
    assert "subject.child.nhs_number" in text and "masked (partial)" in text
    assert not [s for s in SECRETS if s in text]
    text = format_explanation(explain(sample, event, "early_help", ConsentState("withdrawn"), case_open=True))
    assert "DECISION: WITHHOLD" in text and "honoured" in text


def test_diff_reports_events_and_fields_per_subscriber() -> None:
    old_data = base_protocol()
    new_data = copy.deepcopy(old_data)
    new_data["protocol"]["version"] = "2"
    new_data["rules"][0]["fields"] = [
        {"paths": ["subject.child.date_of_birth"], "action": "mask", "mask": "year_only"},
        {"classifications": ["identity", "social_care", "contact"], "action": "release"}]
    new_data["rules"].append({"id": "gp-cp", "description": "GP CP plans", "subscribers": ["gp_one"],
                              "event_types": ["social_care.child_protection_plan_started"], "purpose": "care",
                              "lawful_basis": ["uk_gdpr_art6_1_e", "children_act_2004_s11"],
                              "fields": [{"classifications": ["identity"], "action": "release"}]})
    old, new = compile_data(old_data), compile_data(new_data)
    referral = _referral()
    incident = make_event("police.incident_child_present", "police", {"incident_reference": "TEST/1"})
    plan = make_event("social_care.child_protection_plan_started", "social_care", {"start_date": "2026-05-04"})
    result = diff(old, new, iter([referral, incident, plan]))
    assert (result["from"], result["to"], result["events"], result["changed"]) == ("test-isp@1", "test-isp@2", 3, True)
    hub = result["subscribers"]["hub"]
    assert hub["events_added"] == [] and hub["events_removed"] == []
    assert hub["fields_added"] == {"subject.child.phones[]": 3, "subject.related_people[].person.phones[]": 3}
    assert hub["fields_removed"] == {"subject.related_people[].person.pnc_id": 3}  # criminal no longer released
    assert {"path": "subject.child.date_of_birth", "from": "released", "to": "masked:year_only", "events": 3} \
        in hub["fields_changed"]
    gp = result["subscribers"]["gp_one"]
    assert gp["events_added"] == [plan["event_id"]] and not gp["fields_added"]
    assert result["subscribers"]["helper"]["changed"] is False
    assert diff(old, old, [referral])["changed"] is False
