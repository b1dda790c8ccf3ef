"""The hub watch settles its clocks every few seconds without reading every running clock (session 12's soak: a
decision clock runs a working day, so a day's enquiries' clocks are running at any time; reading them all each 5 s
grew the share worker's CPU and memory for the whole hour). What it reads must still be everything `settle` can
settle: compared with settling every running clock, on random registers and at awkward instants, on SQLite and
PostgreSQL; and the per-batch read of a child's running clocks is on an index, not a scan of every running clock."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from broker.pipeline.hub.calendar import iso
from broker.pipeline.hub.history import Clock, derived_id
from broker.pipeline.hub.plan import HubPlan, settle
from broker.stores.history import HistoryRegister

BASE = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
TOKENS = ["lt1_" + c * 32 for c in "EFGH"]  # fictitious linkage tokens


def clock(n: int, kind: str, due: dt.datetime, token: str) -> Clock:
    started = iso(due - dt.timedelta(hours=20))
    return Clock(derived_id("test-clock", str(n)), kind, token, derived_id("test-event", str(n)),
                 "police.incident_child_present" if kind == "encompass" else "health.safeguarding_flag", started,
                 iso(due), None if kind == "encompass" else derived_id("test-enquiry", str(n)),
                 {"token": token, "key_version": 1, "basis": "nhs_number", "confidence": "verified"})


def every_running(register: HistoryRegister) -> list[Clock]:
    """What the watch read before: every running clock, by due time (the test's own query)."""
    return [c for token in TOKENS for c, state in register.clocks(token) if state == "running"]


def comparable(settled: object) -> tuple[list[tuple[str, str]], list[str]]:
    met = sorted((c.clock_id, when) for c, when in settled.met)  # type: ignore[attr-defined]
    return met, sorted(c.clock_id for c in settled.breached)  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(6))
def test_what_is_read_settles_exactly_as_every_running_clock_would(tmp_path: Path, store_url: str | None,
                                                                  seed: int) -> None:
    rng = random.Random(seed)
    register = HistoryRegister(tmp_path / HistoryRegister.FILE, store_url)
    try:
        clocks = [clock(n, rng.choice(["decision", "decision", "encompass"]),
                        BASE + dt.timedelta(seconds=rng.randrange(-7200, 7200)), rng.choice(TOKENS))
                  for n in range(300)]
        register.apply(HubPlan(started=clocks))
        # some settled already (met or breached): never read again
        done = rng.sample(clocks, 60)
        register.settle([(c, c.started_at) for c in done[:30]], done[30:], iso(BASE))
        # deliveries of some incidents, before and after their deadlines, and one the log cannot time
        reached: dict[str, str | None] = {
            c.event_id: (None if rng.random() < 0.1 else iso(BASE + dt.timedelta(seconds=rng.randrange(-9000, 9000))))
            for c in clocks if c.kind == "encompass" and rng.random() < 0.5}
        due_times = [dt.datetime.fromisoformat(c.due_at.replace("Z", "+00:00")) for c in clocks]
        instants = [BASE + dt.timedelta(seconds=rng.randrange(-8000, 8000), milliseconds=rng.randrange(1000))
                    for _ in range(20)]
        instants += [d for d in rng.sample(due_times, 5)]  # exactly at a clock's due second
        instants += [d + dt.timedelta(milliseconds=1) for d in rng.sample(due_times, 5)]  # just after it
        instants += [d - dt.timedelta(milliseconds=1) for d in rng.sample(due_times, 5)]  # just before it
        running = every_running(register)
        assert len(running) == 240
        for at in instants:
            now = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # as broker/clock.py now_iso
            read = register.clocks_to_settle(now)
            assert comparable(settle(read, reached, now)) == comparable(settle(running, reached, now)), now
            assert {c.clock_id for c in read} <= {c.clock_id for c in running}  # never a settled clock
    finally:
        register.close()


def test_a_days_running_decision_clocks_are_not_read_while_they_run(tmp_path: Path, store_url: str | None) -> None:
    register = HistoryRegister(tmp_path / HistoryRegister.FILE, store_url)
    try:
        later = [clock(n, "decision", BASE + dt.timedelta(hours=20, seconds=n), TOKENS[n % 4]) for n in range(2000)]
        due = [clock(10_000 + n, "decision", BASE - dt.timedelta(seconds=n + 1), TOKENS[n % 4]) for n in range(3)]
        school = [clock(20_000 + n, "encompass", BASE + dt.timedelta(days=3), TOKENS[0]) for n in range(2)]
        register.apply(HubPlan(started=later + due + school))
        now = iso(BASE)
        read = register.clocks_to_settle(now)
        assert sorted(c.clock_id for c in read) == sorted(c.clock_id for c in due + school)
        assert [c.due_at for c in read] == sorted(c.due_at for c in read)  # by due time, as before
        settled = settle(read, {}, now)
        register.settle(settled.met, settled.breached, now)
        assert sorted(c.clock_id for c in settled.breached) == sorted(c.clock_id for c in due)
        assert sorted(c.clock_id for c in register.clocks_to_settle(now)) == sorted(c.clock_id for c in school)
    finally:
        register.close()


def test_the_running_clocks_are_read_on_indexes_and_an_older_register_gets_them(tmp_path: Path) -> None:
    path = tmp_path / HistoryRegister.FILE
    register = HistoryRegister(path)
    register.apply(HubPlan(started=[clock(1, "decision", BASE, TOKENS[0])]))
    # a register made before this change: its index on the state alone, which the planner picked for every read
    register.db.execute("DROP INDEX clocks_running_token")
    register.db.execute("CREATE INDEX clocks_state ON clocks (state)")
    register.close()
    register = HistoryRegister(path)
    try:
        names = {r[0] for r in register.db.query("SELECT name FROM sqlite_master WHERE type = 'index'"
                                                 " AND tbl_name = 'clocks'")}
        assert "clocks_state" not in names
        assert {"clocks_running_token", "clocks_running_due", "clocks_running_kind"} <= names
        assert [c.clock_id for c, _ in register.clocks(TOKENS[0])] == [clock(1, "decision", BASE, TOKENS[0]).clock_id]

        def plan(sql: str, *params: object) -> str:
            return " | ".join(str(r[-1]) for r in register.db.query(f"EXPLAIN QUERY PLAN {sql}", params))

        per_batch = plan("SELECT clock_id FROM clocks WHERE state = 'running' AND token IN (?, ?)", *TOKENS[:2])
        assert "clocks_running_token" in per_batch and "SCAN" not in per_batch, per_batch
        settling = plan("SELECT clock_id FROM clocks WHERE state = 'running' AND (kind = 'encompass' OR due_at < ?)"
                        " ORDER BY due_at, clock_id", iso(BASE))
        assert "SCAN clocks" not in settling, settling
    finally:
        register.close()
