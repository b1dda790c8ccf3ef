"""Intake over HTTP -> adapter -> validate -> encrypt -> Kafka -> share -> sealed delivery -> subscriber, for real:
on the session's Kafka (Apache Kafka where Java 17+ is to hand) and on the embedded Tansu (either_kafka)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from broker.crypto.split_seal import open_split
from broker.service.messages import decode, header
from tests.integration.service import running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
OTHER_EVENT = b"00000000-0000-4000-8000-0000000000f1"


async def test_uk_core_patient_reaches_the_subscriber_through_kafka(either_kafka, external_cases, tmp_path):
    body = (external_cases / "health" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes()
    async with running_service(tmp_path, either_kafka) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+xml"}))
        assert r.status_code == 202, r.text
        [accepted] = r.json()["events"]
        assert accepted["event_type"] == "person.identified"

        [event] = await svc.pull_until(http, "test_hub", 1)
        assert event["event_id"] == accepted["event_id"]
        child = event["subject"]["child"]
        assert child["nhs_number"] == "9912003888" and child["family_name"] == "SMITH"
        assert child["date_of_birth"] == "1970"  # masked year-only, as the rule says
        assert "phones" not in child  # contact withheld
        assert event["delivery"]["rule_id"] == "hub-person-and-health"

        # the read is audited under the credential that read it, not only the role
        hub_key = svc.runtime.api_keys.authenticate(svc.credentials["subscriber:test_hub"])
        for _ in range(50):
            reads = svc.runtime.audit_store.search(kind="delivery_read", subscriber="test_hub")
            if reads:
                break
            await asyncio.sleep(0.1)
        assert reads and {r["record"]["actor"] for r in reads} == {f"subscriber:test_hub:{hub_key.key_id}"}

        # default deny: the other subscriber has no rule for this event and receives nothing
        r = await http.get(f"{svc.base_url}/v1/subscribers/test_other/events",
                           headers=svc.headers("subscriber:test_other"))
        assert r.status_code == 200 and r.json()["deliveries"] == []

        # a resent record has the same event id and is not delivered twice
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+xml"}))
        assert r.json()["events"][0]["event_id"] == accepted["event_id"]
        await asyncio.sleep(1.0)
        assert len(await svc.pull_until(http, "test_hub", 1)) == 1

        # nothing personal is readable on the events topic
        raw = await read_topic(either_kafka, svc.settings.topics.events, 2)
        text = b"".join(m.value for m in raw)
        for secret in (b"9912003888", b"SMITH", b"Richard", b"Sandmoor", b"LS17", b"1970-09-11"):
            assert secret not in text
        assert decode(raw[0].value)["event_id"] == accepted["event_id"]


async def test_malformed_record_gets_a_precise_4xx_and_is_dead_lettered(either_kafka, tmp_path):
    bad = b'{"resourceType": "Patient", "id": "p9", "birthDate": "31/02/2015", "gender": "female"}'
    async with running_service(tmp_path, either_kafka) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=bad,
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 422, r.text
        [rejection] = r.json()["rejections"]
        assert rejection["field"] == "Patient.birthDate" and rejection["record"] == "Patient"
        assert "31/02/2015" not in r.text
        [dl_id] = r.json()["deadletter_ids"]

        kept, msg = await read_topic(either_kafka, svc.settings.topics.deadletter, 2)
        record, sealed = decode(msg.value), decode(kept.value)
        assert record["deadletter_id"] == dl_id
        assert record["rejection"]["field"] == "Patient.birthDate"
        assert record["input_ref"] == sealed["content_sha256"] == kept.key.decode()  # one sealed copy, referenced
        assert b"31/02/2015" not in msg.value + kept.value  # the input is sealed, not in the clear
        assert open_split(sealed["sealed"], f"deadletter:{sealed['content_sha256']}", svc.runtime.keys) == bad

        r = await http.post(f"{svc.base_url}/v1/records/health", content=b"<not-fhir/>",
                            headers=svc.headers("intake:health", **{"Content-Type": "text/csv"}))
        assert r.status_code == 415


async def test_wrong_credentials_are_refused_everywhere(either_kafka, tmp_path):
    async with running_service(tmp_path, either_kafka) as svc, httpx.AsyncClient(timeout=30) as http:
        u = svc.base_url
        calls = [("POST", f"{u}/v1/records/health"), ("GET", f"{u}/v1/subscribers/test_hub/events"),
                 ("POST", f"{u}/v1/subscribers/test_hub/ack"), ("GET", f"{u}/v1/subscribers/test_hub/stream")]
        for method, url in calls:
            assert (await http.request(method, url)).status_code == 401
            r = await http.request(method, url, headers={"Authorization": "Bearer mbk_forged"})
            assert r.status_code == 401
        # a valid key of the wrong role or scope
        r = await http.post(f"{u}/v1/records/health", headers=svc.headers("intake:police"), content=b"{}")
        assert r.status_code == 403
        r = await http.get(f"{u}/v1/subscribers/test_hub/events", headers=svc.headers("subscriber:test_other"))
        assert r.status_code == 403
        r = await http.get(f"{u}/v1/subscribers/test_hub/events", headers=svc.headers("ig_auditor"))
        assert r.status_code == 403


async def test_a_redelivered_copy_on_the_delivery_topic_is_served_once(either_kafka, external_cases, tmp_path):
    """A worker killed between Kafka's ack and its delivered-log write sends the delivery again on restart; here the
    second copy is put on the topic directly. Pull and SSE serve the first copy, and re-reading it (before an ack)
    serves it again; the cursor moves past the copy."""
    body = (external_cases / "health" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes()
    async with running_service(tmp_path, either_kafka) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+xml"}))
        assert r.status_code == 202, r.text
        await svc.pull_until(http, "test_hub", 1)
        [original] = await read_topic(either_kafka, svc.settings.topics.deliver("test_hub"), 1)
        await svc.runtime.producer.send_and_wait(svc.settings.topics.deliver("test_hub"), original.value,
                                                 key=original.key, headers=list(original.headers))
        other = await svc.runtime.producer.send_and_wait(  # another event after the copy: the stream goes on
            svc.settings.topics.deliver("test_hub"), original.value, key=original.key,
            headers=[(k, OTHER_EVENT if k == "event_id" else v) for k, v in original.headers])
        hub = svc.headers("subscriber:test_hub")
        for _ in range(2):  # the first copy is served again on a re-read; the redelivered copy never
            page = (await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", headers=hub)).json()
            # offsets as Kafka gave them (a transactional write leaves a commit marker between records)
            assert [d["offset"] for d in page["deliveries"]] == [original.offset, other.offset]
        r = await http.post(f"{svc.base_url}/v1/subscribers/test_hub/ack", json={"cursor": page["next_cursor"]},
                            headers=hub)
        assert r.status_code == 200
        assert (await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", headers=hub)).json()[
            "deliveries"] == []


async def test_an_event_twice_in_one_batch_is_delivered_once(either_kafka, tmp_path):
    """Both copies reach the events topic together, so the share worker meets them in one batch."""
    from broker.bench.records import BY_NAME

    body = BY_NAME["health.fhir"].make(5, 5)  # a Bundle holding the same fictitious Patient twice
    async with running_service(tmp_path, either_kafka) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 202, r.text
        first, second = (e["event_id"] for e in r.json()["events"])
        assert first == second
        [event] = await svc.pull_until(http, "test_hub", 1)
        await asyncio.sleep(1.0)  # time for a second copy to arrive, were there one
        copies = await read_topic(either_kafka, svc.settings.topics.deliver("test_hub"))  # all of it
        assert [header(m.headers, "event_id") for m in copies] == [first] and event["event_id"] == first
