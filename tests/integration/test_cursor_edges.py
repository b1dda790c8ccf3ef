"""Defect 3: subscriber cursors. Only cursors this API issued to this subscriber, in this Kafka epoch, open; an ack
never moves backwards; SSE resumes from Last-Event-ID; a hostile cursor is a 4xx everywhere, never a 500."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import orjson
import pytest

from broker.service.delivery import CursorCodec, cursor_key
from tests.integration.protocols import child, health_protocol
from tests.integration.service import Service, running_service

pytestmark = pytest.mark.integration



def service(tmp_path, kafka_bootstrap):
    return running_service(tmp_path, kafka_bootstrap, str(health_protocol(tmp_path / "source")))


def legacy(obj: object) -> str:
    """A cursor as earlier versions issued them: base64 of JSON, unsigned."""
    return base64.urlsafe_b64encode(json.dumps(obj).encode() if not isinstance(obj, bytes) else obj).decode()


def forged(svc: Service, payload: dict) -> str:
    """A well-formed signed cursor whose payload was changed after signing (the MAC of the genuine one kept)."""
    genuine = svc.runtime.cursor_codec.issue("test_hub", {0: 1})
    mac = genuine.rsplit(".", 1)[1]
    return "c2." + base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode() + "." + mac


def hostile_cursors(svc: Service) -> dict[str, str]:
    codec = svc.runtime.cursor_codec
    epoch = codec.epoch
    return {
        "legacy huge offset": legacy({"0": 99999999999999999999999}),
        "legacy 64-bit overflow": legacy({"0": 2**63}),
        "legacy negative": legacy({"0": -1}),
        "legacy float": legacy({"0": 1.5}),
        "legacy huge partition": legacy({"99999999999999999999": 0}),
        "legacy list": legacy([1, 2]),
        "legacy string offset": legacy({"0": "5"}),
        "not base64": "%%%not-a-cursor%%%",
        "not json": legacy(b"\xff\xfe\x00"),
        "non-ascii": "c2.é.é",
        "empty mac": "c2.e30.",
        "no mac": "c2.e30",
        "forged beyond the end": forged(svc, {"e": epoch, "p": {"0": 10**9}}),
        "forged huge": forged(svc, {"e": epoch, "p": {"0": 99999999999999999999999}}),
        "another key": CursorCodec(cursor_key(b"another data directory's secret!"), epoch).issue("test_hub", {0: 1}),
        "another subscriber's": codec.issue("test_other", {0: 1}),
        "another epoch": CursorCodec(codec.key, "ke_000000000000000000000000").issue("test_hub", {0: 0}),
        "signed but out of range": CursorCodec(codec.key, epoch).issue("test_hub", {0: 2**63}),
        "long": "c2." + "A" * 1990,
    }


async def post(svc: Service, http: httpx.AsyncClient, n: int) -> str:
    r = await http.post(f"{svc.base_url}/v1/records/health", content=child(n),
                        headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
    assert r.status_code == 202, r.text
    return r.json()["events"][0]["event_id"]


async def pull(svc: Service, http: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", params=params,
                          headers=svc.headers("subscriber:test_hub"))


async def ack(svc: Service, http: httpx.AsyncClient, cursor: object) -> httpx.Response:
    return await http.post(f"{svc.base_url}/v1/subscribers/test_hub/ack", json={"cursor": cursor},
                           headers=svc.headers("subscriber:test_hub"))


async def first_sse_event(svc: Service, http: httpx.AsyncClient, **headers: str) -> tuple[int, list[str]]:
    """The status of the stream and the ids of the deliveries in its first events (until a keep-alive)."""
    ids: list[str] = []
    sent = {k: v.encode() for k, v in svc.headers("subscriber:test_hub", **headers).items()}  # UTF-8, as sent
    async with http.stream("GET", f"{svc.base_url}/v1/subscribers/test_hub/stream", headers=sent) as r:
        if r.status_code != 200:
            return r.status_code, ids
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                ids.append(orjson.loads(line[6:])["event_id"])
            if line.startswith(": keep-alive"):
                break
        return r.status_code, ids


async def two_deliveries(svc: Service, http: httpx.AsyncClient) -> list[dict]:
    for n in (1, 2):
        await post(svc, http, n)
    await svc.pull_until(http, "test_hub", 2)
    return (await pull(svc, http)).json()["deliveries"]


async def test_a_hostile_cursor_is_refused_everywhere_and_never_a_500(kafka_bootstrap, tmp_path):
    async with service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        first, second = await two_deliveries(svc, http)
        for why, cursor in hostile_cursors(svc).items():
            r = await pull(svc, http, after=cursor)
            assert r.status_code in (400, 410), (why, r.status_code, r.text)
            r = await ack(svc, http, cursor)
            assert r.status_code in (400, 410), (why, r.status_code, r.text)
            r = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/stream", params={"after": cursor},
                               headers=svc.headers("subscriber:test_hub"))
            assert r.status_code in (400, 410), (why, r.status_code)
            status, _ = await first_sse_event(svc, http, **{"Last-Event-ID": cursor})
            assert status in (400, 410), (why, status)
        for body in ({"cursor": 7}, {"cursor": ""}, {"cursor": None}, {"cursor": ["x"]}, {}):
            r = await http.post(f"{svc.base_url}/v1/subscribers/test_hub/ack", json=body,
                                headers=svc.headers("subscriber:test_hub"))
            assert 400 <= r.status_code < 500, (body, r.status_code)
        # nothing was acknowledged: a resuming pull still serves both deliveries
        page = (await pull(svc, http)).json()
        assert [d["event_id"] for d in page["deliveries"]] == [first["event_id"], second["event_id"]]


async def test_ack_only_moves_forward(kafka_bootstrap, tmp_path):
    async with service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        first, second = await two_deliveries(svc, http)
        assert (await ack(svc, http, second["cursor"])).status_code == 200
        assert (await ack(svc, http, second["cursor"])).status_code == 200  # the same again: idempotent
        r = await ack(svc, http, first["cursor"])
        assert r.status_code == 409 and "behind" in r.json()["detail"]
        assert (await pull(svc, http)).json()["deliveries"] == []  # still after the second
        # re-reading is what `after` is for
        page = (await pull(svc, http, after=first["cursor"])).json()
        assert [d["event_id"] for d in page["deliveries"]] == [second["event_id"]]


async def test_sse_resumes_from_last_event_id(kafka_bootstrap, tmp_path):
    async with service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        first, second = await two_deliveries(svc, http)
        status, ids = await first_sse_event(svc, http)
        assert status == 200 and ids == [first["event_id"], second["event_id"]]
        status, ids = await first_sse_event(svc, http, **{"Last-Event-ID": first["cursor"]})
        assert status == 200 and ids == [second["event_id"]]
        status, ids = await first_sse_event(svc, http, **{"Last-Event-ID": second["cursor"]})
        assert status == 200 and ids == []


async def test_an_unusable_acknowledged_cursor_from_an_earlier_version_never_breaks_pulls(
        kafka_bootstrap, tmp_path):
    """Earlier versions stored whatever was acked: a huge offset made every pull a 500. Such a stored cursor is now
    ignored (reading starts from the beginning: duplicates, never a skip); a sane unsigned one is honoured."""
    async with service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        _, second = await two_deliveries(svc, http)
        svc.runtime.cursors.put("test_hub", legacy({"0": 99999999999999999999999}), "2026-01-01T00:00:00Z")
        r = await pull(svc, http)
        assert r.status_code == 200 and len(r.json()["deliveries"]) == 2
        svc.runtime.cursors.put("test_hub", legacy({"0": second["offset"]}), "2026-01-01T00:00:00Z")
        r = await pull(svc, http)
        assert [d["event_id"] for d in r.json()["deliveries"]] == [second["event_id"]]
        # and the stream starts too
        status, ids = await asyncio.wait_for(first_sse_event(svc, http), 20)
        assert status == 200 and ids == [second["event_id"]]
        # an unsigned cursor never bars a signed acknowledgement, even one behind it (it cannot be trusted to be a
        # position that was served): the first signed ack replaces it
        svc.runtime.cursors.put("test_hub", legacy({"0": 10**6}), "2026-01-01T00:00:00Z")
        assert (await ack(svc, http, second["cursor"])).status_code == 200
        assert (await pull(svc, http)).json()["deliveries"] == []
