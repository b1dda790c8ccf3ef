"""Promise: dead letters are bounded: one sealed copy of a rejected input per request, rejections that reference
it, a bounded number of records, and every message within Kafka's message size; an input too large to keep is
refused up front (413) naming the limit, with nothing published (defect 6, and defect 5's 503 forever).
"""

from __future__ import annotations

import hashlib

import httpx

from broker.pipeline.deadletter import INPUT_KIND, MAX_REJECTION_RECORDS
from broker.service.intake import message_limit
from tests.integration.intake_helpers import (
    FHIR_JSON,
    audit_entries,
    bad_patient,
    bundle,
    patient,
    topic_bytes,
    topic_values,
)
from tests.integration.service import running_service
from tests.integration.topics import read_topic


async def test_four_hundred_bad_records_leave_one_sealed_copy(kafka_bootstrap, tmp_path):
    """Promise: a ~250 KB file with 400 bad records puts about one sealed copy of itself on the dead-letter topic
    (not 400), with at most MAX_REJECTION_RECORDS records and one summary, while the answer lists all 400."""
    body = bundle(*(bad_patient(i) for i in range(400)))
    assert 150_000 < len(body) < 300_000  # the fixture patient names a GP practice since session 8
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=60) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **FHIR_JSON))
        assert r.status_code == 422, r.text
        assert len(r.json()["rejections"]) == 400
        topic = svc.settings.topics.deadletter
        letters = await topic_values(kafka_bootstrap, topic)
        inputs = [m for m in letters if m.get("kind") == INPUT_KIND]
        records = [m for m in letters if "deadletter_id" in m]
        assert len(inputs) == 1 and inputs[0]["content_sha256"] == hashlib.sha256(body).hexdigest()
        assert len(records) == MAX_REJECTION_RECORDS + 1  # the listed ones and one summary of the rest
        assert all(m["input_ref"] == inputs[0]["content_sha256"] and "input" not in m for m in records)
        assert "300 further rejected record(s)" in records[-1]["rejection"]["reason"]  # one dead letter a record
        assert len(r.json()["deadletter_ids"]) == len(records)
        # the whole topic: about one sealed copy (base64: 4/3), not 400 (the defect put ~90 MB here)
        assert len(await topic_bytes(kafka_bootstrap, topic)) < 2 * len(body)
        audit = await audit_entries(svc, inputs[0]["content_sha256"], want=2 * len(records) + 1)
        kinds = [e["record"]["kind"] for e in audit if e.get("record", {}).get("content_sha256") ==
                 inputs[0]["content_sha256"]]
        assert kinds.count("deadlettered") == len(records) and kinds.count("record_rejected") == len(records)


async def test_a_rejected_input_over_the_message_limit_is_refused_with_nothing_published(kafka_bootstrap, tmp_path):
    """Promise: a >1 MB input with one bad record among 2,400 good ones is refused whole (413, naming the limit)
    before anything is published: no event is delivered, nothing is dead-lettered, and no 503 invites a resend."""
    body = bundle(*(patient(i) for i in range(2400)), bad_patient(9999))
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=120) as http:
        assert len(body) > message_limit(svc.runtime)
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **FHIR_JSON))
        assert r.status_code == 413, r.text
        assert str(message_limit(svc.runtime)) in r.json()["detail"] and "split" in r.json()["detail"]
        assert r.json()["accepted"] == 0 and "Retry-After" not in r.headers
        assert await read_topic(kafka_bootstrap, svc.settings.topics.events) == []
        assert await read_topic(kafka_bootstrap, svc.settings.topics.deadletter) == []
        # the refusal itself is accounted for in the audit log, value-free
        audit = await audit_entries(svc, hashlib.sha256(body).hexdigest(), want=2)
        mine = [e["record"] for e in audit if e.get("record", {}).get("content_sha256") ==
                hashlib.sha256(body).hexdigest()]
        assert {m["kind"] for m in mine} == {"record_received", "record_rejected"}
        assert not [m for m in mine if m["kind"] == "event_published"]
        # the same input without its bad record is taken: the limit is about keeping rejected inputs only
        good = bundle(*(patient(i) for i in range(2400)))
        r = await http.post(f"{svc.base_url}/v1/records/health", content=good,
                            headers=svc.headers("intake:health", **FHIR_JSON))
        assert r.status_code == 202 and r.json()["accepted"] == 2400


async def test_every_dead_letter_message_fits_the_topic(kafka_bootstrap, tmp_path):
    """Promise: a large rejected input within the limit (600 KB, 200 children: one share of the seal each) is kept,
    and every message on the dead-letter topic is within the producer's message size (no MessageSizeTooLargeError,
    no 503)."""
    patients = [bad_patient(0)]
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=120) as http:
        limit = message_limit(svc.runtime)
        while len(bundle(*patients)) < 600_000:
            patients.append(patient(len(patients)))
        r = await http.post(f"{svc.base_url}/v1/records/health", content=bundle(*patients),
                            headers=svc.headers("intake:health", **FHIR_JSON))
        assert r.status_code == 202, r.text[:500]
        sizes = [len(m.value) for m in await read_topic(kafka_bootstrap, svc.settings.topics.deadletter)]
        assert len(sizes) == 2 and max(sizes) < limit
