"""Promise: personal data never leaks, not into logs, errors, metrics, audit, registers or Kafka in the clear.

The attacker's view: plant unmistakable fictitious values in a child's record (and in a record that is rejected,
and one whose rejection is reprocessed), drive every path a value could escape by (intake answers, dead letters,
deliveries, pulls, IG search/timeline/report/exports, readiness, metrics, logs), then search every byte the broker
produced or kept for them: every Kafka topic raw, every file in the data directory, every HTTP answer and every log
line. Only the subscriber, opening its sealed delivery with its own private key, may read them; and an IG officer
the child's name and birth date in the subject access report, which reveals them for that report alone.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.logging import configure
from tests.integration.service import running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration

# Fictitious values, chosen to be unmistakable: a word no adapter, schema or code contains, and a valid NHS number in
# the 999 test range.
FAMILY, GIVEN, STREET, TOWN = "Quorvexian", "Blythwick", "Marrowind Lane", "Tessingworth"
NHS, BIRTH = "9990001014", "2014-07-23"
BAD_VALUE = "Zelquorant-31/02/2014"
MARKERS = [FAMILY, GIVEN, STREET, TOWN, NHS, BIRTH, BAD_VALUE]


def _patient(record_id: str, birth: str) -> bytes:
    return json.dumps({
        "resourceType": "Patient", "id": record_id, "gender": "female", "birthDate": birth,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
        "name": [{"use": "official", "family": FAMILY, "given": [GIVEN]}],
        "address": [{"line": [f"12 {STREET}"], "city": TOWN, "postalCode": "LS1 4HR"}]}).encode()


def _leaks(blob: bytes) -> list[str]:
    return [m for m in MARKERS if m.encode() in blob]


async def _audited(svc: Any, wanted: Callable[[dict[str, Any]], bool], attempts: int = 600) -> None:
    """Return once the audit store holds a record `wanted` accepts (the indexer chains asynchronously)."""
    for _ in range(attempts):
        if any(wanted(e["record"]) for e in svc.runtime.audit_store.search(limit=10000)):
            return
        await asyncio.sleep(0.1)  # a poll of the condition, not a wait standing in for it
    raise AssertionError("the audit store never held the expected record")


async def test_planted_values_appear_nowhere_but_in_the_subscribers_sealed_view(kafka_bootstrap, tmp_path: Path):
    logs = io.StringIO()
    configure("DEBUG", "json", stream=logs)
    stdlib = io.StringIO()
    handler = logging.StreamHandler(stdlib)
    logging.getLogger().addHandler(handler)
    answers: list[bytes] = []
    try:
        async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
            u = svc.base_url
            fhir = {"Content-Type": "application/fhir+json"}

            async def call(method: str, path: str, actor: str | None, **kw) -> httpx.Response:
                headers = {**(svc.headers(actor) if actor else {}), **kw.pop("headers", {})}
                r = await http.request(method, u + path, headers=headers, **kw)
                answers.append(r.content)
                assert r.status_code < 500, (path, r.status_code)
                return r

            good = await call("POST", "/v1/records/health", "intake:health", content=_patient("leak-1", BIRTH),
                              headers=fhir)
            assert good.status_code == 202, good.text
            bad = await call("POST", "/v1/records/health", "intake:health", content=_patient("leak-2", BAD_VALUE),
                             headers=fhir)
            assert bad.status_code == 422 and bad.json()["deadletter_ids"]
            # the same bad input under a wrong credential, a wrong agency and a wrong content type
            await call("POST", "/v1/records/health", None, content=_patient("leak-3", BAD_VALUE), headers=fhir)
            await call("POST", "/v1/records/police", "intake:health", content=_patient("leak-4", BAD_VALUE),
                       headers=fhir)
            await call("POST", "/v1/records/health", "intake:health", content=_patient("leak-5", BAD_VALUE),
                       headers={"Content-Type": "text/csv"})

            # the subscriber's own view is the one place the values exist, opened with its private key
            opened = await svc.pull_until(http, "test_hub", 1)
            assert opened[0]["subject"]["child"]["family_name"] == FAMILY.upper() or \
                opened[0]["subject"]["child"]["family_name"] == FAMILY
            page = await call("GET", "/v1/subscribers/test_hub/events", "subscriber:test_hub")
            await call("POST", "/v1/subscribers/test_hub/ack", "subscriber:test_hub",
                       json={"cursor": page.json()["next_cursor"]})
            token = opened[0]["subject"]["linkage"]["token"]

            # reprocessing the dead letter rejects it again, and says so without the value
            [deadletter_id] = bad.json()["deadletter_ids"][:1]
            await call("POST", f"/v1/admin/deadletters/{deadletter_id}/reprocess", "admin")

            # the audit indexer has chained what the service and worker emitted: the delivery to the hub and the
            # reprocessing (waited for, so the report and IG answers below are searched when they hold it)
            await _audited(svc, lambda r: r["kind"] == "delivered" and r.get("subject") == token
                           and r.get("subscriber") == "test_hub")
            await _audited(svc, lambda r: r.get("action") == "deadletter.reprocess"
                           and r.get("target") == deadletter_id)
            # the subject access report is the one answer that names the child, to an IG key, the reveal audited:
            # its name and birth date, and nothing else planted (no address, no NHS number, no bad value)
            report = await http.get(f"{u}/v1/ig/children/{token}/report", headers=svc.headers("ig_auditor"))
            assert report.status_code == 200 and set(_leaks(report.content)) <= {FAMILY, GIVEN, BIRTH}
            assert FAMILY.lower() in report.text.lower() and BIRTH in report.text
            for path in ("/v1/ig/search?limit=1000", f"/v1/ig/children/{token}/timeline",
                         "/v1/ig/deadletters", "/v1/ig/verification",
                         "/v1/ig/subscribers/test_hub/disclosures", "/v1/ig/protocols"):
                await call("GET", path, "ig_auditor")
            for path in ("/metrics", "/readyz", "/healthz"):
                await call("GET", path, None)

            prefix = svc.settings.topic_prefix
            topics = [f"{prefix}.events", f"{prefix}.deadletter", f"{prefix}.audit", f"{prefix}.deliver.test_hub",
                      f"{prefix}.deliver.test_other"]
            raw = {t: b"".join((m.key or b"") + (m.value or b"") + b"".join(v for _, v in m.headers)
                               for m in await read_topic(kafka_bootstrap, t)) for t in topics}
            assert raw[f"{prefix}.events"] and raw[f"{prefix}.deadletter"] and raw[f"{prefix}.deliver.test_hub"]
            data_dir = svc.settings.data_dir
    finally:
        logging.getLogger().removeHandler(handler)
        configure()

    found = {f"topic {t}": _leaks(blob) for t, blob in raw.items()}
    found |= {f"file {p.relative_to(data_dir)}": _leaks(p.read_bytes()) for p in data_dir.rglob("*") if p.is_file()}
    found |= {f"HTTP answer {i}": _leaks(a) for i, a in enumerate(answers)}
    found["structured logs"] = _leaks(logs.getvalue().encode())
    found["stdlib logs"] = _leaks(stdlib.getvalue().encode())
    leaks = {where: what for where, what in found.items() if what}
    assert not leaks, f"planted values found in the clear: {leaks}"
    # and the search looked at something real: the audit answer is not empty, the sealed delivery opens
    assert any(b'"kind"' in a for a in answers) and base64.b64decode(page.json()["deliveries"][0]["sealed"])
