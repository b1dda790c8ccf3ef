"""The Kafka epoch decision as a pure function: when a start must reconcile the registers with an emptied Kafka."""

from __future__ import annotations

import pytest

from broker.service.epoch import Verdict, plan_epoch


@pytest.mark.parametrize(("remembered", "markers", "created", "positions", "verdict"), [
    ("ke_a", {"ke_a"}, False, True, Verdict.INTACT),
    ("ke_a", {"ke_b", "ke_a"}, False, True, Verdict.INTACT),  # two processes started together
    ("ke_a", set(), True, True, Verdict.LOST),  # the embedded broker restarted
    ("ke_a", {"ke_b"}, False, True, Verdict.LOST),  # another cluster behind the same address
    ("ke_a", set(), False, False, Verdict.FRESH),  # lost, but nothing pointed at it
    (None, set(), True, True, Verdict.LOST),  # a data directory from before epochs, on an emptied broker
    (None, set(), False, True, Verdict.ADOPT),  # ...beside topics that were there: an upgrade
    (None, set(), True, False, Verdict.FRESH),
])
def test_plan(remembered, markers, created, positions, verdict) -> None:
    assert plan_epoch(remembered, frozenset(markers), events_topic_created=created,
                      positions_remembered=positions) is verdict
