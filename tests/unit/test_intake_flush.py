"""The flush plan (broker/pipeline/intake_flush.py): a flush publishes exactly its requests' messages and audit
records, in request order and each request's in its own order (a child's events stay in the order their requests
were planned), and writes the registers of exactly the requests that have a write."""

from __future__ import annotations

import pytest

from broker.pipeline.identify import Identity
from broker.pipeline.intake_flush import plan_flush, writes_registers
from broker.pipeline.intake_plan import IntakePlan, IntakeResult
from broker.pipeline.messages import Outgoing
from broker.pipeline.resolve import Resolution


def _plan(name: str, events: int, *, links: tuple[Resolution, ...] = (), folds: tuple[tuple[str, str], ...] = (),
          refusal: str | None = None) -> IntakePlan:
    """A request's plan with `events` messages keyed by one child token (fictitious) and an audit record each."""
    messages = tuple(Outgoing("t.events", b"lt1_child_" + name.encode(), f"{name}-{i}".encode())
                     for i in range(events))
    audits = tuple({"kind": "event_published", "event_id": f"{name}-{i}"} for i in range(events))
    return IntakePlan(IntakeResult("health.fhir"), messages, audits, links, folds, refusal)


def test_a_flush_keeps_request_order_and_each_requests_own_order():
    a, b, c = _plan("a", 3), _plan("b", 1), _plan("c", 2)
    flush = plan_flush([a, b, c], [False, False, False])
    assert [m.value for m in flush.messages] == [b"a-0", b"a-1", b"a-2", b"b-0", b"c-0", b"c-1"]
    assert [r["event_id"] for r in flush.audits] == ["a-0", "a-1", "a-2", "b-0", "c-0", "c-1"]
    assert flush.writes == ()


def test_only_the_requests_with_a_link_a_merge_a_fold_or_a_fact_to_learn_write():
    linking = Resolution("lt1_x", links=(Identity("nhs", "lt1_nhs_x"),))
    merging = Resolution("lt1_y", merged=("lt1_z",))
    known = Resolution("lt1_w")  # resolved to a known child: nothing to record
    plans = [_plan("a", 1, links=(known,)), _plan("b", 1, links=(linking,)), _plan("c", 1),
             _plan("d", 1, links=(merging,)), _plan("e", 1, folds=(("lt1_z", "lt1_y"),)), _plan("f", 1)]
    flush = plan_flush(plans, [False, False, True, False, False, False])
    assert flush.writes == (1, 2, 3, 4)
    assert [writes_registers(p) for p in plans] == [False, True, False, True, True, False]


def test_a_refused_plan_never_enters_a_flush():
    with pytest.raises(ValueError, match="refused"):
        plan_flush([_plan("a", 1), _plan("b", 0, refusal="too large")], [False, False])
    with pytest.raises(ValueError, match="one learns_facts flag per plan"):
        plan_flush([_plan("a", 1)], [])
