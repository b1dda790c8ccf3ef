"""A PDS-style restricted Patient, through the FHIR adapter and a small protocol of this test's own: the child's
address and phone never leave the broker, whatever the rule releases (issue 22; broker/policy/restricted.py)."""

from __future__ import annotations

import pytest

from adapters.health.fhir import ADAPTER as FHIR
from adapters.kit.interface import AdaptContext
from broker.policy import decide_all
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
