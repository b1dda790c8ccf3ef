"""The hub watch reads of each child's history only what the plan of a batch can look at (broker/pipeline/hub/plan.py
`history_reads`), so its cost does not grow with the history (issue 24's soak: it did). The bounded read must never
change a plan: long synthetic histories (fictitious children, hundreds of entries over years, times as dates alone
and with offsets either side of midnight UTC), batches of new, backdated and re-read events, merges and decisions,
planned twice on two real SQLite registers, one reading whole histories (the reference: what the watch read
before) and one the bounded read; every plan and every register row must be the same."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.pipeline.hub.calendar import build_calendar
from broker.pipeline.hub.history import Entry, derived_id
from broker.pipeline.hub.plan import LINKED, HubPlan, history_reads, plan_hub
from broker.policy import load_protocol
from broker.policy.hub import HubRules
from broker.stores.history import HistoryRegister

ROOT = Path(__file__).resolve().parents[2]
TOKENS = ["lt1_" + c * 32 for c in "EFGHJK"]  # fictitious children
TYPES = [  # agency events the sample protocol's rules read, weighted towards its cumulative concerns
    ("education.attendance_concern", "education"), ("education.exclusion", "education"),
    ("health.safeguarding_flag", "health"), ("health.urgent_care_attendance", "health"),
    ("police.incident_child_present", "police"), ("police.domestic_abuse_notification", "police"),
    ("social_care.referral", "social_care"), ("social_care.case_closed", "social_care"),
    ("social_care.assessment", "social_care")]
OFFSETS = ["Z", "+01:00", "-11:00", "+13:45", "-03:30"]


@pytest.fixture(scope="module")
def world() -> tuple[HubRules, Any]:
    config = yaml.safe_load((ROOT / "deploy/calendars/exampleshire.yaml").read_text())
    banks = yaml.safe_load((ROOT / "deploy/calendars/england-bank-holidays.yaml").read_text())["dates"]
    return load_protocol(ROOT / "deploy/protocols/sample-partnership.yaml").hub, build_calendar(config, banks)


def _time(rng: random.Random, day: dt.date) -> str:
    """A day's time as agencies send them: a date alone, or a time near either end of the day in some offset."""
    if rng.random() < 0.3:
        return day.isoformat()
    hour = rng.choice([0, 0, 1, 12, 22, 23, 23])
    return f"{day.isoformat()}T{hour:02d}:{rng.randrange(60):02d}:00{rng.choice(OFFSETS)}"


def _event(rng: random.Random, n: int, token: str, day: dt.date) -> dict[str, Any]:
    event_type, agency = rng.choice(TYPES)
    occurred = _time(rng, day)
    return {"event_id": derived_id("reads-test", token, str(n)), "event_type": event_type, "schema_version": "1.4.0",
            "occurred_at": occurred, "recorded_at": "2026-12-01T10:00:00Z", "source": {"agency": agency},
            "risk": {"level": rng.choice(["low", "low", "medium", "high"])},
            "subject": {"linkage": {"token": token, "key_version": 1, "basis": "nhs_number", "confidence": "verified"}},
            "payload": {}}


def _history(rng: random.Random, token: str, size: int, start: dt.date) -> list[tuple[str, Entry]]:
    """A child's history already held: `size` entries over about five years, some days crowded."""
    out = []
    for i in range(size):
        day = start + dt.timedelta(days=rng.randrange(5 * 365) if rng.random() < 0.8 else rng.randrange(40))
        e = _event(rng, -1 - i, token, day)
        out.append((token, Entry(e["event_id"], e["event_type"], e["source"]["agency"], e["occurred_at"],
                                 e["risk"]["level"])))
    return out


def _batch(rng: random.Random, n: int, tokens: list[str], start: dt.date, seen: list[dict[str, Any]],
           merges: list[str]) -> list[dict[str, Any]]:
    """Events near each other (to cross the windows), backdated ones, events read again, a decision now and then,
    and sometimes a merge of one child's stream into another's."""
    out = []
    for i in range(rng.randrange(5, 40)):
        token = rng.choice(tokens)
        roll = rng.random()
        if roll < 0.1 and seen:
            out.append(rng.choice(seen))  # read again after a crash
            continue
        if roll < 0.15:
            out.append({**_event(rng, n * 100 + i, token, start), "event_type": "mash.decision",
                        "source": {"agency": "mash_hub"}, "payload": {}})
            continue
        if roll < 0.17 and len(merges) > 1:
            absorbed = merges.pop()
            into = rng.choice(merges)
            out.append({**_event(rng, n * 100 + i, into, start + dt.timedelta(days=rng.randrange(5 * 365))),
                        "event_type": LINKED, "source": {"agency": "health"},
                        "payload": {"superseded_token": absorbed}})
            continue
        day = start + dt.timedelta(days=rng.randrange(5 * 365) if roll < 0.5 else 700 + rng.randrange(-30, 30))
        out.append(_event(rng, n * 100 + i, token, day))
    seen.extend(e for e in out if e["event_type"] != LINKED)
    return out


def _plan(register: HistoryRegister, batch: list[dict[str, Any]], world: tuple[HubRules, Any],
          bounded: bool) -> HubPlan:
    rules, calendar = world
    tokens = [e["subject"]["linkage"]["token"] for e in batch]
    tokens += [e["payload"]["superseded_token"] for e in batch if e["event_type"] == LINKED]
    facts = register.facts(tokens, history_reads(batch, rules) if bounded else None)
    plan = plan_hub(batch, facts, rules, calendar)
    register.apply(plan)
    return plan


def _rows(register: HistoryRegister) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted(register.db.query(f"SELECT * FROM {table}")) for table in HistoryRegister.TABLES}


@pytest.mark.parametrize("seed", range(4))
def test_the_bounded_read_plans_exactly_what_the_whole_history_does(tmp_path: Path, world: tuple[HubRules, Any],
                                                                    seed: int) -> None:
    rng = random.Random(seed)
    start = dt.date(2020, 1, 1) + dt.timedelta(days=seed * 11)
    held = [row for token in TOKENS for row in _history(rng, token, rng.randrange(300, 700), start)]
    registers = [HistoryRegister(tmp_path / f"{name}.sqlite") for name in ("whole", "bounded")]
    try:
        for register in registers:
            register.apply(HubPlan(entries=held))
        seen: list[dict[str, Any]] = []
        merges = list(TOKENS)
        raised = 0
        for n in range(20):
            batch = _batch(rng, n, TOKENS, start, seen, merges)
            whole, bounded = (_plan(r, batch, world, b) for r, b in zip(registers, (False, True), strict=True))
            assert bounded == whole, f"seed {seed}, batch {n}: the bounded read planned differently"
            raised += len(whole.events)
        assert _rows(registers[0]) == _rows(registers[1])
        assert raised > 0  # the batches did raise the hub's events: the comparison compared something
    finally:
        for register in registers:
            register.close()


def test_the_bounded_read_on_postgresql_plans_what_the_whole_read_on_sqlite_does(
        tmp_path: Path, world: tuple[HubRules, Any], pg_database: str) -> None:
    """The same register on PostgreSQL (its spans query, its text comparisons) against the reference on SQLite."""
    rng = random.Random(11)
    start = dt.date(2021, 6, 1)
    held = [row for token in TOKENS for row in _history(rng, token, rng.randrange(100, 300), start)]
    registers = [HistoryRegister(tmp_path / "whole.sqlite"), HistoryRegister(tmp_path / "pg", url=pg_database)]
    try:
        for register in registers:
            register.apply(HubPlan(entries=held))
        seen: list[dict[str, Any]] = []
        merges = list(TOKENS)
        for n in range(10):
            batch = _batch(rng, n, TOKENS, start, seen, merges)
            whole, bounded = (_plan(r, batch, world, b) for r, b in zip(registers, (False, True), strict=True))
            assert bounded == whole, f"batch {n}: PostgreSQL's bounded read planned differently"
        assert _rows(registers[0]) == _rows(registers[1])
    finally:
        for register in registers:
            register.close()


def _concern(n: int, event_type: str, agency: str, occurred: str) -> dict[str, Any]:
    return {**_event(random.Random(n), n, TOKENS[0], dt.date(2024, 1, 1)), "event_type": event_type,
            "source": {"agency": agency}, "occurred_at": occurred, "risk": {"level": "low"}}


# Stored times whose local date lies a day outside the window's UTC dates, though the instant is inside it: the
# pattern is seen only if the register's read, which compares text, reaches them.
EDGES = {
    # 90 days before 2024-06-01T01:00Z is 2024-03-03T01:00Z: 15:00 on 2 March at -11:00 is 02:00Z on 3 March
    "earliest": ([_concern(1, "education.attendance_concern", "education", "2024-03-02T15:00:00-11:00"),
                  _concern(2, "health.safeguarding_flag", "health", "2024-04-15")],
                 _concern(3, "police.incident_child_present", "police", "2024-06-01T01:00:00Z")),
    # a backdated incident at 23:00Z on 1 June: a window ending at the concern 12:00Z on 30 August (13:45 local on
    # 31 August) holds it with two later ones
    "latest": ([_concern(4, "health.safeguarding_flag", "health", "2024-06-10"),
                _concern(5, "education.attendance_concern", "education", "2024-08-31T01:45:00+13:45")],
               _concern(6, "police.incident_child_present", "police", "2024-06-01T23:00:00Z")),
    # the event's own offset: 23:30 on 1 June at -11:00 is 10:30Z on 2 June, so its window reaches 10:30Z on 31
    # August, and 10:20Z then is 00:05 on 1 September at +13:45
    "latest, the event's own offset": (
        [_concern(7, "health.safeguarding_flag", "health", "2024-06-15"),
         _concern(8, "education.attendance_concern", "education", "2024-09-01T00:05:00+13:45")],
        _concern(9, "police.incident_child_present", "police", "2024-06-01T23:30:00-11:00")),
}


@pytest.mark.parametrize("edge", sorted(EDGES))
def test_a_concern_whose_local_date_is_outside_the_window_is_still_read(tmp_path: Path, world: tuple[HubRules, Any],
                                                                        edge: str) -> None:
    held, new = EDGES[edge]
    registers = [HistoryRegister(tmp_path / f"{name}.sqlite") for name in ("whole", "bounded")]
    try:
        for register in registers:
            _plan(register, held, world, bounded=False)
        whole, bounded = (_plan(r, [new], world, b) for r, b in zip(registers, (False, True), strict=True))
        assert [e["event_type"] for e in whole.events].count("mash.cumulative_concern") == 1
        assert bounded == whole
    finally:
        for register in registers:
            register.close()


def test_the_bounded_read_holds_far_less_than_a_long_history(tmp_path: Path, world: tuple[HubRules, Any]) -> None:
    """What the comparison above cannot show: that the read IS bounded. A child with 2,000 entries over five years,
    one new event: the plan is given its window's entries, its referrals and closures, and nothing else."""
    rng = random.Random(99)
    start = dt.date(2020, 1, 1)
    token = TOKENS[0]
    held = _history(rng, token, 2000, start)
    register = HistoryRegister(tmp_path / "history.sqlite")
    try:
        register.apply(HubPlan(entries=held))
        batch = [_event(rng, 1, token, start + dt.timedelta(days=900))]
        facts = register.facts([token], history_reads(batch, world[0]))
        got = facts.history.get(token, [])
        near = [e for _, e in held if abs((dt.date.fromisoformat(e.occurred_at[:10])
                                           - (start + dt.timedelta(days=900))).days) <= 90]
        assert len(near) <= len(got) < len(held) // 4
        assert {e.event_id for e in near} <= {e.event_id for e in got}
    finally:
        register.close()


# --- cost: register read + plan per event against short and long histories (skipped unless --benchmark-enable) --

@pytest.mark.parametrize("bounded", [False, True], ids=["whole-read", "bounded-read"])
@pytest.mark.parametrize("entries", [10, 1000])
def test_bench_read_and_plan_against_a_childs_history(benchmark: Any, tmp_path: Path, world: tuple[HubRules, Any],
                                                      entries: int, bounded: bool) -> None:
    """The same density of events (one every six days, few of them referrals), a longer history reaching further
    back: a batch of 100 new events in the last two months costs the same against 10 entries as against 1,000."""
    if benchmark.disabled:
        pytest.skip("a cost measurement: run with --benchmark-enable")
    rng = random.Random(7)
    end = dt.date(2026, 1, 1)
    register = HistoryRegister(tmp_path / "history.sqlite")
    concerns = [t for t in TYPES if t[0] not in ("social_care.referral", "social_care.case_closed")]

    def made(n: int, token: str, day: dt.date) -> dict[str, Any]:
        e = _event(rng, n, token, day)
        if rng.random() < 0.95:
            e["event_type"], e["source"] = (lambda t: (t[0], {"agency": t[1]}))(rng.choice(concerns))
        return e

    try:
        held = [(t, Entry(e["event_id"], e["event_type"], e["source"]["agency"], e["occurred_at"], "low"))
                for t in TOKENS for i in range(entries)
                for e in [made(-1 - i, t, end - dt.timedelta(days=rng.randrange(6 * entries)))]]
        register.apply(HubPlan(entries=held))
        batch = [made(i, rng.choice(TOKENS), end - dt.timedelta(days=rng.randrange(60))) for i in range(100)]
        rules, calendar = world

        def once() -> HubPlan:
            reads = history_reads(batch, rules) if bounded else None
            return plan_hub(batch, register.facts(TOKENS, reads), rules, calendar)

        benchmark.extra_info["events_per_round"] = len(batch)
        plan = benchmark.pedantic(once, rounds=10, iterations=1, warmup_rounds=1)
        assert len(plan.entries) == len(batch)
    finally:
        register.close()
