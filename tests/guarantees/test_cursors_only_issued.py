"""Promise: a subscriber can only read from or acknowledge a position this API served to it in this Kafka epoch, so
no cursor makes a resuming pull skip a delivery, and no cursor makes pull, ack or the stream answer 5xx."""

from __future__ import annotations

import asyncio
import random
import string

import httpx
import pytest

from tests.integration.protocols import child, health_protocol
from tests.integration.service import Service, running_service

pytestmark = pytest.mark.integration
ALPHABET = string.ascii_letters + string.digits + "-_.="


def mutations(cursor: str, rng: random.Random) -> list[str]:
    """What a subscriber could try with a genuine cursor in hand: every character changed (MAC, payload, prefix),
    cut short, lengthened, and 40 random strings shaped like cursors."""
    out = [cursor[:i] + rng.choice(ALPHABET.replace(cursor[i], "")) + cursor[i + 1:] for i in range(len(cursor))]
    # (the empty cursor is not among them: `after=` reads from the start, which skips nothing)
    out += [cursor[:n] for n in (1, 3, len(cursor) // 2, len(cursor) - 1)] + [cursor + "A", cursor + ".x"]
    out += ["c2." + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 200))) for _ in range(40)]
    return [m for m in out if m != cursor]


async def _status_everywhere(svc: Service, http: httpx.AsyncClient, cursor: str) -> list[int]:
    hub = svc.headers("subscriber:test_hub")
    u = f"{svc.base_url}/v1/subscribers/test_hub"
    codes = [(await http.get(f"{u}/events", params={"after": cursor}, headers=hub)).status_code,
             (await http.post(f"{u}/ack", json={"cursor": cursor}, headers=hub)).status_code]
    for params, headers in (({"after": cursor}, hub), ({}, {**hub, "Last-Event-ID": cursor})):
        async with http.stream("GET", f"{u}/stream", params=params, headers=headers) as r:  # status only: a 200
            codes.append(r.status_code)  # stream would never end
    return codes


async def test_no_cursor_but_an_issued_one_opens_and_acks_never_go_back(kafka_bootstrap, tmp_path):
    """Every mutation of a genuine cursor, another subscriber's genuine cursor, and twenty acknowledgements racing
    forwards and backwards: all refused with a 4xx except the genuine ones, the acknowledged cursor ends at the
    furthest, and a resuming pull then skips nothing."""
    rng = random.Random(14)
    protocol = health_protocol(tmp_path / "source", both_subscribers=True)
    async with running_service(tmp_path, kafka_bootstrap, str(protocol)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        for n in (1, 2, 3):
            r = await http.post(f"{svc.base_url}/v1/records/health", content=child(n),
                                headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
            assert r.status_code == 202, r.text
        await svc.pull_until(http, "test_hub", 3)
        await svc.pull_until(http, "test_other", 3)
        hub = svc.headers("subscriber:test_hub")
        page = (await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", headers=hub)).json()
        first, second, third = page["deliveries"]
        other = (await http.get(f"{svc.base_url}/v1/subscribers/test_other/events",
                                headers=svc.headers("subscriber:test_other"))).json()["deliveries"]

        hostile = [*mutations(second["cursor"], rng), other[0]["cursor"], other[-1]["cursor"]]
        for cursor in hostile:
            codes = await _status_everywhere(svc, http, cursor)
            assert all(400 <= c < 500 for c in codes), (cursor, codes)
        r = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", headers=hub)
        assert [d["event_id"] for d in r.json()["deliveries"]] == [d["event_id"] for d in (first, second, third)]

        acks = [first["cursor"], third["cursor"], second["cursor"]] * 7
        rng.shuffle(acks)
        answers = await asyncio.gather(*(http.post(f"{svc.base_url}/v1/subscribers/test_hub/ack",
                                                   json={"cursor": c}, headers=hub) for c in acks))
        assert {a.status_code for a in answers} <= {200, 409}
        assert any(a.status_code == 200 and a.json()["acknowledged"] == third["cursor"] for a in answers)
        assert svc.runtime.cursors.get("test_hub") == third["cursor"]

        r = await http.post(f"{svc.base_url}/v1/records/health", content=child(4),
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        fourth = r.json()["events"][0]["event_id"]
        resumed = await svc.pull_until(http, "test_hub", 1)
        assert [e["event_id"] for e in resumed] == [fourth]
