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
from broker.service.messages import header
from tests.integration.service import Service, running_service
from tests.integration.test_human_decisions import (
    HUB,
    attendance,
    delivered_ids,
    eventually,
    patient,
    post,
    protocol_file,
    pulled,
    referrals_url,
)
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
SHARE = {"decision": "share", "reason": "compelling grounds: the strategy discussion needs the attendance"}


async def _now(value: Any) -> Any:
    return value


def _audited(svc: Service, kind: str, event_id: str) -> list[dict[str, Any]]:
    return [e["record"] for e in svc.runtime.audit_store.search(kind=kind, limit=1000)
            if e["record"].get("event_id") == event_id]


async def _child_with_objection(svc: Service, http: httpx.AsyncClient, nhs: str, family: str) -> str:
    """A child known to the broker, with an objection recorded. Its Patient's delivery to the hub may be held (the
    key is broken), so the token is read off the events topic."""
    [patient_event] = await post(svc, http, patient(family.lower(), nhs, family))

    async def token() -> str | None:  # the events topic is keyed by the child's linkage token
        records = await read_topic(svc.runtime.bootstrap, svc.settings.topics.events)
        return next((r.key.decode() for r in records if header(r.headers, "event_id") == patient_event), None)

    subject = await eventually(token, attempts=1200)
    r = await http.put(f"{svc.base_url}/v1/admin/consent/{subject}", headers=svc.headers("admin"),
                       json={"status": "not_sought", "objection": True, "recorded_on": "2026-11-01"})
    assert r.status_code == 200, r.text
    return subject


async def _referred(svc: Service, http: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    """The event's referral, as the hub's decider sees it (patient: the share worker may start late on a loaded
    host, and then the Patient itself, decided after the objection, is referred too)."""
    async def listed() -> list[dict[str, Any]] | None:
        r = await http.get(referrals_url(svc), headers=svc.headers("decision_maker:test-csc"))
        assert r.status_code == 200, r.text
        return [x for x in r.json()["referrals"] if x["event_id"] == event_id] or None

    [referral] = await eventually(listed, attempts=1200)
    return referral


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

    async def settled() -> bool:  # owed no more, and the audit indexer has caught up with the `delivered` record
        return svc.runtime.held.owed() == [] and bool(_audited(svc, "delivered", event_id))

    await eventually(settled, attempts=900)
    assert (await delivered_ids(svc)).count(event_id) == 1
    humans, sent = _audited(svc, "human_decision", event_id), _audited(svc, "delivered", event_id)
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
        await _child_with_objection(svc, http, "9990000107", "Deltaexample")
        [visit] = await post(svc, http, attendance("HDR001", "9990000107", "Deltaexample", "20240304101500"))
        referral = await _referred(svc, http, visit)

        answer = await _decide_share(svc, http, referral["referral_id"])
        assert answer["status"] == "share" and answer["delivered"] is False and answer["delivery_pending"] is True
        assert answer["delivery"].startswith("decided, delivery pending: subscriber public key unusable")
        assert str(key_file) not in answer["delivery"]
        # decided and audited as decided now; nothing sent while the key is broken, however often it is retried
        [human] = await eventually(lambda: _now(_audited(svc, "human_decision", visit)), attempts=900)
        assert human["decision_id"] == answer["decision_id"]
        await asyncio.sleep(1.0)  # a few retry rounds (0.3 s each) with the key still broken
        assert visit not in await delivered_ids(svc) and not svc.runtime.delivered.sent([HUB], [visit])
        assert [o.referral_id for o in svc.runtime.held.owed()] == [referral["referral_id"]]  # owed, and only it

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
        await _child_with_objection(svc, http, "9990000115", "Epsilonexample")
        [visit] = await post(svc, http, attendance("HDR002", "9990000115", "Epsilonexample", "20240305101500"))
        referral = await _referred(svc, http, visit)
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


async def test_a_delivery_audited_again_after_a_crash_before_it_was_settled_is_audited_once(
        kafka_bootstrap, tmp_path, monkeypatch):
    """The attempt stops after its `delivered` record went to the audit topic and before the owed row was settled
    (the register refuses once, as a process killed there would leave it). The next round finds it sent and audits
    the delivery again: under the same record id, so the audit store keeps one `delivered` record for it."""
    async with running_service(tmp_path, kafka_bootstrap, protocol=protocol_file(tmp_path)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        svc.runtime.held_recheck_seconds = 0.3
        held, refused = svc.runtime.held, []
        settle = held.settled

        def settled_after_a_crash(referral_id: str) -> None:
            if not refused:  # the first settling, after the first `delivered` record: the attempt stops there
                refused.append(referral_id)
                raise RuntimeError("the process stopped before the owed row was settled")
            settle(referral_id)

        monkeypatch.setattr(held, "settled", settled_after_a_crash)
        await _child_with_objection(svc, http, "9990000123", "Zetaexample")
        [visit] = await post(svc, http, attendance("HDR003", "9990000123", "Zetaexample", "20240306101500"))
        referral = await _referred(svc, http, visit)
        await _decide_share(svc, http, referral["referral_id"])
        await eventually(lambda: _now(bool(refused) and svc.runtime.held.owed() == []), attempts=900)
        # a marker after both attempts' records: once the indexer has it, it has every record emitted before it
        marker = svc.runtime.audit_record("admin_action", time="2026-12-03T12:00:00Z", actor="test",
                                          action="test.marker", target="after-the-retry")
        await svc.runtime.emit_audit([marker])
        await eventually(lambda: _now(bool(svc.runtime.audit_store.search(kind="admin_action", limit=1000)) and any(
            e["record"]["record_id"] == marker["record_id"]
            for e in svc.runtime.audit_store.search(kind="admin_action", limit=1000))), attempts=900)
        assert refused == [referral["referral_id"]]
        assert len(_audited(svc, "delivered", visit)) == 1
        assert (await delivered_ids(svc)).count(visit) == 1
