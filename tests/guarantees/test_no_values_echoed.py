"""Promise: a rejection names positions, schema paths and reasons, never the sender's text, not even a name it
chose for a key, a resource type, an element, an attribute or a column (defect 10).

The attacker plants a marker in every place a sender controls a name, in every format, and looks for it in the
rejections, the audit records they make, the HTTP answer and the dead-letter topic.
"""

from __future__ import annotations

import hashlib
import os

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from adapters.kit.interface import AdaptContext
from broker.audit.record import audit_record
from broker.bench.records import BY_NAME
from broker.pipeline.identify import LinkageKey
from broker.pipeline.intake import prepare
from tests.adapters.marking import SYSTEMS, echoes, marked_inputs
from tests.integration.intake_helpers import FHIR_JSON, audit_entries, bundle, patient, topic_bytes
from tests.integration.service import running_service

KEY = LinkageKey(1, b"k" * 32)
CTX = AdaptContext(source="request", received_at="2026-01-01T00:00:00Z")
SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(marked_inputs())
def test_a_name_the_sender_chose_is_never_echoed_by_any_adapter(case) -> None:
    """Promise: no adapter (nor the schema check after it) copies a key, resource type, element, attribute, column
    or segment name from the input into a rejection, and every rejection makes a valid audit record."""
    adapter, agency, content_type, body, _marker = case
    ctx = AdaptContext(source="request", received_at=CTX.received_at, system=SYSTEMS.get(adapter))
    prepared = prepare(agency, body, ctx, KEY, content_type=content_type)
    for rejection in prepared.rejections:
        assert not echoes(str(rejection)), (adapter, str(rejection))
        # what intake will write to the audit log for it: the schema refuses '@', ten digits, line breaks
        audit_record("record_rejected", time=CTX.received_at, actor="intake:health", agency=agency,
                     content_sha256="0" * 64, reason=rejection.reason, position=rejection.record or None,
                     field=rejection.field or None)


MARKER = "Qqmarkqq@example1234567890"


async def test_a_planted_name_reaches_no_answer_audit_record_or_dead_letter(kafka_bootstrap, tmp_path):
    """Promise: an unknown resource type or key name (with '@' and digits) is echoed neither in the HTTP answer,
    nor in the audit log, nor on the dead-letter topic, and the good record beside it is still accepted."""
    unknown_type = {"resourceType": MARKER, "id": "x1"}
    unknown_key = {**patient(2), MARKER: "x"}
    nested_key = {**patient(3), "name": [{"family": "Example", MARKER: ["x"]}]}
    body = bundle(patient(1), unknown_type, unknown_key, nested_key)
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **FHIR_JSON))
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 1 and len(r.json()["rejections"]) == 3
        assert not echoes(r.text)
        fields = {x["field"] for x in r.json()["rejections"]}
        assert "Bundle.entry[2]" not in fields and any(f.startswith("Patient") for f in fields)
        entries = await audit_entries(svc, hashlib.sha256(body).hexdigest(), want=8)
        kinds = [e["record"]["kind"] for e in entries if "record" in e]
        assert kinds.count("record_rejected") == 3 and "event_published" in kinds
        assert not echoes(orjson.dumps(entries).decode())
        assert not echoes((await topic_bytes(kafka_bootstrap, svc.settings.topics.deadletter)).decode("latin-1"))


@pytest.mark.parametrize(("agency", "content_type", "body"), [
    ("police", "application/vnd.mash.pole+json",
     orjson.dumps({**orjson.loads(BY_NAME["police.pole"].make(1)), MARKER: 1})),
    ("health", "application/fhir+xml", b'<Qqmarkqq xmlns="urn:x"><id value="1"/></Qqmarkqq>'),
    ("health", "application/fhir+json", orjson.dumps({"resourceType": MARKER})),
])
async def test_a_wholly_rejected_input_does_not_echo_its_names(kafka_bootstrap, tmp_path, agency, content_type, body):
    """Promise: when every record is refused for a name it chose, the 4xx answer still names no name."""
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/{agency}", content=body,
                            headers=svc.headers(f"intake:{agency}", **{"Content-Type": content_type}))
        assert r.status_code == 422, r.text
        assert r.json()["rejections"] and not echoes(r.text)
