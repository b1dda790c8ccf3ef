"""Promise: intake is all or nothing per request for what it acknowledges: a 202 means Kafka acknowledged every
accepted event, every dead letter and every audit record of the request; any other answer means nothing of it was
published, and no input makes a 5xx after good records were published (defect 5).

Limit (stated in the README): without Kafka transactions, a Kafka failure half way through sending can leave some of
a request's messages on their topics behind a 503; the resend carries the same event ids and is deduplicated.
"""

from __future__ import annotations

import hashlib

import httpx
import pytest

from adapters.kit.interface import Rejection
from broker.audit.record import audit_record
from broker.service.intake import UNRECORDABLE, recordable
from tests.integration.intake_helpers import FHIR_JSON, audit_entries, bundle, patient, topic_values
from tests.integration.service import running_service
from tests.integration.topics import read_topic


@pytest.mark.parametrize("bad_entry", [
    {"resourceType": "Patient@1", "id": "x1"},
    {"resourceType": "Observation1234567890", "id": "x2"},
    {**patient(7), "extension@home": [{"url": "http://example.org/x"}]},
    {**patient(8), "name": [{"family": "Example", "given9999999999": ["x"]}]},
])
async def test_an_entry_that_made_an_invalid_audit_record_is_a_rejection_not_a_500(either_kafka, tmp_path,
                                                                                   bad_entry):
    """Promise: a FHIR entry whose resourceType or key name carries an '@' or ten digits (which made an invalid
    audit record: 500 after the good record was published) is a value-free rejection; the answer is 202 and every
    event, dead letter and audit record of the request is on Kafka."""
    body = bundle(patient(1), bad_entry)
    digest = hashlib.sha256(body).hexdigest()
    async with running_service(tmp_path, either_kafka) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **FHIR_JSON))
        assert r.status_code == 202, r.text
        [accepted] = r.json()["events"]
        [rejection] = r.json()["rejections"]
        assert rejection["record"] == "Bundle.entry[1]" and "@" not in r.text and "999999999" not in r.text
        events = await read_topic(either_kafka, svc.settings.topics.events)
        assert [m.key for m in events] and len(events) == 1
        letters = await topic_values(either_kafka, svc.settings.topics.deadletter)
        assert [m["deadletter_id"] for m in letters if "deadletter_id" in m] == r.json()["deadletter_ids"]
        audit = [e["record"] for e in await audit_entries(svc, digest, want=5)
                 if e.get("record", {}).get("content_sha256") == digest]
        kinds = sorted(a["kind"] for a in audit)
        assert kinds == ["deadlettered", "event_published", "record_adapted", "record_received", "record_rejected"]
        assert [a["event_id"] for a in audit if a["kind"] == "event_published"] == [accepted["event_id"]]


@pytest.mark.parametrize("rejection", [
    Rejection("request", "Bundle.entry[1]", "", "unknown type a.person@example.org"),
    Rejection("request", "Patient@1", "Patient@1.name", "bad"),
    Rejection("request", "record 1", "nhs_number 9990000018", "no"),
    Rejection("request", "record 1\nsecond line", "", "why\r\n"),
    Rejection("request", "record 2", "", ""),
])
def test_a_rejection_the_audit_log_cannot_hold_is_replaced_by_a_value_free_one(rejection):
    """Promise (the backstop behind every adapter): whatever an adapter puts in a rejection, intake makes it a
    rejection the audit schema accepts, keeping only the parts that are recordable: never a 500 at audit time."""
    safe = recordable(rejection)
    record = audit_record("record_rejected", time="2026-01-01T00:00:00Z", actor="intake:health", agency="health",
                          content_sha256="0" * 64, reason=safe.reason, position=safe.record or None,
                          field=safe.field or None)
    assert record["reason"] and "@" not in str(record) and "9990000018" not in str(record)
    assert safe != rejection and (safe.reason == rejection.reason or safe.reason == UNRECORDABLE)


async def test_a_refused_input_publishes_no_event(either_kafka, tmp_path):
    """Promise: when an input is refused whole (here: rejected and too large to keep as a dead letter), no event of
    its good records reaches the events topic or any subscriber, and the answer is a 4xx, not a 503."""
    from tests.integration.intake_helpers import bad_patient

    body = bundle(*(patient(i) for i in range(2400)), bad_patient(1))
    async with running_service(tmp_path, either_kafka) as svc, httpx.AsyncClient(timeout=120) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **FHIR_JSON))
        assert r.status_code == 413, r.text[:300]
        assert await read_topic(either_kafka, svc.settings.topics.events) == []
        pulled = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events",
                                headers=svc.headers("subscriber:test_hub"))
        assert pulled.status_code == 200 and pulled.json()["deliveries"] == []
