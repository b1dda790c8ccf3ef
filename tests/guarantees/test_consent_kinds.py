"""Promise: each data subject's consent, agreement or objection binds only that person's data, with the effect the law
gives its kind, and no one can lift or widen it by the back door.

The attacker's (or the careless integrator's) view: plant a related person's refusal to block the child's share;
have an event's own block (or a second record in it) quietly lift an objection the register holds; name a parent by
a reference no record carries, hoping the objection then covers no one; send the admin API records that mean nothing
in law, carrying a marker, hoping for a 5xx or an echo.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import pytest

from broker.policy import ConsentState, decide, release
from broker.policy.consent import KINDS, RELATED_ROLES, ConsentRecord, states_of
from tests.integration.service import running_service
from tests.policy.conftest import base_protocol, compile_data, make_event

KEY = b"g" * 32
MARKER = "RP-ZZ-MARKER-7731"


def _protocol(basis: list[str], **extra: Any):
    data = base_protocol()
    data["rules"] = [{"id": "hub-rule", "description": "test", "subscribers": ["hub"],
                      "event_types": ["social_care.*"], "purpose": "triage", "lawful_basis": basis,
                      "fields": [{"classifications": ["identity"], "action": "release"}], **extra}]
    return compile_data(data)


def _person(role: str, name: str, ids: list[str] | None = None) -> dict[str, Any]:
    person: dict[str, Any] = {"given_names": [name], "family_name": "Example"}
    if ids:
        person["local_ids"] = [{"system": "TEST", "value": v} for v in ids]
    return {"role": role, "person": person}


def _enquiry(related: list[dict[str, Any]], consent: dict[str, Any] | None = None) -> dict[str, Any]:
    return make_event("social_care.section47_enquiry", "social_care", {"actual_start_date": "2026-05-01"},
                      related=related, consent=consent)


def test_no_related_persons_record_of_any_kind_blocks_the_childs_share_or_reaches_the_childs_data() -> None:
    """Every restrictive record of every kind, for every related role, leaves the child's public-task share and the
    child's fields untouched, and never withholds a different person."""
    p = _protocol(["uk_gdpr_art6_1_e", "children_act_1989_s47"])
    for role, kind in itertools.product(RELATED_ROLES, KINDS):
        other = "sibling" if role != "sibling" else "carer"
        event = _enquiry([_person(role, "Named"), _person(other, "Bystander")])
        for state in states_of(kind):
            record = ConsentRecord(kind, state, role)
            d = decide(p, event, "hub", consent=ConsentState(records=[record]))
            assert d.outcome == "deliver" and d.human_decision is None, (role, kind, state)
            view = release(event, d, mask_key=KEY)
            assert view["subject"]["child"]["given_names"] == ["Testchild"]
            names = [x["person"]["given_names"][0] for x in view["subject"].get("related_people", [])]
            assert "Bystander" in names, (role, kind, state)
            assert ("Named" in names) is not (kind == "objection" and state == "raised"), (role, kind, state)


def test_an_objection_cannot_be_lifted_by_the_event_or_by_a_second_record() -> None:
    """The register's objection stands against an event that says it is lifted, and an event saying both counts as
    raised: the more restrictive wins, whichever side says it."""
    p = _protocol(["uk_gdpr_art6_1_e", "children_act_1989_s47"])
    raised = ConsentState(records=[ConsentRecord("objection", "raised", recorded_on="2026-05-01")])
    lifted_block = {"status": "given", "objection": False,
                    "records": [{"kind": "objection", "state": "lifted"}]}
    assert decide(p, _enquiry([], lifted_block), "hub", consent=raised).human_decision is not None
    both = {"status": "not_sought", "records": [{"kind": "objection", "state": "raised", "subject": "victim"},
                                                {"kind": "objection", "state": "lifted", "subject": "victim"}]}
    event = _enquiry([_person("victim", "Victim")], both)
    d = decide(p, event, "hub", consent=ConsentState(records=[ConsentRecord("objection", "lifted", "victim")]))
    assert d.people_withheld == (0,)
    # and the register saying "given" does not undo the event's refusal under a consent rule
    consent_rule = _protocol(["consent"])
    refused = _enquiry([], {"status": "refused"})
    assert decide(consent_rule, refused, "hub", consent=ConsentState("given")).outcome == "withhold"


def test_a_reference_no_record_carries_still_covers_the_person_of_that_role() -> None:
    """An objection naming one parent by a local id withholds that parent, and a parent whose record carries no id at
    all (who may be the one meant), but never a parent whose ids show they are someone else."""
    p = _protocol(["uk_gdpr_art6_1_e", "children_act_1989_s47"])
    event = _enquiry([_person("parent", "Meant", ["RP-1"]), _person("parent", "Unknown"),
                      _person("parent", "Other", ["RP-2"])])
    d = decide(p, event, "hub", consent=ConsentState(records=[ConsentRecord("objection", "raised", "parent", "RP-1")]))
    assert d.people_withheld == (0, 1)
    names = [x["person"]["given_names"][0] for x in release(event, d, mask_key=KEY)["subject"]["related_people"]]
    assert names == ["Other"]


@pytest.mark.integration
async def test_the_consent_api_refuses_nonsense_without_a_5xx_or_an_echo(kafka_bootstrap, tmp_path):
    """Records that mean nothing in law are 422 naming the field, never 5xx, never echoing what was sent; a valid
    record with a reference is stored, and neither the answer nor the audit repeats the reference or the role."""
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        patient = (b'{"resourceType": "Patient", "id": "gk-1", "birthDate": "2015-02-03", "identifier": '
                   b'[{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}]}')
        r = await http.post(f"{svc.base_url}/v1/records/health", content=patient,
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 202, r.text
        [first] = await svc.pull_until(http, "test_hub", 1)
        url = f"{svc.base_url}/v1/admin/consent/{first['subject']['linkage']['token']}"
        hostile = [
            {"records": [{"kind": "objection", "state": "given", "recorded_by": "dpo"}]},
            {"records": [{"kind": "data_protection", "state": "raised"}]},
            {"records": [{"kind": MARKER, "state": "raised"}]},
            {"records": [{"kind": "objection", "state": "raised", "subject": "child", "ref": MARKER}]},
            {"records": [{"kind": "objection", "state": "raised", "subject": MARKER}]},
            {"records": [{"kind": "objection", "state": "raised", "recorded_by": MARKER}]},
            {"records": [{"kind": "objection", "state": "raised", "ref": MARKER + " <script>"}]},
            {"records": [{"kind": "objection", "state": "raised"}] * 2},
            {"records": [{"kind": "objection", "state": "raised", "subject": "parent", "ref": f"P{i}"}
                         for i in range(51)]},
            {"records": [], "status": "given"},
            {"records": [{"kind": "objection", "state": "raised"}], "status": "given"},
            {"objection": True},
            {"records": MARKER},
            {"records": [MARKER]},
        ]
        for body in hostile:
            r = await http.put(url, json=body, headers=svc.headers("admin"))
            assert r.status_code == 422, (body, r.status_code)
            assert MARKER not in r.text
        assert svc.runtime.consent_for(first["subject"]["linkage"]["token"]) is None  # nothing half-written
        ok = {"records": [{"kind": "objection", "state": "raised", "subject": "suspect", "ref": MARKER}]}
        r = await http.put(url, json=ok, headers=svc.headers("admin"))
        assert r.status_code == 200 and MARKER not in r.text and r.json()["records"][0]["ref_given"] is True
        for _ in range(100):  # the audit indexer chains what the API emitted to Kafka
            audit = svc.runtime.audit_store.search(kind="admin_action", subject=first["subject"]["linkage"]["token"])
            if audit:
                break
            await asyncio.sleep(0.1)
        text = str([a["record"] for a in audit])
        assert "objection raised for a related person" in text and MARKER not in text and "suspect" not in text
