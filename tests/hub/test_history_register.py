"""The history register on a real SQLite file: what the watch wrote survives a reopen, a merge moves every row to
the child's token, and a child's erasure leaves nothing under any token it carried."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from broker.pipeline.hub.calendar import build_calendar
from broker.pipeline.hub.plan import CUMULATIVE, plan_hub
from broker.policy import load_protocol
from broker.stores.history import HistoryRegister
from broker.stores.registry import FORGOTTEN_ON_SHRED
from tests.hub.test_hub_core import CHILD, OTHER, event, linked

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world() -> tuple:
    config = yaml.safe_load((ROOT / "deploy/calendars/exampleshire.yaml").read_text())
    banks = yaml.safe_load((ROOT / "deploy/calendars/england-bank-holidays.yaml").read_text())["dates"]
    return load_protocol(ROOT / "deploy/protocols/sample-partnership.yaml").hub, build_calendar(config, banks)


def step(path: Path, world: tuple, batch: list[dict]) -> list[dict]:
    """One batch as the watch does it: read the facts, plan, write; a fresh connection each time (a restart)."""
    rules, calendar = world
    register = HistoryRegister(path)
    try:
        tokens = [e["subject"]["linkage"]["token"] for e in batch]
        tokens += [e["payload"]["superseded_token"] for e in batch if e["event_type"] == "person.linked"]
        plan = plan_hub(batch, register.facts(tokens), rules, calendar)
        register.apply(plan)
        return plan.events
    finally:
        register.close()


def test_history_across_restarts_and_a_merge_then_erasure_forgets_every_token(tmp_path: Path, world: tuple) -> None:
    path = tmp_path / HistoryRegister.FILE
    # two streams about one child, each below the rule, each in its own run of the service
    assert step(path, world, [event(1, "education.attendance_concern", "education", "2026-11-28T09:00:00Z",
                                    token=OTHER),
                              event(2, "health.safeguarding_flag", "health", "2026-11-28T15:00:00Z",
                                    token=OTHER)]) != []
    first = step(path, world, [event(3, "police.incident_child_present", "police", "2026-11-29T20:00:00Z")])
    assert [e["event_type"] for e in first] == ["mash.enquiry"]
    # the merge, read after another restart: the held history shows the pattern
    merged = step(path, world, [linked(4, CHILD, OTHER, "2026-11-30T10:00:00Z")])
    raised = [e for e in merged if e["event_type"] == CUMULATIVE]
    assert len(raised) == 1 and len(raised[0]["payload"]["contributing"]) == 3
    folded = [e for e in merged if e["event_type"] == "mash.enquiry"]
    assert [e["payload"]["action"] for e in folded] == ["folded"]
    register = HistoryRegister(path)
    try:
        facts = register.facts([CHILD, OTHER])
        assert OTHER not in facts.history and len(facts.history[CHILD]) == 3
        assert [(q.token, q.open, len(q.contributions)) for q in register.enquiries(CHILD)] == \
            [(CHILD, True, 3), (CHILD, False, 1)]  # the earlier enquiry holds all three; the other is folded
        assert {c.token for c, _ in register.clocks(CHILD)} == {CHILD}
        # a redelivered batch after the writes: nothing new is raised
        assert step(path, world, [event(3, "police.incident_child_present", "police", "2026-11-29T20:00:00Z")]) == []
        assert register.forget([CHILD, OTHER]) > 0
        for table in HistoryRegister.TABLES:
            assert register.db.count(table) == 0, table
    finally:
        register.close()
    assert b"education.attendance_concern" not in path.read_bytes()  # secure_delete: not left in free pages


def test_the_history_register_is_forgotten_on_a_shred() -> None:
    assert "history" in {spec.attr for spec in FORGOTTEN_ON_SHRED}


def test_an_event_of_the_folded_token_read_in_a_later_batch_joins_the_child_without_the_identity_register(
        tmp_path: Path, world: tuple) -> None:
    """A concern under the superseded token, on another partition, read in a batch after the one that folded it and
    before the identity register holds the link (intake writes the link once Kafka has acknowledged): the history
    register remembers its own folds, so the concern still counts under the child's token."""
    path = tmp_path / HistoryRegister.FILE
    step(path, world, [event(1, "police.incident_child_present", "police", "2026-11-29T20:00:00Z"),
                       event(2, "health.safeguarding_flag", "health", "2026-11-30T08:00:00Z")])
    step(path, world, [linked(3, CHILD, OTHER, "2026-11-30T10:00:00Z")])
    late = step(path, world, [event(4, "education.attendance_concern", "education", "2026-11-30T09:00:00Z",
                                    token=OTHER)])
    (raised,) = [e for e in late if e["event_type"] == CUMULATIVE]
    assert raised["subject"]["linkage"]["token"] == CHILD and len(raised["payload"]["contributing"]) == 3
    assert {e["payload"]["action"] for e in late if e["event_type"] == "mash.enquiry"} == {"joined"}
    register = HistoryRegister(path)
    try:
        assert OTHER not in register.facts([OTHER]).history
        assert register.forget([CHILD, OTHER]) > 0 and register.facts([OTHER]).current == {}
    finally:
        register.close()
