"""The share planner with no Kafka, HTTP or database: who receives what, case state through a batch and over a merge,
duplicates, a subscriber whose key is unusable, a rule that raises, an erased child's notice, a poison message.
Deliveries are sealed to real subscriber keys and opened with the subscriber's client to check what each received."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from broker.crypto.client import SubscriberClient
from broker.crypto.envelope import protect_blob, reveal_blob
from broker.crypto.hpke_keys import generate_subscriber_keypair
from broker.crypto.seal import DeliverySealer
from broker.pipeline.erasure import NOTICE_REASON, NOTICE_TYPE, notice_event
from broker.pipeline.messages import decode, header
from broker.pipeline.resolve import linked_event
from broker.pipeline.share_plan import (
    HELD_REASON,
    CaseWrite,
    Item,
    Poison,
    ShareFacts,
    ShareParams,
    SharePlan,
    plan_share,
)
from broker.policy import ConsentState, Protocol
from tests.policy.conftest import base_protocol, compile_data, make_event
from tests.unit.test_intake_plan import MemoryKeys

NOW = "2026-11-23T10:00:00Z"
MASK_KEY = b"fictitious-mask-key-for-tests-01"
REFERRAL = {"referral_date": "2026-05-04", "referral_source": "5A", "primary_need_code": "N1"}
NAMES = ("hub", "gp_one", "helper")
BASIS = ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "dpa2018_s36_4", "children_act_1989_s47"]
SC_BASIS = ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "children_act_1989_s47"]


class Keys:
    """The ShareKeys handles as the runtime has them: a sealer per subscriber from the protocol's public key (so an
    unusable key fails as it does in service), and the dead-letter scope in memory."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol, self.store = protocol, MemoryKeys()

    def seal_for(self, subscriber: str, released: dict[str, Any]) -> bytes:
        sub = self.protocol.subscribers[subscriber]
        return DeliverySealer(subscriber, sub.public_key(), sub.key_suite).seal(released)

    def seal_deadletter_input(self, data: bytes, content_sha256: str) -> str:
        return protect_blob(data, f"deadletter:{content_sha256}", self.store)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    """A protocol of three subscribers with real key pairs: hub (every social care and police event), helper (only
    while the child's case is open), gp_one (the child's NHS number masked by keyed hash); and their clients."""
    folder: Path = tmp_path_factory.mktemp("keys")
    data = base_protocol()
    clients = {}
    for sub in data["subscribers"]:
        private, public = generate_subscriber_keypair("x25519")
        sub["public_key"] = public
        clients[sub["name"]] = SubscriberClient(private, sub["name"])
    data["rules"][0]["event_types"] = ["social_care.*", "police.*"]
    data["rules"] += [
        {"id": "helper-open-case", "description": "Early help while a case is open", "subscribers": ["helper"],
         "event_types": ["social_care.*", "police.*"], "purpose": "support", "lawful_basis": BASIS,
         "conditions": {"case_open": True},
         "fields": [{"classifications": ["identity"], "action": "release"}]},
        {"id": "gp-masked", "description": "GP with the NHS number masked", "subscribers": ["gp_one"],
         "event_types": ["social_care.*"], "purpose": "care", "lawful_basis": SC_BASIS,
         "fields": [{"paths": ["subject.child.nhs_number"], "action": "mask", "mask": "keyed_hash"},
                    {"classifications": ["identity"], "action": "release"}]},
    ]
    broken = copy.deepcopy(data)
    gp = next(s for s in broken["subscribers"] if s["name"] == "gp_one")
    del gp["public_key"]
    gp["key_file"] = "missing/gp_one.pub"  # never written: the key cannot be loaded
    return {"protocol": compile_data(data, folder), "broken": compile_data(broken, folder), "clients": clients}


def _params(protocol: Protocol, mask_key: bytes = MASK_KEY) -> ShareParams:
    return ShareParams(protocol, mask_key, NOW, lambda name: f"sg.deliver.{name}", "sg.deadletter")


def _plan(world, items, facts: ShareFacts | None = None, *, protocol: Protocol | None = None,
          mask_key: bytes = MASK_KEY) -> SharePlan:
    protocol = protocol or world["protocol"]
    return plan_share(items, facts or ShareFacts(), Keys(protocol), _params(protocol, mask_key))


def _items(*events: dict) -> list[Item]:
    return [Item(e, 0, n) for n, e in enumerate(events)]


def _received(world, plan: SharePlan) -> dict[str, list[dict]]:
    """What each subscriber can open of the plan's deliveries, by name."""
    out: dict[str, list[dict]] = {}
    for d in plan.deliveries:
        assert d.message.topic == f"sg.deliver.{d.subscriber}" and d.message.key == d.token.encode()
        out.setdefault(d.subscriber, []).append(world["clients"][d.subscriber].open(d.message.value))
    return out


def _who(plan: SharePlan) -> list[tuple[str, str]]:
    return [(d.subscriber, d.event_id) for d in plan.deliveries]


def referral(record: str = "ref-1") -> dict:
    return make_event("social_care.referral", "social_care", REFERRAL, record_id=record)


def closure(record: str = "close-1") -> dict:
    return make_event("social_care.case_closed", "social_care", {"closure_date": "2026-05-06"}, record_id=record)


def incident(record: str = "inc-1") -> dict:
    return make_event("police.incident_child_present", "police", {"incident_reference": "999001"}, record_id=record)


def _token(event: dict) -> str:
    return event["subject"]["linkage"]["token"]


def test_who_receives_what_each_under_its_own_rule_and_sealed_to_it(world):
    event = referral()
    plan = _plan(world, _items(event))
    got = _received(world, plan)
    assert sorted(got) == sorted(NAMES)  # the referral opens the case, so helper's rule applies too
    assert got["hub"][0]["event_id"] == event["event_id"]
    nhs = event["subject"]["child"]["nhs_number"]
    assert got["hub"][0]["subject"]["child"]["nhs_number"] == nhs
    assert got["gp_one"][0]["subject"]["child"]["nhs_number"].startswith("kh1_")  # masked for the GP
    assert all(nhs.encode() not in d.message.value for d in plan.deliveries)  # sealed, never in the clear
    assert plan.case_writes == (CaseWrite(_token(event), True, event["event_id"]),)
    assert sorted(plan.decided) == sorted((n, "deliver") for n in NAMES)
    assert [a["kind"] for a in plan.audits].count("decision") == 3
    assert [a["kind"] for a in plan.audits].count("delivered") == 3
    assert plan.marks == [(d.subscriber, d.event_id, d.decision_id) for d in plan.deliveries]
    assert plan.recipients == {(_token(event), n) for n in NAMES}
    assert plan.held == () and plan.failures == () and plan.faults == {}


def test_case_state_follows_the_batch_in_order_and_is_written_only_when_it_changes(world):
    opened, closed, after = referral("r1"), closure("c1"), incident("i1")
    plan = _plan(world, _items(opened, referral("r2"), closed, after))
    token = _token(opened)
    assert plan.case_writes == (CaseWrite(token, True, opened["event_id"]), CaseWrite(token, False, closed["event_id"]))
    helper = [event_id for sub, event_id in _who(plan) if sub == "helper"]
    assert opened["event_id"] in helper and closed["event_id"] not in helper and after["event_id"] not in helper
    assert ("hub", after["event_id"]) in _who(plan)  # the hub's rule does not depend on the case


def test_the_register_snapshot_is_the_starting_state_and_is_not_changed(world):
    event = incident()
    facts = ShareFacts(cases={_token(event): True})
    plan = _plan(world, _items(event), facts)
    assert ("helper", event["event_id"]) in _who(plan) and plan.case_writes == ()
    assert dict(facts.cases) == {_token(event): True} and facts.sent == frozenset()


def test_a_merge_carries_the_absorbed_childs_open_case_over_before_the_next_decision(world):
    later = incident("after-merge")
    absorbed = "lt1_absorbedchildtokenfictitious000000"
    link = linked_event(later, absorbed)
    facts = ShareFacts(cases={absorbed: True})
    plan = _plan(world, _items(link, later), facts)
    assert plan.case_writes == (CaseWrite(_token(later), True, link["event_id"]),)
    assert ("helper", later["event_id"]) in _who(plan)
    without = _plan(world, _items(later), facts)  # the same event, no link: the case under its token is unknown
    assert ("helper", later["event_id"]) not in _who(without)


def test_an_event_twice_in_a_batch_and_one_the_log_has_are_each_sent_once(world):
    event = referral()
    facts = ShareFacts(sent=frozenset({("hub", event["event_id"])}))
    plan = _plan(world, _items(event, event), facts)
    assert sorted(_who(plan)) == sorted([("gp_one", event["event_id"]), ("helper", event["event_id"])])
    assert sorted(plan.duplicates) == sorted(["hub", "hub", "gp_one", "helper"])
    assert facts.sent == frozenset({("hub", event["event_id"])})


def test_a_subscriber_whose_key_is_unusable_is_held_in_order_while_the_others_proceed(world):
    first, second = referral("r1"), referral("r2")
    plan = _plan(world, [Item(first, 2, 10), Item(second, 2, 11)], protocol=world["broken"])
    assert {s for s, _ in _who(plan)} == {"hub", "helper"}
    assert [(h.subscriber, h.event_id, h.partition, h.offset) for h in plan.held] == [
        ("gp_one", first["event_id"], 2, 10), ("gp_one", second["event_id"], 2, 11)]
    assert list(plan.faults) == ["gp_one"] and "gp_one" not in {d.subscriber for d in plan.deliveries}
    held_audits = [a for a in plan.audits if a.get("action") == "delivery.held"]
    assert [a["event_id"] for a in held_audits] == [first["event_id"], second["event_id"]]
    assert all(a["reason"] == HELD_REASON and a["subscriber"] == "gp_one" for a in held_audits)


def test_a_subscriber_with_held_deliveries_gets_new_ones_held_behind_them_without_a_new_fault(world):
    event = referral()
    plan = _plan(world, _items(event), ShareFacts(holding=frozenset({"helper"})))
    assert [h.subscriber for h in plan.held] == ["helper"] and plan.faults == {}
    assert {s for s, _ in _who(plan)} == {"hub", "gp_one"}


def test_a_rule_that_raises_fails_its_subscriber_only_and_the_batch_goes_on(world):
    first, second = referral("r1"), incident("i1")
    plan = _plan(world, _items(first, second), mask_key=b"")  # gp_one's keyed-hash mask refuses to run keyless
    assert [(f.subscriber, f.event_id) for f in plan.failures] == [("gp_one", first["event_id"])]
    assert "PolicyError" in plan.failures[0].reason
    assert {s for s, e in _who(plan) if e == first["event_id"]} == {"hub", "helper"}
    assert ("hub", second["event_id"]) in _who(plan)  # the next event is decided as usual
    [failed] = [a for a in plan.audits if a.get("action") == "delivery.failed"]
    assert failed["subscriber"] == "gp_one" and failed["event_id"] == first["event_id"]
    assert ("gp_one", "error") in plan.decided


def test_an_erased_childs_notice_goes_to_its_past_recipients_only_whatever_the_rules(world):
    event = referral()
    notice = notice_event([_token(event), "lt1_oldertokenfictitious00000000000000"], NOW)
    facts = ShareFacts(notice_recipients={notice["event_id"]: frozenset({"helper", "left_the_protocol"})})
    plan = _plan(world, _items(notice), facts)
    [delivery] = plan.deliveries
    assert delivery.subscriber == "helper" and header(delivery.message.headers, "event_type") == NOTICE_TYPE
    opened = world["clients"]["helper"].open(delivery.message.value)
    assert opened["payload"]["erased_tokens"] == notice["payload"]["erased_tokens"]
    assert [a["reason"] for a in plan.audits] == [NOTICE_REASON] and plan.decided == () and plan.failures == ()
    again = _plan(world, _items(notice), ShareFacts(sent=frozenset({("helper", notice["event_id"])}),
                                                     notice_recipients=facts.notice_recipients))
    assert again.deliveries == () and again.duplicates == ("helper",)


def test_a_poison_message_is_dead_lettered_sealed_and_the_batch_goes_on(world):
    raw = b'{"not": "an event", "name": "Testchild Example"}'
    keys = Keys(world["protocol"])
    event = referral()
    plan = plan_share([Poison("sg.events", 1, 7, raw, "undecodable event (JSONDecodeError)"), *_items(event)],
                      ShareFacts(), keys, _params(world["protocol"]))
    [dead] = plan.deadletters
    record = decode(dead.value)
    assert dead.topic == "sg.deadletter" and record["rejection"]["source"] == "sg.events/1/7"
    assert b"Testchild" not in dead.value
    assert reveal_blob(record["input"], f"deadletter:{record['content_sha256']}", keys.store) == raw
    assert {s for s, _ in _who(plan)} == set(NAMES)


def test_an_objection_refers_the_share_to_a_person_once_and_never_what_was_already_sent(world):
    event = make_event("social_care.assessment", "social_care", {"actual_start_date": "2026-05-01"})
    objection = {_token(event): ConsentState(objection=True, recorded_on="2026-04-20")}
    plan = _plan(world, [Item(event, 3, 42)], ShareFacts(consent=objection))
    assert sorted(r.decision.subscriber for r in plan.referrals) == sorted(NAMES) and plan.deliveries == ()
    assert all((r.token, r.partition, r.offset) == (_token(event), 3, 42) and r.decision.human_decision is not None
               for r in plan.referrals)
    redelivered = _plan(world, [Item(event, 3, 42)],
                        ShareFacts(consent=objection, sent=frozenset({("hub", event["event_id"])})))
    assert sorted(r.decision.subscriber for r in redelivered.referrals) == ["gp_one", "helper"]
