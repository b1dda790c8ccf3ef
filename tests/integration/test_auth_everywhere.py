"""Every endpoint in the OpenAPI document refuses a missing, a forged and a wrong-role key."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.service import running_service

pytestmark = pytest.mark.integration
PUBLIC = {"/healthz", "/readyz", "/metrics"}  # operational, no data: scraped by probes and Prometheus
ROLE_OF_PREFIX = {"/v1/records": "intake", "/v1/subscribers": "subscriber", "/v1/ig": "ig_auditor",
                  "/v1/admin": "admin", "/v1/decisions": "decision_maker", "/v1/hub": "hub_decision",
                  "/v1/insight": "insight"}


def _concrete(path: str) -> str:
    values = {"agency": "health", "name": "test_hub", "subject": "lt1_" + "A" * 32, "deadletter_id": "x"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)


async def test_every_endpoint_needs_the_right_role(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        spec = (await http.get(f"{svc.base_url}/openapi.json")).json()
        checked = 0
        for path, methods in spec["paths"].items():
            if path in PUBLIC:
                continue
            role = next(r for prefix, r in ROLE_OF_PREFIX.items() if path.startswith(prefix))
            wrong = "ig_auditor" if role != "ig_auditor" else "subscriber:test_hub"
            for method in methods:
                url = f"{svc.base_url}{_concrete(path)}"
                assert (await http.request(method, url)).status_code == 401, (method, path)
                forged = {"Authorization": "Bearer mbk_" + "x" * 43}
                assert (await http.request(method, url, headers=forged)).status_code == 401, (method, path)
                r = await http.request(method, url, headers=svc.headers(wrong))
                assert r.status_code == 403, (method, path, r.status_code)
                checked += 1
        assert checked >= 15
