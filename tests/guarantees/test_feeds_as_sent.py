"""Promise: a feed is read as agencies really send it, and nothing is merged or dropped without a word.

HL7 v2 is recognised by its content whatever its label; two different messages never share an event id, while a
resend of the same bytes still deduplicates; an input with no child in it is answered as such, never taken for an
error nor passed over in silence. Inputs are fictitious, written from HL7 v2 chapter 2 and FHIR R4.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.service import running_service

pytestmark = pytest.mark.integration


def adt(control: str, birth: str) -> bytes:
    return ("MSH|^~\\&|PAS|RXX01|MASH|MASH|20240301101500||ADT^A08^ADT_A08|" + control + "|P|2.4\r"
            "EVN|A08|20240301101500\r"
            "PID|1||9990000018^^^NHS^NH||Example^Testchild||" + birth + "|F\r").encode()


@pytest.fixture(scope="module")
async def svc(kafka_bootstrap, tmp_path_factory):
    async with running_service(tmp_path_factory.mktemp("feeds"), kafka_bootstrap) as s:
        yield s


@pytest.fixture(scope="module")
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def post(svc, http, body: bytes, content_type: str) -> httpx.Response:
    return await http.post(f"{svc.base_url}/v1/records/health", content=body,
                           headers=svc.headers("intake:health", **{"Content-Type": content_type}))


async def test_hl7_labelled_as_plain_text_is_read_not_refused(svc, http) -> None:
    """Try to break it: send an ADT message as text/plain, the way file-drop bridges label .txt extracts."""
    r = await post(svc, http, b"\x0b" + adt("FEED-1", "20150102") + b"\x1c\r", "text/plain")
    assert r.status_code == 202, r.text
    assert r.json()["adapter"] == "health.hl7v2"
    assert [e["event_type"] for e in r.json()["events"]] == ["person.updated"]


async def test_same_control_id_and_time_with_different_content_is_never_merged(svc, http) -> None:
    """Try to break it: resend a control id and time with a corrected birth date; both must be kept, apart."""
    first = await post(svc, http, adt("FEED-2", "20150102"), "application/hl7-v2")
    corrected = await post(svc, http, adt("FEED-2", "20150103"), "application/hl7-v2")
    again = await post(svc, http, adt("FEED-2", "20150102"), "application/hl7-v2")
    ids = [r.json()["events"][0]["event_id"] for r in (first, corrected, again)]
    assert ids[0] != ids[1]  # different content: a different event, not a silent duplicate
    assert ids[0] == ids[2]  # the same bytes again: the same event, deduplicated downstream


@pytest.mark.parametrize(("body", "content_type"), [
    (json.dumps({"resourceType": "Organization", "id": "la-1", "name": "Test Council"}).encode(),
     "application/fhir+json"),
    (b"BHS|^~\\&|PAS|RXX01\rBTS|0\r", "text/plain"),
])
async def test_an_input_with_no_child_is_answered_as_such(svc, http, body: bytes, content_type: str) -> None:
    """Try to break it: send an input with no child; the answer must say so, neither an error nor a bare 202."""
    r = await post(svc, http, body, content_type)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["accepted"] == 0 and answer["rejections"] == [] and answer["deadletter_ids"] == []
    assert answer["note"] == "no child in this input: nothing to publish"
    assert "Test Council" not in r.text
