"""Identity notices (`person.identified`) as an IG auditor checks them (issue 24, session 11's 9.3 s p99): who is told
who a child is, when, how often, and what the audit trail says about it.

A child's CIN record announces the child first, then its referral opens the case; the hub's s17 rule needs an open
case, so the record's identity event is withheld from the hub at first. Since session 14 the share plan decides it
again once the referral opens the case in the same batch, and the hub is told who the child is with that record,
after its data (broker/pipeline/share_plan.py; its probes: test_identity_release.py); split across polls, the
notice still waits for the child's next record. What must hold whatever the share plan does about that: a
subscriber is told who a child is only once it is sent the child's data, never twice, under a rule. The audit store
keeps the first record of each id; until session 13 a decision's id was that of (event, subscriber, protocol
version), so the later release was chained as nothing and the store said the hub was withheld what it received (a
withhold's id now names its outcome: broker/policy/decision.py).

Real records (the bench's synthetic CIN census children), the real share plan, sealing and audit store, no Kafka.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from adapters.kit.interface import AdaptContext
from adapters.kit.registry import select
from broker.audit.store import open_audit_store
from broker.audit.withheld import expand
from broker.bench.records import BY_NAME, CHILDREN
from broker.bench.share_mix import LINKAGE, ShareMix, body_events, share_mix
from broker.bench.stages import RECEIVED
from broker.pipeline.identify import complete
from broker.pipeline.share_plan import SharePlan
from broker.schema.validate import validate_event

HUB = "mash_hub"
IDENTITY = ("person.identified", "person.updated")
CIN = BY_NAME["social_care.cin"]
CHILD = 12  # record numbers CHILD, CHILD + CHILDREN, ... are CIN records about the same fictitious child
MIX_RECORDS = 1600  # enough for the mix's CIN records to come round to the same children again


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Iterable[ShareMix]:
    with share_mix(tmp_path_factory.mktemp("identity-notices"), records=MIX_RECORDS) as m:
        yield m


@pytest.fixture(scope="module")
def mix_plans(mix: ShareMix) -> list[SharePlan]:
    return mix.plan_as_worker([[item.event for item in batch] for batch in mix.batches])


def identity_deliveries(plans: list[SharePlan], types: dict[str, str]) -> list[tuple[int, int, Any]]:
    """(batch, position in it, delivery) of every identity notice delivered."""
    return [(k, i, d) for k, p in enumerate(plans) for i, d in enumerate(p.deliveries)
            if types[d.event_id] in IDENTITY]


def nfa_record(n: int) -> list[dict[str, Any]]:
    """CIN record n as a referral closed with no further action: no assessment, s47 or plan, so no case opens."""
    xml = CIN.make(n).decode()
    xml = re.sub(r"<Section47>.*?</Section47>", "", xml, flags=re.S)
    xml = re.sub(r"<ChildProtectionPlans>.*?</ChildProtectionPlans>", "", xml, flags=re.S)
    data = xml.replace("<ReferralNFA>false</ReferralNFA>", "<ReferralNFA>true</ReferralNFA>").encode()
    ctx = AdaptContext(source="bench", received_at=RECEIVED, system=CIN.system)
    drafts = select(CIN.agency, data, source="bench", content_type=CIN.content_type).adapt(data, ctx).events
    events = [complete(d, LINKAGE, RECEIVED) for d in drafts]
    assert [validate_event(e) for e in events] == [[]] * len(events)
    assert [e["event_type"] for e in events] == ["person.identified", "social_care.referral"]
    return events


def test_an_identity_notice_goes_only_to_a_subscriber_sent_the_child_s_data_never_twice_under_a_rule(
        mix: ShareMix, mix_plans: list[SharePlan]) -> None:
    types = {item.event["event_id"]: item.event["event_type"] for batch in mix.batches for item in batch}
    notices = identity_deliveries(mix_plans, types)
    announced = Counter(item.event["event_id"] for batch in mix.batches for item in batch
                        if item.event["event_type"] in IDENTITY)
    assert notices and max(announced.values()) >= 3  # the premise: identity events delivered, and announced again
    assert max(Counter((d.subscriber, d.event_id) for _, _, d in notices).values()) == 1  # never twice

    sent_data: dict[tuple[str, str], tuple[int, int]] = {}  # (subscriber, token) -> first non-identity delivery
    for k, plan in enumerate(mix_plans):
        for i, d in enumerate(plan.deliveries):
            if types[d.event_id] not in IDENTITY:
                sent_data.setdefault((d.subscriber, d.token), (k, i))
    for k, i, d in notices:
        first = sent_data.get((d.subscriber, d.token))
        assert first is not None and first < (k, i), "told who a child is before being sent any of its data"
        # its audit record says why: the plan's decision for it delivers under a rule, on a lawful basis
        [decision] = [r for a in mix_plans[k].audits for r in expand(a) if r["kind"] == "decision"
                      and r["decision_id"] == d.decision_id]
        assert decision["outcome"] == "deliver" and decision["subscriber"] == d.subscriber
        assert decision["rule_id"] and decision["lawful_basis"]


def test_a_child_whose_record_opens_no_case_is_told_to_no_one(mix: ShareMix) -> None:
    nfa = nfa_record(CHILD)
    person = nfa[0]
    later = body_events(CIN, CHILD + CHILDREN)  # the child's next record opens a case
    assert person["event_id"] in {e["event_id"] for e in later}  # the same identity event, announced again
    first, second = mix.plan_as_worker([nfa, later])

    assert first.deliveries == ()  # nothing about the child reaches anyone: not its identity, not its referral
    withheld = [r for a in first.audits for r in expand(a)
                if r["kind"] == "decision" and r["event_id"] == person["event_id"]]
    assert sorted(r["subscriber"] for r in withheld) == sorted(mix.protocol.subscribers)
    assert all(r["outcome"] == "withhold" for r in withheld)
    [hub] = [r for r in withheld if r["subscriber"] == HUB]
    assert "mash-s17-child-in-need" in hub["reason"] and "case" in hub["reason"]
    # once the case opens the hub is sent the child's data, and told who the child is at most once, after it
    hub_second = [d.event_id for d in second.deliveries if d.subscriber == HUB]
    assert hub_second and hub_second.count(person["event_id"]) <= 1
    assert hub_second[0] != person["event_id"]


def test_the_audit_store_holds_the_decision_that_released_each_delivery(mix: ShareMix, tmp_path: Path) -> None:
    plans = mix.plan_as_worker([body_events(CIN, CHILD + k * CHILDREN) for k in range(2)])
    person = next(e for e in body_events(CIN, CHILD) if e["event_type"] == "person.identified")
    assert (HUB, person["event_id"]) in {(d.subscriber, d.event_id) for p in plans for d in p.deliveries}
    store = open_audit_store(tmp_path, create_key=True)
    try:
        for plan in plans:
            store.append(list(plan.audits))
        for plan in plans:
            for d in plan.deliveries:
                decisions = store.search(decision_id=d.decision_id, kind="decision", limit=10)
                assert [(e["record"]["subscriber"], e["record"]["outcome"]) for e in decisions] == [
                    (d.subscriber, "deliver")], f"delivery of a {d.event_id} without its decision to deliver"
        disclosed = {x.event_id for x in store.every_disclosure(subscriber=HUB)}
        assert person["event_id"] in disclosed  # what a subject access report lists as shared with the hub
        assert store.verify().ok
    finally:
        store.close()


def test_the_hub_is_told_who_the_child_is_with_the_record_that_first_sends_it_the_child_s_data(
        mix: ShareMix) -> None:
    record = body_events(CIN, CHILD)
    person = record[0]
    assert person["event_type"] == "person.identified"
    first, second = mix.plan_as_worker([record, body_events(CIN, CHILD + CHILDREN)])
    hub_first = [d.event_id for d in first.deliveries if d.subscriber == HUB]
    assert person["event_id"] in hub_first and hub_first.index(person["event_id"]) > 0  # after the child's data
    assert person["event_id"] not in {d.event_id for d in second.deliveries}  # and not again
