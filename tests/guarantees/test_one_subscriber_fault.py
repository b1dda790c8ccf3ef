"""Promise: one subscriber's unusable public key never stops or delays the other subscribers, and that subscriber
loses nothing: what is held for it survives a restart and reaches it exactly once when its key loads again."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from broker.crypto.client import SubscriberClient
from broker.service.messages import header
from tests.integration.app_server import served, settings_outside_dev
from tests.integration.protocols import child, health_protocol
from tests.integration.service import running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
FHIR = {"Content-Type": "application/fhir+json"}


async def _eventually(check, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)
    return result


async def test_a_broken_key_across_a_restart_loses_nothing_and_holds_no_one_else(kafka_bootstrap, tmp_path):
    """A subscriber's key breaks before its first delivery, the service restarts (clean stop, same Kafka) with the
    key still broken, the stream goes on; then the key is fixed: the healthy subscriber never waited, the broken one
    receives every event once, and the delivery topic holds no second copy."""
    protocol = health_protocol(tmp_path / "source", both_subscribers=True)
    sent: list[str] = []

    async def post(http: httpx.AsyncClient, base: str, creds: dict[str, str], n: int) -> None:
        r = await http.post(f"{base}/v1/records/health", content=child(n),
                            headers={"Authorization": f"Bearer {creds['intake:health']}", **FHIR})
        assert r.status_code == 202, r.text
        sent.append(r.json()["events"][0]["event_id"])

    async def pulled(http: httpx.AsyncClient, base: str, creds: dict[str, str], name: str) -> list[dict]:
        r = await http.get(f"{base}/v1/subscribers/{name}/events", params={"limit": 1000},
                           headers={"Authorization": f"Bearer {creds[f'subscriber:{name}']}"})
        assert r.status_code == 200, r.text
        return r.json()["deliveries"]

    async with running_service(tmp_path, kafka_bootstrap, str(protocol)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        creds, base = svc.credentials, svc.base_url
        broken = svc.runtime.protocol.subscribers["test_other"].key_file
        good_key = broken.read_bytes()
        broken.write_text("-----BEGIN PUBLIC KEY-----\nnot really\n-----END PUBLIC KEY-----\n")
        for n in (1, 2, 3):
            await post(http, base, creds, n)
        await _eventually(lambda: _has(pulled(http, base, creds, "test_hub"), len(sent)))
        assert await pulled(http, base, creds, "test_other") == []
        settings = settings_outside_dev(svc.settings, protocol)

    async with served(settings) as base, httpx.AsyncClient(timeout=30) as http:  # restarted, key still broken
        rt_ready = (await http.get(f"{base}/readyz")).json()
        assert rt_ready["status"] == "degraded" and "test_other" in rt_ready["checks"]["subscribers"]
        assert "3 deliveries held" in rt_ready["checks"]["subscribers"]
        await post(http, base, creds, 4)
        await _eventually(lambda: _has(pulled(http, base, creds, "test_hub"), len(sent)))
        assert await pulled(http, base, creds, "test_other") == []

        broken.write_bytes(good_key)
        other = await _eventually(lambda: _has(pulled(http, base, creds, "test_other"), len(sent)))
        client = SubscriberClient.from_file(settings.data_dir / "subscriber-keys" / "test_other.key", "test_other")
        assert sorted(client.open(base64.b64decode(d["sealed"]))["event_id"] for d in other) == sorted(sent)
        await asyncio.sleep(1.5)  # more release rounds, were one to send again
        copies = await read_topic(kafka_bootstrap, settings.topics.deliver("test_other"))
        assert sorted(header(m.headers, "event_id") for m in copies) == sorted(sent)
        hub = await pulled(http, base, creds, "test_hub")
        assert sorted(d["event_id"] for d in hub) == sorted(sent)


async def _has(pending, want: int) -> list[dict] | None:
    deliveries = await pending
    return deliveries if len(deliveries) >= want else None
