"""HTTP intake names the FHIR resources it skipped as carrying no safeguarding fact (issue 22): by type, counted."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.integration.intake_helpers import FHIR_JSON, bundle, patient
from tests.integration.service import running_service

pytestmark = pytest.mark.integration
ALLERGY = {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "Patient/x"}}
ORDINARY_CONDITION = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/x"},
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "195662009"}]}}
ORGANISATION = {"resourceType": "Organization", "id": "o1", "name": "Testshire Trust"}


async def test_skipped_resources_are_listed_by_type_in_the_answer(kafka_bootstrap, tmp_path):
    """Promise: a resource left out is never silent, and the answer names only its FHIR type, never its content."""
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        url, headers = f"{svc.base_url}/v1/records/health", svc.headers("intake:health", **FHIR_JSON)
        r = await http.post(url, content=bundle(patient(1), ALLERGY, ALLERGY, ORDINARY_CONDITION), headers=headers)
        assert r.status_code == 202, r.text
        body = r.json()
        assert (body["accepted"], body["rejections"]) == (1, [])
        assert body["skipped"] == {"AllergyIntolerance": 2, "Condition": 1}

        r = await http.post(url, content=orjson.dumps(ORGANISATION), headers=headers)
        assert r.status_code == 202, r.text
        body = r.json()
        assert (body["accepted"], body["rejections"], body["skipped"]) == (0, [], {"Organization": 1})
        assert "Testshire" not in r.text
