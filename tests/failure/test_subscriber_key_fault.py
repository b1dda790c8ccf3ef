"""Defect 4: one subscriber whose public key is missing or unusable must not stop the others; its deliveries are held,
named in /readyz, and delivered once (in order, exactly once) when the key loads again."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest

from broker.service.messages import header
from tests.integration.app_server import served, settings_outside_dev
from tests.integration.protocols import child, health_protocol
from tests.integration.service import Service, running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration


async def post(svc: Service, http: httpx.AsyncClient, n: int) -> str:
    r = await http.post(f"{svc.base_url}/v1/records/health", content=child(n),
                        headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
    assert r.status_code == 202, r.text
    return r.json()["events"][0]["event_id"]


async def pulled(svc: Service, http: httpx.AsyncClient, subscriber: str) -> list[dict]:
    r = await http.get(f"{svc.base_url}/v1/subscribers/{subscriber}/events", params={"limit": 1000},
                       headers=svc.headers(f"subscriber:{subscriber}"))
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


async def eventually(check, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def audit_count(svc: Service, http: httpx.AsyncClient, action: str) -> int:
    r = await http.get(f"{svc.base_url}/v1/ig/search", params={"kind": "admin_action", "limit": 1000},
                       headers=svc.headers("ig_auditor"))
    return sum(e.get("record", {}).get("action") == action for e in r.json()["entries"])


@pytest.mark.parametrize("fault", ["missing", "garbage"])
async def test_a_broken_key_holds_one_subscriber_and_never_the_others(kafka_bootstrap, tmp_path, fault):
    protocol = health_protocol(tmp_path / "source", both_subscribers=True)
    async with running_service(tmp_path, kafka_bootstrap, str(protocol)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        svc.runtime.held_recheck_seconds = 0.3
        key_file = svc.runtime.protocol.subscribers["test_other"].key_file
        good_key = key_file.read_bytes()
        if fault == "missing":
            key_file.unlink()
        else:
            key_file.write_text("not a public key\n")

        sent = [await post(svc, http, n) for n in (1, 2)]
        hub = await eventually(lambda: _at_least(svc, http, "test_hub", 2))
        assert sorted(d["event_id"] for d in hub) == sorted(sent)  # the healthy subscriber is not held back
        assert await pulled(svc, http, "test_other") == []
        ready = (await http.get(f"{svc.base_url}/readyz")).json()
        assert ready["status"] == "degraded", ready
        assert "test_other" in ready["checks"]["subscribers"] and "2 deliveries held" in ready["checks"]["subscribers"]
        assert str(key_file) not in json.dumps(ready)  # /readyz is public: names, not paths
        assert svc.runtime.metrics.worker_restarts._value.get() == 0  # no crash, no replayed batch
        await eventually(lambda: _audited(svc, http, "delivery.held", 2))

        # the stream goes on for the healthy subscriber while the other is held
        sent.append(await post(svc, http, 3))
        await eventually(lambda: _at_least(svc, http, "test_hub", 3))

        key_file.write_bytes(good_key)  # the operator restores the key: everything held arrives, in order, once
        other = await eventually(lambda: _at_least(svc, http, "test_other", 3))
        # each child once (children on different partitions may arrive in either order; one child's stay in order)
        assert sorted(d["event_id"] for d in other) == sorted(sent)
        client = svc.client_for("test_other")
        assert sorted(client.open(base64.b64decode(d["sealed"]))["event_id"] for d in other) == sorted(sent)
        await asyncio.sleep(1.0)  # a second release round, were one to deliver again
        copies = await read_topic(kafka_bootstrap, svc.settings.topics.deliver("test_other"))
        assert sorted(header(m.headers, "event_id") for m in copies) == sorted(sent)
        assert svc.runtime.held.counts() == {}
        ready = await eventually(lambda: _ready(http, svc))
        assert ready["checks"]["subscribers"] == "ok"


async def test_start_warns_about_each_unusable_key(kafka_bootstrap, tmp_path, capsys):
    """Outside --dev (which makes new development keys), a key that does not load is named at start, once."""
    protocol = health_protocol(tmp_path / "source", both_subscribers=True)
    async with running_service(tmp_path, kafka_bootstrap, str(protocol)) as svc:  # keys, credentials, secrets
        settings = settings_outside_dev(svc.settings, protocol)
    (settings.data_dir / "subscriber-keys" / "test_other.pub").write_text("not a public key\n")
    capsys.readouterr()
    async with served(settings) as url, httpx.AsyncClient(timeout=30) as http:
        out = capsys.readouterr()
        lines = [line for line in (out.out + out.err).splitlines() if "subscriber_key_unusable" in line]
        assert len(lines) == 1 and "test_other" in lines[0], out
        ready = (await http.get(f"{url}/readyz")).json()
        assert ready["status"] == "degraded" and "test_other (public key unusable" in ready["checks"]["subscribers"]
        assert "test_hub" not in ready["checks"]["subscribers"]


async def _at_least(svc: Service, http: httpx.AsyncClient, subscriber: str, want: int) -> list[dict] | None:
    deliveries = await pulled(svc, http, subscriber)
    return deliveries if len(deliveries) >= want else None


async def _audited(svc: Service, http: httpx.AsyncClient, action: str, want: int) -> bool:
    return await audit_count(svc, http, action) >= want


async def _ready(http: httpx.AsyncClient, svc: Service) -> dict | None:
    r = await http.get(f"{svc.base_url}/readyz")
    return r.json() if r.json()["status"] == "ready" else None
