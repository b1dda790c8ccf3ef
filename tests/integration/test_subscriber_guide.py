"""docs/subscribers.md as a subscriber would use it (issue 23): its Python pull example, run as written against a
real service, opens a delivery; the answers are the documented types, exactly; and the protocol's `delivery` key is
advisory, as the guide says (a subscriber declared `kafka` still reads over HTTP with its own key)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.api.subscriber_models import Acknowledged, DeliveryPage
from broker.bench.records import BY_NAME
from tests.integration.service import FIXTURES, running_service

pytestmark = pytest.mark.integration
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "subscribers.md"
HUB = "test_hub"


def guide_example(name: str) -> str:
    [code] = re.findall(rf"<!-- example: {name} -->\n```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    return code


class Enough(Exception):
    """Raised by the example's `handle` once the test has what it waits for: the example loops for ever."""


def kafka_declared_protocol(tmp: Path) -> Path:
    """The end-to-end protocol with the hub declared `delivery: kafka`."""
    text = (FIXTURES / "e2e-protocol.yaml").read_text()
    hub, rest = text.split("  - name: test_other", 1)
    path = tmp / "kafka-hub-protocol.yaml"
    path.write_text(hub.replace("delivery: http-pull", "delivery: kafka") + "  - name: test_other" + rest)
    return path


async def test_the_guides_pull_example_opens_a_delivery_over_http(kafka_bootstrap, tmp_path):
    protocol = kafka_declared_protocol(tmp_path)
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(protocol)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        assert svc.runtime.protocol.subscribers[HUB].delivery == "kafka"
        r = await http.post(f"{svc.base_url}/v1/records/health", content=BY_NAME["health.fhir"].make(1),
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 202, r.text
        [accepted] = r.json()["events"]

        namespace: dict[str, Any] = {}
        exec(compile(guide_example("python-pull"), str(GUIDE), "exec"), namespace)  # the guide's code, as written
        opened: list[dict[str, Any]] = []

        def handle(event: dict[str, Any]) -> None:
            opened.append(event)
            raise Enough

        key_file = svc.settings.data_dir / "subscriber-keys" / f"{HUB}.key"
        with pytest.raises(Enough):
            await asyncio.wait_for(asyncio.to_thread(namespace["pull_forever"], svc.base_url, HUB,
                                                     svc.credentials[f"subscriber:{HUB}"], str(key_file), handle,
                                                     0.1), timeout=120)
        [event] = opened
        assert event["event_id"] == accepted["event_id"] and event["delivery"]["rule_id"] == "hub-person-and-health"

        # The answers are exactly the documented types (extra="forbid": a field the guide does not name fails here).
        hub = svc.headers(f"subscriber:{HUB}")
        page = DeliveryPage.model_validate((await http.get(f"{svc.base_url}/v1/subscribers/{HUB}/events",
                                                           headers=hub)).json())
        [delivery] = page.deliveries
        assert delivery.event_id == accepted["event_id"]
        ack = await http.post(f"{svc.base_url}/v1/subscribers/{HUB}/ack", json={"cursor": page.next_cursor},
                              headers=hub)
        assert Acknowledged.model_validate(ack.json()).acknowledged == page.next_cursor
        again = DeliveryPage.model_validate((await http.get(f"{svc.base_url}/v1/subscribers/{HUB}/events",
                                                            headers=hub)).json())
        assert again.deliveries == []  # acknowledged: a read without `after` resumes after it

        # The guide's SSE example: without Last-Event-ID the stream starts at the acknowledged cursor, so the next
        # delivery it yields is the next record's, not the one acknowledged above.
        r = await http.post(f"{svc.base_url}/v1/records/health", content=BY_NAME["health.fhir"].make(2),
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 202, r.text
        [second] = r.json()["events"]
        exec(compile(guide_example("python-sse"), str(GUIDE), "exec"), namespace)
        opened.clear()
        with pytest.raises(Enough):
            await asyncio.wait_for(asyncio.to_thread(namespace["stream"], svc.base_url, HUB,
                                                     svc.credentials[f"subscriber:{HUB}"], svc.client_for(HUB),
                                                     handle), timeout=120)
        assert [e["event_id"] for e in opened] == [second["event_id"]]
