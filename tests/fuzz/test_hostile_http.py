"""Hostile input over HTTP: oversized bodies, XML external entities and entity expansion, deeply nested JSON, wrong
content types and charsets, broken headers. Each gets a clear 4xx, never a 5xx; every record refused after it was
read is dead-lettered (its dead-letter id is in the answer). A body refused unread (413) is not stored: the caller
still holds it and is told why."""

from __future__ import annotations

import base64
import gzip
import json

import httpx
import pytest

from broker.bench.records import ctf_pupil, fhir_patient, pole_incident
from tests.integration.service import running_service

pytestmark = pytest.mark.integration
LIMIT = 64 * 1024

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE CTfile [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<CTfile><Header><DocumentName>Common Transfer File</DocumentName><CTFversion>24.0</CTFversion></Header>
<CTFpupilData><Pupil><Surname>&xxe;</Surname></Pupil></CTFpupilData></CTfile>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Message [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>
<Message><Header><CollectionDetails><Collection>CIN</Collection></CollectionDetails></Header>
<Children><Child><ChildIdentifiers><LAchildID>&f;</LAchildID></ChildIdentifiers></Child></Children></Message>"""
REMOTE_DTD = b"""<?xml version="1.0"?><!DOCTYPE CTfile SYSTEM "http://127.0.0.1:9/evil.dtd"><CTfile/>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><CTfile/>"""

# (agency, content type, body): each must be refused with a 4xx that names why, and be dead-lettered
REFUSED = [
    ("education", "application/xml", XXE),
    ("education", "application/xml", REMOTE_DTD),
    ("education", "application/xml", PARAMETER_ENTITY),
    ("social_care", "application/xml", LAUGHS),
    ("health", "application/fhir+json", b"[" * 30_000 + b"]" * 30_000),
    ("health", "application/fhir+json", b'{"resourceType":"Bundle","entry":' + b'[{"resource":' * 2000 + b"{}"
     + b"}]" * 2000 + b"}"),
    ("police", "application/vnd.mash.pole+json", b'{"records":' + b"[" * 20_000 + b"]" * 20_000 + b"}"),
    ("health", "application/fhir+json", "{\"resourceType\": \"Patient\"}".encode("utf-16")),
    ("health", "application/fhir+json; charset=utf-16", fhir_patient(1).decode().encode("utf-16")),
    ("health", "application/fhir+json; charset=latin-1", fhir_patient(1).replace(b"Testchild", b"Test\xe9child")),
    ("police", "application/vnd.mash.pole+json", pole_incident(1)[:-7]),
    ("education", "text/xml", ctf_pupil(1).replace(b"<CTfile>", b"<CTfile>\x00")),
    ("health", "application/fhir+json", b""),
    # content types no adapter of the agency reads (415)
    ("health", "text/plain", fhir_patient(1)),
    ("police", "application/xml", pole_incident(1)),
    ("education", "application/fhir+json", ctf_pupil(1)),
    ("social_care", "text/csv; charset=utf-8", b"not,a,known,header\r\n1,2,3,4\r\n"),
]


@pytest.fixture(scope="module")
async def svc(kafka_bootstrap, tmp_path_factory):
    async with running_service(tmp_path_factory.mktemp("hostile"), kafka_bootstrap, max_body_bytes=LIMIT) as s:
        yield s


@pytest.fixture(scope="module")
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.mark.parametrize(("agency", "content_type", "body"), REFUSED,
                         ids=[f"{i}-{a}-{c.split(';')[0] or 'none'}" for i, (a, c, _) in enumerate(REFUSED)])
async def test_hostile_record_is_refused_with_a_4xx_and_dead_lettered(svc, http, agency, content_type, body):
    headers = svc.headers(f"intake:{agency}", **({"Content-Type": content_type} if content_type else {}))
    r = await http.post(f"{svc.base_url}/v1/records/{agency}", content=body, headers=headers)
    assert r.status_code in (415, 422), r.text
    answer = r.json()
    assert answer["accepted"] == 0 and answer["rejections"]
    assert len(answer["deadletter_ids"]) == len(answer["rejections"])
    assert all(rej["reason"] for rej in answer["rejections"])
    for leaked in (b"root:", b"lollol", b"Testchild", b"Example1"):
        assert leaked not in r.content


async def test_oversized_bodies_get_413(svc, http):
    url, headers = f"{svc.base_url}/v1/records/health", svc.headers("intake:health", **{
        "Content-Type": "application/fhir+json"})
    r = await http.post(url, content=b" " * (LIMIT + 1), headers=headers)
    assert r.status_code == 413

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(LIMIT // 1024 + 2):
            yield b" " * 1024

    r = await http.post(url, content=chunks(), headers=headers)
    assert r.status_code == 413


@pytest.mark.parametrize("system", ["bad\u00e9system", "a" * 201, "<script>", "x;DROP TABLE"])
async def test_malformed_source_system_header_is_a_4xx(svc, http, system):
    headers = svc.headers("intake:health", **{"Content-Type": "application/fhir+json"})
    r = await http.post(f"{svc.base_url}/v1/records/health", content=fhir_patient(3),
                        headers={**headers, "X-Source-System": system.encode()})
    assert r.status_code == 422


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer mbk_" + "A" * 43, "Token abc", "Bearer \u00ff"])
async def test_missing_or_forged_credentials_get_401(svc, http, authorization):
    headers = {"Content-Type": "application/fhir+json"}
    if authorization is not None:
        headers["Authorization"] = authorization.encode()
    r = await http.post(f"{svc.base_url}/v1/records/health", content=fhir_patient(1), headers=headers)
    assert r.status_code == 401
    r = await http.get(f"{svc.base_url}/v1/subscribers/mash_hub/events", headers=headers)
    assert r.status_code == 401


async def test_wrong_scope_is_403_and_unknown_agency_404(svc, http):
    r = await http.post(f"{svc.base_url}/v1/records/health", content=fhir_patient(1),
                        headers=svc.headers("intake:police", **{"Content-Type": "application/fhir+json"}))
    assert r.status_code == 403
    r = await http.post(f"{svc.base_url}/v1/records/fire_service", content=b"{}",
                        headers=svc.headers("intake:health", **{"Content-Type": "application/json"}))
    # an agency that does not exist is named as that, before any scope check (it is not a question of rights)
    assert r.status_code == 404 and "unknown agency" in r.json()["detail"]
    assert "fire_service" not in r.text


def _cursor(positions: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(positions).encode()).decode().rstrip("=")


TOKEN = "lt1_" + "A" * 32
# Issue 14's hostile list beyond intake's parsers: (method, path, actor or None, body). Each a 4xx, never a 5xx, and
# the answer never repeats the fictitious child's name planted in it.
ISSUE_14 = [
    ("GET", f"/v1/ig/search?before_seq={2**64}", "ig_auditor", None),
    ("GET", f"/v1/ig/search?before_seq={2**200}", "ig_auditor", None),
    ("POST", "/v1/ig/policy/explain", "ig_auditor", {"subscriber": "test_hub", "event": {"subject": "Testchild"}}),
    ("POST", "/v1/ig/policy/explain", "ig_auditor",
     {"subscriber": "test_hub", "event": {"subject": {"child": ["Testchild"], "linkage": {"token": TOKEN}}}}),
    ("POST", "/v1/ig/policy/explain", "ig_auditor", {"subscriber": "Testchild", "event": {}}),
    ("POST", "/v1/subscribers/test_hub/ack", "subscriber:test_hub", {"cursor": _cursor({"0": 10**23})}),
    ("GET", f"/v1/subscribers/test_hub/events?after={_cursor({'0': 10**23})}", "subscriber:test_hub", None),
    ("PUT", f"/v1/admin/consent/{TOKEN}", "admin", {"status": "withdrawn", "objection": True}),  # never seen: 404
    ("PUT", f"/v1/admin/consent/lt{'9' * 30}_{'A' * 32}", "admin", {"status": "given"}),
    ("POST", f"/v1/admin/keys/shred/lt{'9' * 30}_{'A' * 32}", "admin", None),
    ("POST", "/v1/admin/deadletters/Testchild/reprocess", "admin", None),
    ("POST", "/v1/subscribers/test_hub/ack", None, b'{"cursor": "' + b"Testchild" * 8000 + b'"}'),  # 72 KB: 413
    ("POST", "/v1/ig/policy/explain", None, b'{"event": "' + b"Testchild" * 8000 + b'"}'),
    ("PUT", f"/v1/admin/consent/{TOKEN}", None, b"[" * 70_000),
    ("GET", "/v1/ig/search/", "ig_auditor", None),  # trailing slash: a 404, never a redirect built from Host
    ("POST", "/v1/records/health", "intake:health", gzip.compress(b'{"resourceType": "Patient", "id": "Testchild"}')),
    ("POST", "/v1/records/health", "intake:health", [{"resourceType": "Patient", "id": "Testchild"}]),
    ("POST", "/v1/records/health", "intake:health", '{"resourceType": "Testchild"}'.encode("utf-16")),
]


@pytest.mark.parametrize(("method", "path", "actor", "body"), ISSUE_14,
                         ids=[f"{i}-{m}-{p.split('?')[0][:40]}" for i, (m, p, _, _) in enumerate(ISSUE_14)])
async def test_issue_14_hostile_requests_get_a_value_free_4xx(svc, http, method, path, actor, body):
    headers = {"Host": "evil.example", "Content-Type": "application/fhir+json" if "/records/" in path
               else "application/json", **(svc.headers(actor) if actor else {})}
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    r = await http.request(method, f"{svc.base_url}{path}", content=content, headers=headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert "Testchild" not in r.text and "evil.example" not in r.headers.get("location", "")
    if actor is None:
        assert r.status_code == 413  # refused on size before authentication
