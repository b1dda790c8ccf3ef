"""Consent of the right kind, per data subject, through the real service (embedded Kafka, SQLite registers, HTTP).

A FHIR Bundle (the child's Patient and the mother's RelatedPerson) goes to the hub under a public-task rule citing
Children Act 1989 s47. Then: the mother's objection withholds her details from the next delivery but not the child's;
the child's refused data protection consent does not block the s47 share; the child's Art 21 objection sends the
next record to a recorded human decision (audited), and the old per-child admin body still records it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.adapters.health.builders import bundle, patient
from tests.integration.service import FIXTURES, running_service

pytestmark = pytest.mark.integration
FHIR = {"Content-Type": "application/fhir+json"}


def _protocol(folder: Path) -> Path:
    spec = yaml.safe_load((FIXTURES / "e2e-protocol.yaml").read_text())
    spec["rules"] = [{
        "id": "hub-s47", "description": "The hub's s47 enquiries: the child's and the family's identity.",
        "subscribers": ["test_hub"], "event_types": ["person.*"], "source_agencies": ["health"], "purpose": "triage",
        "lawful_basis": ["uk_gdpr_art6_1_e", "children_act_1989_s47", "children_act_2004_s11"],
        "fields": [{"classifications": ["identity"], "action": "release"}]}]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "consent-kinds.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _family(version: int) -> bytes:
    mother = {"resourceType": "RelatedPerson", "id": f"rp-{version}", "patient": {"reference": "Patient/child-1"},
              "meta": {"lastUpdated": f"2026-05-0{version}T10:00:00Z"},
              "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                            "code": "MTH"}]}],
              "name": [{"family": "Mothername", "given": ["Testmother"]}]}
    child = patient()
    child["meta"] = {"lastUpdated": f"2026-05-0{version}T10:00:00Z", "versionId": str(version)}
    return orjson.dumps(bundle(child, mother))


async def _decision(svc, event_id: str) -> dict[str, Any]:
    for _ in range(200):  # the audit indexer writes behind the share stage
        found = svc.runtime.audit_store.search(kind="decision", event_id=event_id, subscriber="test_hub")
        if found:
            return found[0]["record"]
        await asyncio.sleep(0.1)
    raise AssertionError("no decision audited")


def _related(deliveries: list[dict[str, Any]], event_id: str) -> list[dict[str, Any]] | None:
    [delivery] = [d for d in deliveries if d["event_id"] == event_id]
    return delivery["subject"].get("related_people"), delivery["subject"]["child"]


async def _send(http, svc, version: int) -> str:
    r = await http.post(f"{svc.base_url}/v1/records/health", content=_family(version),
                        headers=svc.headers("intake:health", **FHIR))
    assert r.status_code == 202, r.text
    # the Patient and the RelatedPerson, in the Bundle's order: the last is the mother's
    return [e for e in r.json()["events"] if e["event_type"] == "person.updated"][-1]["event_id"]


async def test_consent_kinds_per_data_subject_through_the_service(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, str(_protocol(tmp_path / "src"))) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        first = await _send(http, svc, 1)
        deliveries = await svc.pull_until(http, "test_hub", 2)
        related, child = _related(deliveries, first)
        assert related[0]["person"]["family_name"] == "Mothername" and child["family_name"] == "Example"
        token = deliveries[0]["subject"]["linkage"]["token"]

        # the mother objects (Art 21), and the child's data protection consent is refused
        body = {"records": [
            {"kind": "objection", "state": "raised", "subject": "parent", "recorded_on": "2026-05-02",
             "recorded_by": "social_worker"},
            {"kind": "data_protection", "state": "refused", "recorded_on": "2026-05-02"}]}
        r = await http.put(f"{svc.base_url}/v1/admin/consent/{token}", json=body, headers=svc.headers("admin"))
        assert r.status_code == 200, r.text
        assert {(x["kind"], x["subject"]) for x in r.json()["records"]} == {("objection", "parent"),
                                                                            ("data_protection", "child")}
        second = await _send(http, svc, 2)
        deliveries = await svc.pull_until(http, "test_hub", 4)
        related, child = _related(deliveries, second)
        assert related is None  # her details are withheld...
        assert child["family_name"] == "Example" and child["nhs_number"]  # ...the child's are not
        decision = await _decision(svc, second)
        assert decision["outcome"] == "deliver" and "related_people[0]" in decision["reason"]
        assert "data protection consent refused has no effect" in decision["reason"]  # s47 share not blocked

        # the child's Art 21 objection, through the old per-child body (kept as a compatibility path)
        r = await http.put(f"{svc.base_url}/v1/admin/consent/{token}", headers=svc.headers("admin"),
                           json={"status": "refused", "objection": True, "recorded_on": "2026-05-03"})
        assert r.status_code == 200 and r.json() == {"subject": token, "status": "refused", "objection": True,
                                                     "recorded_on": "2026-05-03"}
        third = await _send(http, svc, 3)
        decision = await _decision(svc, third)
        assert decision["outcome"] == "withhold" and "pending a recorded human decision" in decision["reason"]
        await asyncio.sleep(0.5)
        assert not [d for d in await svc.pull_until(http, "test_hub", 4) if d["event_id"] == third]
        held = svc.runtime.consent_for(token)
        assert held.objection and held.for_people()[0].state == "raised"  # the old body left the mother's alone
        actions = svc.runtime.audit_store.search(kind="admin_action", subject=token)
        reasons = " | ".join(a["record"].get("reason", "") for a in actions)
        assert "objection raised for a related person" in reasons and "parent" not in reasons
