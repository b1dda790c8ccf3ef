"""Admin actions through the real service: shred one child, consent register, dead-letter reprocessing."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from broker.crypto import SHREDDED
from tests.integration.service import running_service

pytestmark = pytest.mark.integration


def _patient(pid: str, nhs: str, family: str) -> bytes:
    return json.dumps({"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "2015-03-04",
                       "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
                       "name": [{"family": family, "given": ["Testchild"]}]}).encode()


async def test_shredding_one_child_leaves_the_other_readable(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        fhir = svc.headers("intake:health", **{"Content-Type": "application/fhir+json"})
        tokens = {}
        for pid, nhs, family in (("a1", "9434765919", "Alphaexample"), ("b2", "9434765870", "Betaexample")):
            r = await http.post(f"{svc.base_url}/v1/records/health", content=_patient(pid, nhs, family), headers=fhir)
            assert r.status_code == 202, r.text
        opened = await svc.pull_until(http, "test_hub", 2)
        for event in opened:
            tokens[event["subject"]["child"]["family_name"]] = event["subject"]["linkage"]["token"]

        r = await http.post(f"{svc.base_url}/v1/admin/keys/shred/{tokens['Alphaexample']}",
                            headers=svc.headers("admin"))
        assert r.status_code == 200 and r.json()["data_keys_shredded"] >= 1
        assert (await http.post(f"{svc.base_url}/v1/admin/keys/shred/{tokens['Betaexample']}",
                                headers=svc.headers("intake:health"))).status_code == 403

        # a new version of each record: the shredded child's fields come out as the marker, the other's in full
        for pid, nhs, family in (("a1", "9434765919", "Alphaexample2"), ("b2", "9434765870", "Betaexample2")):
            r = await http.post(f"{svc.base_url}/v1/records/health", content=_patient(pid, nhs, family), headers=fhir)
            assert r.status_code == 202
        # served now: Beta's first, the person.erased notice, then both new versions (Alpha's first is never served
        # again: tests/integration/test_erasure.py)
        latest = (await svc.pull_until(http, "test_hub", 4))[2:]
        by_token = {e["subject"]["linkage"]["token"]: e for e in latest}
        assert by_token[tokens["Betaexample"]]["subject"]["child"]["family_name"] == "Betaexample2"
        # the alpha event was encrypted under fresh keys (new data after shredding are a new scope generation) or
        # shows the marker; either way the shredded generation can no longer be opened from the events topic
        svc.runtime.keys.shred_with_report(tokens["Alphaexample"])
        from broker.service.messages import decode
        from tests.integration.topics import read_topic

        raw = await read_topic(kafka_bootstrap, svc.settings.topics.events, 4)
        for msg in raw:
            revealed = svc.runtime.reveal(decode(msg.value))
            if revealed.event["event_type"] == "person.erased":  # the notice: tokens only, readable for good
                continue
            child = revealed.event["subject"]["child"]
            if revealed.event["subject"]["linkage"]["token"] == tokens["Alphaexample"]:
                assert child["family_name"] == SHREDDED and revealed.shredded
            else:
                assert child["family_name"].startswith("Betaexample") and not revealed.shredded


async def test_reprocessing_a_dead_letter_runs_intake_again(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        bad = b'{"resourceType": "Patient", "id": "p9", "birthDate": "2015-13-45"}'
        r = await http.post(f"{svc.base_url}/v1/records/health", content=bad,
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 422
        [dl] = r.json()["deadletter_ids"]
        r = await http.post(f"{svc.base_url}/v1/admin/deadletters/{dl}/reprocess", headers=svc.headers("admin"))
        assert r.status_code == 200, r.text
        assert r.json()["rejections"][0]["field"] == "Patient.birthDate"
        r = await http.post(f"{svc.base_url}/v1/admin/deadletters/{uuid.uuid4()}/reprocess",
                            headers=svc.headers("admin"))
        assert r.status_code == 404
        r = await http.post(f"{svc.base_url}/v1/admin/deadletters/nope/reprocess", headers=svc.headers("admin"))
        assert r.status_code == 422 and "nope" not in r.text  # not a dead-letter id: refused, never echoed


async def test_consent_register_is_admin_only_and_recorded(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        body = {"status": "withdrawn", "objection": True, "recorded_on": "2026-11-01"}
        never_seen = "lt1_" + "A" * 32  # consent attaches to a known child only: a mistyped token is a 404
        r = await http.put(f"{svc.base_url}/v1/admin/consent/{never_seen}", json=body, headers=svc.headers("admin"))
        assert r.status_code == 404 and svc.runtime.consent_for(never_seen) is None
        r = await http.post(f"{svc.base_url}/v1/records/health", content=_patient("c3", "9434765919", "Gammaexample"),
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 202, r.text
        [(token,)] = svc.runtime.identities.db.query("SELECT DISTINCT child FROM identity")  # the child just sent
        r = await http.put(f"{svc.base_url}/v1/admin/consent/{token}", json=body, headers=svc.headers("admin"))
        assert r.status_code == 200
        assert svc.runtime.consent_for(token).restriction == "objection"
        r = await http.put(f"{svc.base_url}/v1/admin/consent/{token}", json=body, headers=svc.headers("ig_auditor"))
        assert r.status_code == 403
