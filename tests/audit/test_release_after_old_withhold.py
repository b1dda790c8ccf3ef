"""A release that meets a withhold stored before session 13 under the same id (issue 24, session 14).

Until session 13 a withhold's decision id was its delivery's (no outcome in the name), so a store written then holds
withholds under the id a later release of the same event, to the same subscriber under the same protocol version,
still has. The store keeps the first record of an id and drops later ones as a replay's repeats: the release was
chained as nothing, the store said the subscriber was withheld what it received, and `every_disclosure` (a subject
access report's list) left it out. The store now keeps such a release under an id derived from the withhold's
(broker/audit/store.py, `release_id`), and still drops every true repeat. Records here are built as the share plan
builds them (built_record + Decision.to_record), the old withhold as the store expanded a group before session 13.
"""

from __future__ import annotations

import uuid
from typing import Any

from broker.audit.record import built_record
from broker.audit.store import AuditStore, release_id
from broker.policy.decision import Decision, decision_id, default_deny_reason
from tests.audit.conftest import CHILD_A

EVENT = str(uuid.UUID(int=0x5AFE_0000_0000_4000_8000_0000_0000_7001))
HUB, TYPE, PROTOCOL, VERSION = "mash-hub", "person.identified", "sample-partnership", "3"
DELIVERY_ID = decision_id(EVENT, HUB, PROTOCOL, VERSION)  # a delivery's id: the same before and since session 13
T1, T2, T3 = "2026-03-02T10:00:00Z", "2026-03-04T09:00:00Z", "2026-03-04T09:30:00Z"


def _decision(did: str, outcome: str, time: str) -> dict[str, Any]:
    if outcome == "withhold":
        decision = Decision(did, EVENT, TYPE, HUB, "withhold", None, (), None, (), (), (), PROTOCOL, VERSION,
                            default_deny_reason(TYPE, HUB))
    else:
        decision = Decision(did, EVENT, TYPE, HUB, "deliver", "identity-to-hub", ("uk_gdpr_art6_1_e",),
                            "safeguarding", ("subject.child.given_names[]",), (), (), PROTOCOL, VERSION,
                            "rule identity-to-hub shares person.identified with mash-hub")
    return built_record("decision", time=time, actor="share", subject=CHILD_A, record_id=did, **decision.to_record())


def old_withhold(time: str = T1) -> dict[str, Any]:
    """A plain withhold as the tree before session 13 stored it: its record id and decision id the delivery's."""
    return _decision(DELIVERY_ID, "withhold", time)


def new_withhold(time: str = T1) -> dict[str, Any]:
    """The same withhold as session 13's tree builds it (the store's expansion of a group): its id names it."""
    return _decision(decision_id(EVENT, HUB, PROTOCOL, VERSION, "withhold"), "withhold", time)


def release(time: str = T2) -> dict[str, Any]:
    return _decision(DELIVERY_ID, "deliver", time)


def delivered(time: str = T2) -> dict[str, Any]:
    # the share plan gives a delivered record a fresh id (built_record's uuid4); a test keeps one to replay it
    return built_record("delivered", time=time, actor="share", subject=CHILD_A, subscriber=HUB, event_id=EVENT,
                        decision_id=DELIVERY_ID, record_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"delivered:{time}")))


def decisions(store: AuditStore) -> list[dict[str, Any]]:
    return [e["record"] for e in store.search(decision_id=DELIVERY_ID, limit=100, newest_first=False)
            if e["record"]["kind"] == "decision"]


def assert_released_once(store: AuditStore) -> None:
    """The auditor's view: the withhold and the release both chained, the release once, listed once, verified."""
    found = decisions(store)
    assert [d["outcome"] for d in found] == ["withhold", "deliver"]
    assert found[1]["decision_id"] == DELIVERY_ID and found[1]["record_id"] == release_id(DELIVERY_ID)
    shown = store.every_disclosure(subject=CHILD_A)
    assert [(d.decision_id, d.subscriber, d.event_id) for d in shown] == [(DELIVERY_ID, HUB, EVENT)]
    assert shown[0].delivered_at is not None
    assert store.count_disclosures(subject=CHILD_A) == 1
    assert store.verify().ok


def test_a_release_after_a_withhold_stored_before_session_13_is_kept(store: AuditStore) -> None:
    store.append([old_withhold()])
    chained = store.append([release(), delivered()])
    assert [r["record"]["kind"] for r in chained] == ["decision", "delivered"]
    assert_released_once(store)


def test_a_rerun_repeating_the_old_withhold_is_still_dropped(store: AuditStore) -> None:
    store.append([old_withhold()])
    assert store.append([old_withhold()]) == []
    assert store.append([old_withhold(time="2026-03-02T10:05:00Z")]) == []  # a re-run's copy, its own time
    store.append([release(), delivered()])
    assert store.append([old_withhold(time="2026-03-05T10:05:00Z")]) == []  # after the release too
    assert_released_once(store)


def test_a_rerun_repeating_the_release_is_dropped(store: AuditStore) -> None:
    store.append([old_withhold()])
    store.append([release(), delivered()])
    head = store.head()
    assert store.append([release()]) == []
    assert store.append([release(time=T3)]) == []  # the re-run built it again at its own time
    assert store.append([old_withhold(), release(time=T3), delivered()]) == []  # the whole story replayed
    assert store.head() == head
    assert_released_once(store)


def test_the_withhold_and_its_release_in_one_batch(store: AuditStore) -> None:
    chained = store.append([old_withhold(), release(), release(time=T3), delivered()])
    assert [(r["record"]["kind"], r["record"].get("outcome")) for r in chained] == [
        ("decision", "withhold"), ("decision", "deliver"), ("delivered", None)]
    assert_released_once(store)
    assert store.append([old_withhold(), release(time=T3), delivered()]) == []  # that batch's re-run


def test_a_release_in_a_batch_after_its_withhold_was_stored(store: AuditStore) -> None:
    store.append([old_withhold()])
    chained = store.append([old_withhold(time=T3), release(), delivered(), release(time=T3)])  # a re-run's batch
    assert [(r["record"]["kind"], r["record"].get("outcome")) for r in chained] == [
        ("decision", "deliver"), ("delivered", None)]
    assert_released_once(store)


def test_a_delivery_stored_first_keeps_a_later_copy_a_repeat(store: AuditStore) -> None:
    """A delivery chained under its id before any withhold: a batch that brings an old-form withhold and the delivery
    again is a replay, and nothing is chained a second time (the derived id is for a release after a withhold)."""
    store.append([release(), delivered()])
    assert store.append([old_withhold(), release(time=T3)]) == []
    found = decisions(store)
    assert [d["outcome"] for d in found] == ["deliver"] and found[0]["record_id"] == DELIVERY_ID
    assert len(store.every_disclosure(subject=CHILD_A)) == 1 and store.verify().ok


def test_a_withhold_since_session_13_then_its_release_are_stored_as_they_are(store: AuditStore) -> None:
    store.append([new_withhold()])
    store.append([release(), delivered()])
    found = decisions(store)
    assert [(d["outcome"], d["record_id"]) for d in found] == [("deliver", DELIVERY_ID)]
    withheld = store.search(decision_id=decision_id(EVENT, HUB, PROTOCOL, VERSION, "withhold"), limit=10)
    assert [e["record"]["outcome"] for e in withheld] == ["withhold"]
    assert [d.decision_id for d in store.every_disclosure(subject=CHILD_A)] == [DELIVERY_ID]
    assert release_id(DELIVERY_ID) not in {e["record"]["record_id"] for e in store.entries()}
    assert store.append([new_withhold(time=T3), release(time=T3)]) == []  # a re-run: both repeats
    assert store.verify().ok
