"""Promise: the broker fails closed. A key it cannot get is an error, never plaintext; a subscriber the protocol does
not name receives nothing; where the protocol says nothing, the answer is withhold.

The attacker's view: take the KMS away in the middle of the stream and send a new child's record (it needs a new
data key); ask for a subscriber that is not in the protocol; send a record no rule shares with a subscriber.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.crypto.vault_standin import VaultTransitStandIn
from tests.integration.service import running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
FHIR = {"Content-Type": "application/fhir+json"}


def _patient(record_id: str, nhs: str) -> bytes:
    return json.dumps({"resourceType": "Patient", "id": record_id, "gender": "female", "birthDate": "2015-02-03",
                       "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
                       "name": [{"family": "Fictitious", "given": ["Failclosed"]}]}).encode()


async def test_kms_gone_is_503_with_nothing_published_and_no_plaintext(kafka_bootstrap, tmp_path, monkeypatch):
    vault = VaultTransitStandIn("test-vault-token").__enter__()
    monkeypatch.setenv("MASH_KMS", "vault")
    monkeypatch.setenv("VAULT_ADDR", vault.addr)
    monkeypatch.setenv("VAULT_TOKEN", "test-vault-token")
    try:
        async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
            post = svc.headers("intake:health", **FHIR)
            first = await http.post(f"{svc.base_url}/v1/records/health", content=_patient("fc-1", "9990001006"),
                                    headers=post)
            assert first.status_code == 202, first.text
            await svc.pull_until(http, "test_hub", 1)

            vault.__exit__(None, None, None)  # the KMS goes away
            second = await http.post(f"{svc.base_url}/v1/records/health", content=_patient("fc-2", "9990001022"),
                                     headers=post)
            assert second.status_code == 503, second.text
            assert second.headers.get("Retry-After")
            assert "9990001022" not in second.text and "Failclosed" not in second.text

            await asyncio.sleep(1.0)
            events = await read_topic(kafka_bootstrap, svc.settings.topics.events)
            assert len(events) == 1, "an event was published although its keys could not be had"
            everything = b""
            for topic in (svc.settings.topics.events, svc.settings.topics.deadletter, svc.settings.topics.audit,
                          svc.settings.topics.deliver("test_hub")):
                everything += b"".join(m.value or b"" for m in await read_topic(kafka_bootstrap, topic))
            assert b"9990001022" not in everything and b"Failclosed" not in everything
            r = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events",
                               headers=svc.headers("subscriber:test_hub"))
            assert len(r.json()["deliveries"]) == 1  # only the first child's, sealed
    finally:
        vault.server.server_close()


async def test_unnamed_subscribers_and_silent_rules_get_nothing(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=_patient("fc-3", "9990001006"),
                            headers=svc.headers("intake:health", **FHIR))
        assert r.status_code == 202
        [event] = r.json()["events"]
        await svc.pull_until(http, "test_hub", 1)

        # a subscriber the protocol does not name: no key can read it, whatever the key's scope says
        for name in ("nobody", "test_hub_", "TEST_HUB", "..%2ftest_hub"):
            r = await http.get(f"{svc.base_url}/v1/subscribers/{name}/events",
                               headers=svc.headers("subscriber:test_hub"))
            assert r.status_code in (403, 404), (name, r.status_code)
            assert "deliveries" not in r.text

        # no rule shares this event with test_other: withheld, and the audit says so with no rule named
        r = await http.get(f"{svc.base_url}/v1/subscribers/test_other/events",
                           headers=svc.headers("subscriber:test_other"))
        assert r.status_code == 200 and r.json()["deliveries"] == []
        for _ in range(50):
            found = svc.runtime.audit_store.search(kind="decision", subscriber="test_other",
                                                   event_id=event["event_id"])
            if found:
                break
            await asyncio.sleep(0.1)
        [decision] = found
        assert decision["record"]["outcome"] == "withhold" and "rule_id" not in decision["record"]
