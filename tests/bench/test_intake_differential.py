"""Old against new for the service's intake plan (issue 24), and its benchmark.

Old: the key store handed to the plan, in one worker thread (the service up to session 7). New: the key store's
calls made ahead in the thread (broker/crypto/prefetched.py), the pure plan on the event loop with the keys
fetched. Over the bench's mix, at one record per request and at 20, both must agree exactly: every message's
topic, key and headers, every protected field opened and under the same key id at the same length, every audit
record but its random id, the answer, the register writes (broker/bench/intake_mix.py `comparable`).

And what the keys fetched ahead must never do: hand a key for anything not fetched (a dead letter's seal, an
event changed since), or let an erased child's old record through; the shell plans again with the key store then.

The benchmark runs only when asked: `nice -n 19 .venv/bin/python -m pytest tests/bench/test_intake_differential.py
--benchmark-enable -p no:cacheprovider` (otherwise it skips: it measures cost). One round is the whole mix; divide
by `extra_info["events"]` for the cost per event.
"""

from __future__ import annotations

import copy

import pytest

from adapters.kit.interface import Rejection
from broker.bench.intake_mix import PARAMS, comparable, intake_mix, plan_prefetched, plan_with_store
from broker.crypto.envelope import protect_event, protection_request
from broker.crypto.errors import ErasedData, KeyUnavailable
from broker.crypto.prefetched import NotFetched, fetch_protection_keys
from broker.pipeline.erasure import ERASED_RESEND
from broker.pipeline.intake_plan import ErasureFacts, IntakeParams, plan_intake, resolve_intake
from broker.pipeline.resolve import Known
from tests.unit.test_intake_plan import MemoryKeys, _event, _prepared, _request

NHS_B = "9990000026"  # fictitious: the 999 range is never issued


def _child_event() -> tuple:
    return _event({"nhs_number": NHS_B, "family_name": "Example", "given_names": ["Testchild"],
                   "date_of_birth": "2015-03-01"})


@pytest.mark.parametrize(("batch", "count"), [(1, 60), (20, 6)])
def test_the_plan_with_keys_fetched_ahead_is_the_plan_with_the_key_store(tmp_path, batch, count):
    with intake_mix(tmp_path, count=count, batch=batch) as m:
        compared = 0
        for old, new in m.plan_each(plan_with_store, plan_prefetched):
            assert comparable(new, m.keys) == comparable(old, m.keys)
            assert old.messages and len(new.audits) == len(old.audits)
            compared += len(new.messages)
        assert compared == m.events  # every event of the mix published by both, none lost to a fallback


def test_an_event_over_kafkas_limit_makes_the_same_dead_letter_either_way(tmp_path):
    """A rejection found only while planning (an event over the message limit) needs a dead letter sealed with keys
    not fetched ahead: the prefetched plan stops (NotFetched) and the fallback plans it as the key store would."""
    with intake_mix(tmp_path, count=7) as m:
        dead_lettered = 0
        for limit in (1_500, 2_000, 2_500, 3_000, 4_000):
            m.params = IntakeParams(PARAMS.events_topic, PARAMS.deadletter_topic, message_limit=limit)
            for old, new in m.plan_each(plan_with_store, plan_prefetched):
                assert comparable(new, m.keys) == comparable(old, m.keys)
                dead_lettered += bool(old.result.deadletter_ids and old.refusal is None)
        assert dead_lettered  # some limit let the dead letter through while refusing the event


def test_keys_fetched_ahead_answer_only_the_calls_made_ahead():
    keys = MemoryKeys()
    event, _ = _child_event()
    fetched = fetch_protection_keys(keys, [event])
    scope, classifications, event_id = protection_request(event)
    assert set(fetched.encryption_keys(scope, classifications, event_id=event_id)) == set(classifications)
    with pytest.raises(NotFetched):  # another event of the child
        fetched.encryption_keys(scope, classifications, event_id="ev-not-fetched")
    with pytest.raises(NotFetched):  # the same event, one classification more than it had when fetched
        fetched.encryption_keys(scope, [*classifications, "special_category"], event_id=event_id)
    with pytest.raises(NotFetched):  # a dead letter's seal
        fetched.encryption_key("deadletter", "narrative")
    with pytest.raises(NotFetched):
        fetched.decryption_key("k0")
    assert issubclass(NotFetched, KeyUnavailable)  # never caught as a success: the shell's 503 if not handled


def test_an_event_changed_after_its_keys_were_fetched_is_not_protected_with_them():
    keys = MemoryKeys()
    event, _ = _child_event()
    fetched = fetch_protection_keys(keys, [event])
    changed = copy.deepcopy(event)
    changed["subject"]["linkage"]["token"] = "lt1_another-childs-token"
    with pytest.raises(NotFetched):
        protect_event(changed, fetched)
    assert protect_event(event, fetched)["event_id"] == event["event_id"]


def test_the_keystores_refusal_of_an_erased_childs_old_event_holds_when_fetched_ahead():
    event, ids = _child_event()
    keys = MemoryKeys(erased_events=[event["event_id"]])
    fetched = fetch_protection_keys(keys, [event])  # the refusal is kept, not raised here
    with pytest.raises(ErasedData):
        protect_event(event, fetched)
    prepared = _prepared((event, ids))
    resolved = resolve_intake(prepared, Known())
    # refused, so dead-lettered; its input is not kept (no seal, so no key is asked for): the same either way
    new = plan_intake(_request(), prepared, resolved, ErasureFacts(), fetched, PARAMS)
    old = plan_intake(_request(), prepared, resolved, ErasureFacts(), keys, PARAMS)
    for plan in (new, old):
        assert [r.reason for r in plan.result.rejections] == [ERASED_RESEND] and not plan.result.event_ids
        assert [m.topic for m in plan.messages] == [PARAMS.deadletter_topic]  # a value-free record, no input
    assert new.result == old.result and [m.value for m in new.messages] == [m.value for m in old.messages]


def test_a_key_outage_while_fetching_is_raised_before_anything_is_planned():
    event, _ = _child_event()
    with pytest.raises(KeyUnavailable):
        fetch_protection_keys(MemoryKeys(down=True), [event])


def test_an_input_with_a_rejected_record_is_never_planned_with_keys_fetched_ahead():
    event, ids = _child_event()
    prepared = _prepared((event, ids), rejections=[Rejection("request", "record 2", "birthDate", "not a date")])
    resolved = resolve_intake(prepared, Known())
    keys = MemoryKeys()
    with pytest.raises(NotFetched):  # its dead letter is sealed: the plan must have the key store
        plan_intake(_request(), prepared, resolved, ErasureFacts(), fetch_protection_keys(keys, [event]), PARAMS)


@pytest.mark.parametrize("planner", [plan_with_store, plan_prefetched], ids=["old", "new"])
@pytest.mark.parametrize("batch", [1, 20])
def test_bench_intake_plan(benchmark, tmp_path, planner, batch):
    if benchmark.disabled:
        pytest.skip("a cost measurement: run with --benchmark-enable")
    with intake_mix(tmp_path, count=600 // batch, batch=batch) as m:
        list(m.plan_all(planner))  # every child's keys and links made before anything is measured
        benchmark.extra_info["events"] = m.events
        plans = benchmark.pedantic(lambda: list(m.plan_all(planner)), rounds=5, iterations=1)
        assert sum(len(p.result.event_ids) for p in plans) == m.events
