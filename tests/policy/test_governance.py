"""The agreement's furniture as protocol data (`governance`), and the conditions the sample protocol needed for the
law: a referral's source, a CP-IS plan kind, a rule that reserves every decision to a person."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from broker.policy import ConsentState, decide, explain, format_explanation
from broker.policy.errors import ProtocolError
from tests.policy.conftest import SAMPLE, SECRETS, base_protocol, compile_data, make_event

SAMPLE_DATA = yaml.safe_load(SAMPLE.read_text())


def governed() -> dict[str, Any]:
    """The small test protocol with a complete governance section."""
    data = base_protocol()
    data["governance"] = {
        "controllers": [{"partner": "la", "controller_for": "its records"}, {"partner": "gp", "controller_for": "x"}],
        "dpia": {"reference": "T-DPIA-1", "approved_on": "2025-12-01", "approved_by": "test board"},
        "appropriate_policy_documents": [{"partner": "la", "reference": "T-APD", "covers": ["dpa2018_sch1_para6"]}],
        "retention": [{"classifications": ["identity", "social_care", "criminal"], "keep_for": "P6Y",
                       "from": "case_closed"}],
        "roles": [{"partner": "la", "role": "dpo", "contact": "dpo@la.example.org"},
                  {"partner": "la", "role": "caldicott_guardian", "contact": "cg@la.example.org"},
                  {"partner": "gp", "role": "dpo", "contact": "dpo@gp.example.org"},
                  {"partner": "gp", "role": "caldicott_guardian", "contact": "cg@gp.example.org"}],
        "review": {"next_review": "2026-12-01", "triggers": ["a change in the law"]},
        "breach": {"report_to": "breach@la.example.org", "within_hours": 24, "route": "to the DPO"},
        "subject_rights": {"contact": "rights@la.example.org", "route": "to the holder"},
    }
    return data


def reasons(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ProtocolError) as info:
        compile_data(data)
    return [(p.path, p.reason) for p in info.value.problems]


def test_a_complete_governance_section_compiles_and_is_kept() -> None:
    protocol = compile_data(governed())
    assert protocol.governance is not None
    assert protocol.governance.as_dict()["dpia"]["reference"] == "T-DPIA-1"


def test_a_condition_needing_a_policy_document_without_one_is_refused() -> None:
    data = governed()
    data["governance"]["appropriate_policy_documents"][0]["covers"] = ["dpa2018_sch1_para18"]
    found = reasons(data)
    assert ("rules[0].lawful_basis", "dpa2018_sch1_para6 needs an appropriate policy document (DPA 2018 Sch 1 "
            "para 5, s42) and none in governance.appropriate_policy_documents covers it for la") in found


def test_retention_must_cover_every_class_released_once() -> None:
    data = governed()
    data["governance"]["retention"] = [{"classifications": ["identity", "social_care"], "keep_for": "P1Y",
                                        "from": "receipt"},
                                       {"classifications": ["identity"], "keep_for": "P2Y", "from": "receipt"}]
    found = dict(reasons(data))
    assert "criminal data but no retention period" in found["governance.retention"]
    assert found["governance.retention[1].classifications[0]"].startswith("identity already has a retention")


def test_every_controller_has_a_dpo_and_health_and_social_care_a_caldicott_guardian() -> None:
    data = governed()
    data["governance"]["roles"] = [r for r in data["governance"]["roles"] if r["partner"] != "gp"]
    found = [reason for path, reason in reasons(data) if path == "governance.roles"]
    assert any(r.startswith("partner gp has no dpo") for r in found)
    assert any(r.startswith("partner gp (health) has no caldicott_guardian") for r in found)


def test_unknown_partners_a_late_dpia_and_a_personal_mailbox_shape_are_refused() -> None:
    data = governed()
    data["governance"]["controllers"].append({"partner": "nobody", "controller_for": "x"})
    data["governance"]["dpia"]["approved_on"] = "2026-02-01"  # after effective_from
    found = dict(reasons(data))
    assert found["governance.controllers[2].partner"] == "not the id of a partner in partners"
    assert "prior to the processing" in found["governance.dpia.approved_on"]
    data = governed()
    data["governance"]["breach"]["report_to"] = "Not A Mailbox"
    assert [p for p, _ in reasons(data)] == ["governance.breach.report_to"]


def test_explain_heads_with_the_agreement_and_says_when_there_is_none() -> None:
    event = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-04"})
    text = format_explanation(explain(compile_data(governed()), event, "hub"))
    head = text.split("DECISION:")[0]
    assert "  DPIA T-DPIA-1, approved 2025-12-01 by test board" in head
    assert "  dpo gp: dpo@gp.example.org" in head and "  retention identity, social_care, criminal: P6Y" in head
    assert not [s for s in SECRETS if s in text]
    bare = format_explanation(explain(compile_data(base_protocol()), event, "hub"))
    assert "agreement: no governance section" in bare


def test_the_sample_protocol_states_its_furniture() -> None:
    protocol = compile_data(copy.deepcopy(SAMPLE_DATA))
    g = protocol.governance
    assert g is not None and g.joint_controllers is not None
    assert {r["role"] for r in g.roles} >= {"dpo", "siro", "caldicott_guardian"}
    assert all(r["contact"].endswith(".example.org") for r in g.roles)  # role mailboxes, fictitious domains


def test_referral_sources_and_plan_kinds_fail_closed_and_fit_only_their_event_type() -> None:
    data = base_protocol()
    data["rules"][0]["conditions"] = {"referral_sources": ["6"]}
    referral_only = copy.deepcopy(data)
    referral_only["rules"][0]["event_types"] = ["social_care.referral"]
    referral_only["rules"][0]["lawful_basis"].remove("dpa2018_s36_4")  # no police record any more
    protocol = compile_data(referral_only)
    police = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-04", "referral_source": "6"})
    school = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-04", "referral_source": "2A"})
    unknown = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-04"})
    assert decide(protocol, police, "hub").outcome == "deliver"
    assert decide(protocol, school, "hub").outcome == "withhold"
    assert "referral source is unknown" in decide(protocol, unknown, "hub").reason
    # hub-identity covers social_care.* and police.*: a referral source fits only a referral
    assert [p for p, _ in reasons(data)] == ["rules[0].conditions.referral_sources"]
    data["rules"][0]["conditions"] = {"plan_kinds": ["unborn_child_protection_plan"]}
    assert [p for p, _ in reasons(data)] == ["rules[0].conditions.plan_kinds"]


def test_a_rule_reserving_the_decision_to_a_person_never_shares_by_itself() -> None:
    sample = compile_data(copy.deepcopy(SAMPLE_DATA))
    adult = make_event("health.safeguarding_flag", "health", {"status": "active", "code": {"code": "000000"}},
                       risk="critical",
                       categories=("domestic_abuse",))
    adult["subject"]["child"]["date_of_birth"] = "1980-01-01"
    for consent in (None, ConsentState("given"), ConsentState("not_sought", True, recorded_on="2026-04-01")):
        decision = decide(sample, adult, "police_ppu", consent=consent)
        assert decision.outcome == "withhold" and decision.human_decision is not None
        assert decision.human_decision.rule_id == "police-health-domestic-abuse-adult"
