"""Promise: each subscriber is served each event once, however often it is sent and whatever the workers redo.

The attacker's and the unlucky operator's view: the same record resent many times at once, twice inside one Bundle,
and a share worker that redoes work it had already done (its delivered-log rows lost and its group's offsets back at
the start: what a crash between Kafka's acknowledgement and the bookkeeping leaves), so the delivery topic itself holds
second copies. HTTP pull from the very start must still serve every event exactly once.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections import Counter

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata

from broker.crypto.client import SubscriberClient
from tests.integration.service import running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
NHS = ["9990001006", "9990001022"]
FHIR = {"Content-Type": "application/fhir+json"}


def _patient(record_id: str, nhs: str) -> dict:
    return {"resourceType": "Patient", "id": record_id, "gender": "male", "birthDate": "2016-05-06",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
            "name": [{"family": "Fictitious", "given": ["Testchild"]}]}


async def _pull_all(http: httpx.AsyncClient, base: str, headers: dict[str, str], client: SubscriberClient) -> list[str]:
    """Every delivery served from the very start, following next_cursor until a page comes back empty."""
    import base64

    served, after = [], None
    for _ in range(50):
        params = {"limit": 7, **({"after": after} if after else {})}
        r = await http.get(f"{base}/v1/subscribers/test_hub/events", params=params, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        served += [client.open(base64.b64decode(d["sealed"]))["event_id"] for d in page["deliveries"]]
        if not page["deliveries"] and after == page["next_cursor"]:
            return served
        after = page["next_cursor"]
    raise AssertionError("the stream never ended")


async def _rewind_share_group(bootstrap: str, group: str, topic: str) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        for _ in range(50):  # join the group (the service is stopped: this member gets every partition)
            await consumer.getmany(timeout_ms=200)
            if consumer.assignment():
                break
        assert consumer.assignment(), "could not join the share group"
        await consumer.commit({tp: OffsetAndMetadata(0, "") for tp in consumer.assignment()})
    finally:
        await consumer.stop()


async def test_resends_bundles_and_redone_work_serve_each_event_once(either_kafka, tmp_path):
    prefix = f"dup{uuid.uuid4().hex[:6]}"
    one = json.dumps(_patient("dup-1", NHS[0])).encode()
    bundle = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": _patient("dup-2", NHS[1])}, {"resource": _patient("dup-2", NHS[1])},
        {"resource": _patient("dup-1", NHS[0])}]}).encode()
    async with running_service(tmp_path, either_kafka, topic_prefix=prefix) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        intake = svc.headers("intake:health", **FHIR)
        answers = await asyncio.gather(*[http.post(f"{svc.base_url}/v1/records/health", content=one, headers=intake)
                                         for _ in range(12)])
        answers.append(await http.post(f"{svc.base_url}/v1/records/health", content=bundle, headers=intake))
        assert all(a.status_code == 202 for a in answers), [a.text for a in answers if a.status_code != 202]
        expected = {e["event_id"] for a in answers for e in a.json()["events"]}
        assert len(expected) == 2  # deterministic event ids: two records, two events, however often sent
        await svc.pull_until(http, "test_hub", 2)
        group = svc.settings.group("share")
        events_topic = svc.settings.topics.events
        delivered_file = svc.settings.data_dir / "delivered.sqlite"
        client = svc.client_for("test_hub")

    # the worker "forgets" it delivered (bookkeeping lost) and its group starts again from offset 0
    with sqlite3.connect(delivered_file) as db:
        db.execute("DELETE FROM delivered")
    await _rewind_share_group(either_kafka, group, events_topic)

    async with running_service(tmp_path, either_kafka, topic_prefix=prefix) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        topic = svc.settings.topics.deliver("test_hub")
        for _ in range(100):  # the redone work puts second copies on the delivery topic itself
            if len(await read_topic(either_kafka, topic)) >= 4:
                break
            await asyncio.sleep(0.2)
        assert len(await read_topic(either_kafka, topic)) >= 4, "the worker did not redo its work"
        served = await _pull_all(http, svc.base_url, svc.headers("subscriber:test_hub"), client)
        assert Counter(served) == Counter({e: 1 for e in expected}), Counter(served)
        # and a second full read from the start serves the same once-each set again (first copy wins, not skipped)
        again = await _pull_all(http, svc.base_url, svc.headers("subscriber:test_hub"), client)
        assert Counter(again) == Counter(served)
