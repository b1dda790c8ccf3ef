"""Operation Encompass is met only if the school's DSL had the incident before the next school day started (issue
16): the delivered log keeps each delivery's time on a real SQLite file (and PostgreSQL), across a restart and from
a log written before it kept times, and the clocks are settled against those times, not the moment the watch looks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from broker.pipeline.hub.history import Clock, derived_id
from broker.pipeline.hub.plan import settle
from broker.stores.delivered import DeliveredLog

SCHOOL, POLICE_SUBSCRIBER = "oakfield_dsl", "exampleshire_police"  # fictitious subscriber names
CHILD = "lt1_" + "E" * 32  # a fictitious token
DUE = "2026-11-30T08:45:00Z"  # Friday evening's incident: before Monday's school day starts
LINKAGE = {"token": CHILD, "key_version": 1, "basis": "nhs_number", "confidence": "verified"}


def encompass(n: int) -> Clock:
    incident = derived_id("test-incident", str(n))
    return Clock(derived_id("encompass", incident), "encompass", CHILD, incident, "police.incident_child_present",
                 "2026-11-27T19:00:00Z", DUE, None, LINKAGE)


def reopen_and_settle(path: Path, clocks: list[Clock], now: str,
                      url: str | None = None) -> tuple[list[tuple[Clock, str]], list[Clock]]:
    """What the watch does each interval, on a fresh connection (a restart between the delivery and the look)."""
    log = DeliveredLog(path, url)
    try:
        settled = settle(clocks, log.sent_at([SCHOOL], [c.event_id for c in clocks]), now)
    finally:
        log.close()
    return settled.met, settled.breached


def test_a_delivery_before_the_deadline_is_met_and_one_after_is_breached_across_a_restart(
        tmp_path: Path, store_url: str | None) -> None:
    path = tmp_path / DeliveredLog.FILE
    early, late, elsewhere, never = clocks = [encompass(n) for n in range(4)]
    log = DeliveredLog(path, store_url)
    log.mark([(SCHOOL, early.event_id, "d1")], at="2026-11-30T08:44:59.000Z")
    log.mark([(SCHOOL, late.event_id, "d2")], at="2026-11-30T08:45:00.000Z")  # the school day has started
    log.mark([(POLICE_SUBSCRIBER, elsewhere.event_id, "d3")], at="2026-11-28T10:00:00.000Z")  # not the school
    log.mark([(SCHOOL, early.event_id, "d1")], at="2026-11-30T12:00:00.000Z")  # a redelivery keeps the first time
    log.close()

    # the watch was down over the weekend and looks on Monday afternoon: what counts is when the school had it
    met, breached = reopen_and_settle(path, clocks, "2026-11-30T15:00:00Z", store_url)
    assert met == [(early, "2026-11-30T08:44:59.000Z")]  # met at its delivery time, not at the look
    assert breached == [late, elsewhere, never]

    # looked at before the deadline: the early one is met, the rest still run (none is breached before it is due)
    met, breached = reopen_and_settle(path, clocks, "2026-11-30T08:00:00Z", store_url)
    assert [c for c, _ in met] == [early] and breached == []


def test_a_log_from_before_delivery_times_gains_the_column_and_its_old_rows_prove_no_time(tmp_path: Path) -> None:
    path = tmp_path / DeliveredLog.FILE
    old = sqlite3.connect(path)  # the table as the broker wrote it before this change
    old.execute("CREATE TABLE delivered (subscriber TEXT NOT NULL, event_id TEXT NOT NULL, decision_id TEXT NOT NULL,"
                " PRIMARY KEY (subscriber, event_id))")
    untimed, timed = encompass(10), encompass(11)
    old.execute("INSERT INTO delivered VALUES (?, ?, ?)", (SCHOOL, untimed.event_id, "d-old"))
    old.commit()
    old.close()

    log = DeliveredLog(path)
    log.mark([(SCHOOL, timed.event_id, "d-new")], at="2026-11-29T21:00:00.000Z")
    assert log.sent([SCHOOL], [untimed.event_id, timed.event_id]) == {(SCHOOL, untimed.event_id),
                                                                      (SCHOOL, timed.event_id)}
    assert log.sent_at([SCHOOL], [untimed.event_id, timed.event_id]) == {untimed.event_id: None,
                                                                         timed.event_id: "2026-11-29T21:00:00.000Z"}
    log.close()
    DeliveredLog(path).close()  # opening again leaves the column as it is

    met, breached = reopen_and_settle(path, [untimed, timed], "2026-11-30T09:00:00Z")
    assert [c for c, _ in met] == [timed] and breached == [untimed]  # an unknown time cannot prove the deadline met


def test_a_write_without_a_time_is_stamped_by_the_clock_when_written(tmp_path: Path) -> None:
    """The share stage's existing call (no `at`) still works, and its row has a time."""
    log = DeliveredLog(tmp_path / DeliveredLog.FILE)
    try:
        clock = encompass(20)
        log.mark([(SCHOOL, clock.event_id, "d")], [(CHILD, SCHOOL)])
        (when,) = log.sent_at([SCHOOL], [clock.event_id]).values()
        assert when is not None and when.endswith("Z") and when > "2026-01-01"
        assert log.recipients([CHILD]) == {SCHOOL}
    finally:
        log.close()
