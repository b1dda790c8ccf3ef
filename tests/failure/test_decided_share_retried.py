"""A person's decision to share is durable, and its delivery is retried until it is made: the subscriber's key
unusable, or Kafka not answering, when the person decides. Through the real service on Apache Kafka.

Each case: a child with an objection, an attendance referred to a person, the person decides "share" while the
delivery cannot be made. The answer says "decided, delivery pending"; once the fault clears the event reaches the
hub exactly once, and the audit holds one `human_decision` and one `delivered` record for it. Fictitious children
(NHS numbers of the 999 test range).
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx
import pytest

import broker.service.decisions as service_decisions
from broker.kafka.apache import unavailable_reason
from tests.integration.service import Service, running_service
from tests.integration.test_human_decisions import (
    HUB,
    attendance,
    audit_of,
    child_with_objection,
    delivered_ids,
    eventually,
    patient,
    pending,
    post,
    protocol_file,
    pulled,
    referrals_url,
)

pytestmark = pytest.mark.integration
SHARE = {"decision": "share", "reason": "compelling grounds: the strategy discussion needs the attendance"}


async def _child_with_objection_while_held(svc: Service, http: httpx.AsyncClient, nhs: str, family: str) -> str:
    """A child known to the broker, with an objection recorded: its Patient's delivery to the hub is held (the key
    is broken), so the token comes from the share stage's decision record."""
    [patient_event] = await post(svc, http, patient(family.lower(), nhs, family))

    async def token() -> str | None:
        found = [d for d in await audit_of(svc, "decision", 1) if d["event_id"] == patient_event]
        return found[0]["subject"] if found else None

    subject = await eventually(token, attempts=600)
    r = await http.put(f"{svc.base_url}/v1/admin/consent/{subject}", headers=svc.headers("admin"),
                       json={"status": "not_sought", "objection": True, "recorded_on": "2026-11-01"})
    assert r.status_code == 200, r.text
    return subject


async def _decide_share(svc: Service, http: httpx.AsyncClient, referral_id: str) -> dict[str, Any]:
    r = await http.post(referrals_url(svc, referral_id), headers=svc.headers("decision_maker:test-csc"), json=SHARE)
    assert r.status_code == 200, r.text  # the decision is recorded: never a 5xx for a delivery that comes later
    return r.json()


async def _arrived_once(svc: Service, http: httpx.AsyncClient, event_id: str, decision_id: str) -> None:
    """Delivered, opened by the hub as a person's share, once on the topic, audited once as decided and as sent."""
    async def opened() -> dict[str, Any] | None:
        return next((e for e in await pulled(svc, http) if e["event_id"] == event_id), None)

    got = await eventually(opened, attempts=600)
    assert got["delivery"]["human_decision"]["choice"] == "share"
    assert got["delivery"]["decision_id"] == decision_id

    async def settled() -> bool:
        return svc.runtime.held.owed() == [] and bool(
            [d for d in await audit_of(svc, "delivered", 1) if d["event_id"] == event_id])

    await eventually(settled, attempts=600)
    assert (await delivered_ids(svc)).count(event_id) == 1
    humans = [h for h in await audit_of(svc, "human_decision", 1) if h["event_id"] == event_id]
    sent = [d for d in await audit_of(svc, "delivered", 1) if d["event_id"] == event_id]
    assert len(humans) == 1 and humans[0]["human_decision"]["choice"] == "share", humans
    assert humans[0]["fields_released"], humans[0]  # the audit says what the person disclosed
    assert [d["decision_id"] for d in sent] == [decision_id]
    assert svc.runtime.referrals.get(humans[0]["human_decision"]["referral_id"]).delivered_at is not None


async def test_a_decided_share_whose_subscriber_key_fails_is_delivered_once_when_the_key_loads(
        kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, protocol=protocol_file(tmp_path)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        svc.runtime.held_recheck_seconds = 0.3
        key_file = svc.runtime.protocol.subscribers[HUB].key_file
        good_key = key_file.read_bytes()
        key_file.write_text("not a public key\n")  # broken before the hub is ever sealed to
        await _child_with_objection_while_held(svc, http, "9990000107", "Deltaexample")
        [visit] = await post(svc, http, attendance("HDR001", "9990000107", "Deltaexample", "20240304101500"))
        [referral] = await pending(svc, http, "decision_maker:test-csc", 1)

        answer = await _decide_share(svc, http, referral["referral_id"])
        assert answer["status"] == "share" and answer["delivered"] is False and answer["delivery_pending"] is True
        assert answer["delivery"].startswith("decided, delivery pending: subscriber public key unusable")
        assert str(key_file) not in answer["delivery"]
        # decided and audited as decided now; nothing sent while the key is broken, however often it is retried
        [human] = [h for h in await audit_of(svc, "human_decision", 1) if h["event_id"] == visit]
        assert human["decision_id"] == answer["decision_id"]
        await asyncio.sleep(1.0)  # a few retry rounds (0.3 s each) with the key still broken
        assert visit not in await delivered_ids(svc) and not svc.runtime.delivered.sent([HUB], [visit])
        assert [o.referral_id for o in svc.runtime.held.owed()] == [referral["referral_id"]]

        key_file.write_bytes(good_key)  # the operator restores the key: the decided share goes out, once
        await _arrived_once(svc, http, visit, answer["decision_id"])
        r = await http.post(referrals_url(svc, referral["referral_id"]), headers=svc.headers("decision_maker:test-csc"),
                            json=SHARE)
        assert r.status_code == 409  # decided once; a second decision cannot send it again
        await asyncio.sleep(1.0)
        assert (await delivered_ids(svc)).count(visit) == 1


async def test_a_decided_share_made_while_kafka_does_not_answer_is_delivered_once_when_it_does(
        tmp_path, monkeypatch):
    """The service's own Apache Kafka is stopped (SIGSTOP: sockets open, nothing answered) while the person decides."""
    if reason := unavailable_reason():
        pytest.skip(f"Apache Kafka unavailable: {reason}")
    monkeypatch.setenv("MASH_LOCAL_KAFKA", "apache")
    # the decider waits 3 s, not 10, in this test (raising=False: the same test runs against the code before)
    monkeypatch.setattr(service_decisions, "DELIVERY_WAIT_S", 3.0, raising=False)
    async with running_service(tmp_path, None, protocol=protocol_file(tmp_path)) as svc, \
            httpx.AsyncClient(timeout=60) as http:
        svc.runtime.held_recheck_seconds = 0.3
        await child_with_objection(svc, http, "9990000115", "Epsilonexample")
        [visit] = await post(svc, http, attendance("HDR002", "9990000115", "Epsilonexample", "20240305101500"))
        [referral] = await pending(svc, http, "decision_maker:test-csc", 1)
        assert svc.runtime.local_kafka is not None
        pid = svc.runtime.local_kafka.pid(1)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            answer = await _decide_share(svc, http, referral["referral_id"])
            # durable: the register has the decision while Kafka is still silent
            stored = svc.runtime.referrals.get(referral["referral_id"])
            assert stored is not None and stored.status == "share" and stored.delivered_at is None
        finally:
            os.kill(pid, signal.SIGCONT)
        assert answer["status"] == "share" and answer["delivered"] is False and answer["delivery_pending"] is True
        assert answer["delivery"].startswith("decided, delivery pending")
        await _arrived_once(svc, http, visit, answer["decision_id"])
