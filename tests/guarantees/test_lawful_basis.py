"""Promise: each subscriber receives only what the protocol allows, under a lawful basis that is right in law.

The attacker's (or the careless author's) view: record an objection for a child and resend the child's record
through the running service, hoping a "statutory gateway" carries it through; write a protocol that cites a power
as if it were a duty, a duty to disclose for bodies it does not bind, or a consent rule for police records.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from broker.policy import ConsentState, ProtocolError, decide
from broker.policy.codes import BASES, DUTY_TO_DISCLOSE, STATUTE
from tests.integration.service import running_service
from tests.policy.conftest import base_protocol, compile_data, make_event

FHIR = {"Content-Type": "application/fhir+json"}


def _patient(record_id: str) -> bytes:
    return json.dumps({"resourceType": "Patient", "id": record_id, "gender": "female", "birthDate": "2015-02-03",
                       "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
                       "name": [{"family": "Fictitious", "given": ["Objector"]}]}).encode()


async def _decided(svc, want: int) -> None:
    for _ in range(300):
        samples = svc.runtime.metrics.decisions.collect()[0].samples
        if sum(s.value for s in samples if s.name == "mash_decisions_total") >= want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the share stage did not decide every event")


@pytest.mark.integration
async def test_an_objection_is_never_overridden_by_a_power_through_the_running_service(kafka_bootstrap, tmp_path):
    """An objection recorded for a child stops the hub's public-task rule (s17, s11: a power and a duty to
    co-operate) end to end: the next record is withheld pending a recorded human decision, and audited so."""
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=_patient("objector-1"),
                            headers=svc.headers("intake:health", **FHIR))
        assert r.status_code == 202, r.text
        [first] = await svc.pull_until(http, "test_hub", 1)
        token = first["subject"]["linkage"]["token"]
        r = await http.put(f"{svc.base_url}/v1/admin/consent/{token}", headers=svc.headers("admin"),
                           json={"status": "not_sought", "objection": True, "recorded_on": "2026-05-01"})
        assert r.status_code == 200, r.text
        r = await http.post(f"{svc.base_url}/v1/records/health", content=_patient("objector-2"),
                            headers=svc.headers("intake:health", **FHIR))
        assert r.status_code == 202, r.text
        [second] = r.json()["events"]
        await _decided(svc, 2 * len(svc.runtime.protocol.subscribers))
        await asyncio.sleep(0.5)
        assert len(await svc.pull_until(http, "test_hub", 1)) == 1  # the second record never arrives
        decisions = svc.runtime.audit_store.search(kind="decision", event_id=second["event_id"],
                                                   subscriber="test_hub")
        for _ in range(100):  # the audit indexer writes behind the share stage
            if decisions:
                break
            await asyncio.sleep(0.1)
            decisions = svc.runtime.audit_store.search(kind="decision", event_id=second["event_id"],
                                                       subscriber="test_hub")
        [decision] = [d["record"] for d in decisions]
        assert decision["outcome"] == "withhold" and "consent_override" not in decision
        assert "pending a recorded human decision" in decision["reason"]


def test_no_pile_of_powers_and_duties_to_cooperate_overrides_an_objection() -> None:
    """However many powers and duties to co-operate a rule piles up, an objection is never set aside by them."""
    soft = [b.code for b in BASES if b.group == STATUTE and b.kind != DUTY_TO_DISCLOSE]
    data = base_protocol()
    data["rules"][0].update(event_types=["social_care.referral"], lawful_basis=["uk_gdpr_art6_1_e", *soft],
                            fields=[{"classifications": ["identity"], "action": "release"}])
    p = compile_data(data)
    event = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-01"})
    # (a refused or withdrawn data protection consent has no effect here, consent not being the basis: issue 19;
    # tests/guarantees/test_consent_kinds.py holds that promise)
    for state in (ConsentState(objection=True), ConsentState("refused", True), ConsentState("withdrawn", True)):
        d = decide(p, event, "hub", consent=state)
        assert d.outcome == "withhold" and d.consent_override is None and d.human_decision is not None


@pytest.mark.parametrize("rule", [
    # a power dressed as a legal obligation, to reach Art 21's exception
    {"lawful_basis": ["uk_gdpr_art6_1_c", "crime_and_disorder_act_1998_s115"]},
    # Operation Encompass's duty claimed for the local authority's records
    {"lawful_basis": ["uk_gdpr_art6_1_c", "domestic_abuse_act_2021_s49a"], "conditions": {"subject_under_18": True}},
    # s47(9) claimed for police records
    {"event_types": ["police.incident_child_present"],
     "lawful_basis": ["uk_gdpr_art6_1_c", "children_act_1989_s47_9", "dpa2018_s36_4"]},
    # police records on consent alone
    {"event_types": ["police.incident_child_present"], "lawful_basis": ["consent"]},
])
def test_a_protocol_cannot_claim_a_duty_it_does_not_have(rule) -> None:
    """A protocol that claims a duty to disclose the law does not give does not load, so it can override nothing."""
    data = base_protocol()
    data["rules"][0].update(event_types=["social_care.referral"],
                            fields=[{"classifications": ["identity"], "action": "release"}])
    data["rules"][0].update(rule)
    with pytest.raises(ProtocolError):
        compile_data(data)
