"""The insight watch (issue 17): every `insight_watch_interval_seconds`, read the audit store, run the rise detector
(broker/insight/hotspots.py, detect.py) over the watched measures by area, school and GP practice, and raise each
new rise to the hub as a `mash.hotspot_rise`.

The events go out the way the hub watch's do (broker/service/hub_watch.py `_publish`: validated, protected, onto
the events topic), reach the hub only through the protocol's rule for them (source agency `broker`), and are
audited as `event_published`. Their ids are derived from measure, unit and period, so a rise already raised, which
the audit store records, is not raised again, and a restart between publishing and auditing makes the same event,
which the share stage's delivered log drops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broker.aio import blocking
from broker.audit.verify import PRUNE_ACTION
from broker.clock import now_iso
from broker.insight.cells import HotspotCells, NeedsJoin, PeriodsFrom, detector_periods, streamable
from broker.insight.detect import DetectorConfig, Rise, detect
from broker.insight.hotspots import RISE, last_complete_period, rise_event, rises
from broker.insight.measures import Measure, MeasureError, default_measures
from broker.insight.source import kinds_read_by, records_of_kinds
from broker.logging import get_logger
from broker.schema.loader import SCHEMA_VERSION
from broker.service.hub_watch import _publish
from broker.service.supervise import supervised

if TYPE_CHECKING:
    from broker.audit.store import AuditStore
    from broker.config import Settings
    from broker.service.runtime import Runtime

log = get_logger("mash.insight_watch")
ACTOR = "insight-watch"
REASON = "raised for the MASH hub by the insight watch: a measure rising beyond a place's own history (issue 17)"


def detector_config(settings: Settings) -> DetectorConfig:
    return DetectorConfig(baseline_periods=settings.insight_baseline_periods,
                          min_baseline_periods=min(settings.insight_min_baseline_periods,
                                                   settings.insight_baseline_periods),
                          alpha=settings.insight_alpha, min_observed=settings.insight_min_observed,
                          min_population=settings.insight_min_population)


def watched_measures(settings: Settings) -> list[Measure]:
    """The measures of MASH_INSIGHT_MEASURES. MeasureError names the setting and the id, never a value of data."""
    catalogue = default_measures()
    try:
        return [catalogue.by_id(m.strip()) for m in settings.insight_measures.split(",") if m.strip()]
    except MeasureError as exc:
        raise MeasureError("MASH_INSIGHT_MEASURES", [str(exc)]) from None


async def run_insight_watch(rt: Runtime, stop: asyncio.Event) -> None:
    """Supervised: a crash is logged and counted, and the next run waits for its interval as usual (a store that
    fails is not read again every second)."""
    try:
        watched_measures(rt.settings)
    except MeasureError as exc:  # a watch that cannot say what it watches: say which setting, and stop
        log.error("insight_watch_measures_unusable", detail=str(exc))
        raise
    due = [0.0]  # the next run's loop time, kept across restarts
    await supervised(stop, lambda: _watch(rt, stop, due), log=log, crashed="insight_watch_crashed",
                     restarts=rt.metrics.worker_restarts)


async def _watch(rt: Runtime, stop: asyncio.Event, due: list[float]) -> None:
    log.info("insight_watch_started")
    loop = asyncio.get_running_loop()
    tally: Tally | None = None  # what the runs have counted; after a crash, counted from the start again
    while not stop.is_set():
        wait = due[0] - loop.time()
        if wait > 0:
            with contextlib.suppress(TimeoutError):  # the interval passed without a stop
                await asyncio.wait_for(stop.wait(), timeout=wait)
            continue
        due[0] = loop.time() + rt.settings.insight_watch_interval_seconds
        _events, tally = await watch_run(rt, now_iso(), tally)


async def watch_once(rt: Runtime, now: str) -> list[dict[str, Any]]:
    """One run at `now`, counted from the start: the new rises' events, published and audited (returned)."""
    events, _tally = await watch_run(rt, now, None)
    return events


async def watch_run(rt: Runtime, now: str, tally: Tally | None) -> tuple[list[dict[str, Any]], Tally | None]:
    """One run at `now`, counting on from `tally` (None: from the start): the new rises' events, published and
    audited, and what was counted, for the next run. A run that fails leaves `tally` half-read: the caller lets it
    go (run_insight_watch's restart starts from None)."""
    watched = watched_measures(rt.settings)
    found, raised, tally = await blocking(rises_since, rt.audit_store, tally, watched, detector_config(rt.settings),
                                          today=now[:10], across=rt.settings.insight_period)
    events = [e for e in (rise_event(r, SCHEMA_VERSION, rt.settings.linkage_key_version, now) for r in found)
              if e["event_id"] not in raised]
    if events:
        await _announce(rt, events, now)
    return events, tally


async def _announce(rt: Runtime, events: list[dict[str, Any]], now: str) -> None:
    await _publish(rt, events)
    await rt.emit_audit([rt.audit_record("event_published", time=now, actor=ACTOR, event_id=e["event_id"],
                                         event_type=RISE, subject=e["subject"]["linkage"]["token"], reason=REASON)
                         for e in events])
    for e in events:
        rt.metrics.insight_rises.labels(e["payload"]["unit_kind"]).inc()
        log.info("hotspot_rise_raised", event_id=e["event_id"], measure=e["payload"]["measure"],
                 unit_kind=e["payload"]["unit_kind"], period=e["payload"]["period"])


def rises_in_store(store: AuditStore, watched: Sequence[Measure], config: DetectorConfig, *, today: str,
                   across: str) -> tuple[list[Rise], frozenset[str]]:
    """The rises (hotspots.rises) over the store's records of the kinds the watched measures read, and the ids of
    the rises already raised (blocking). The records stream from the store a page at a time, not into a list of
    the whole log: the rest of the log (a share's decisions and deliveries, most of it) is never read, and the
    watch notes its own rises as they go by, so nothing is read twice (issue 24: the watch read every record of
    five kinds into memory every hour, and grew the share worker's process by some 400 MB after an hour at
    100 events/s).

    Measures that count records by their own codes (the default, contacts and referrals: cells.streamable) are
    counted as the records go by into the cells the detector reads, so what the watch holds grows with the units
    it watches, not with the events (issue 24, session 12). A measure that joins records (a clock takes its
    event's codes, a hub decision its referrer's), or a counted record that concerns another event, is computed
    from the index of every record read, as before. This is `rises_since` without a tally: the count from the
    start, the one path the watch runs (its first run, and after any change that voids what it kept)."""
    found, raised, _tally = rises_since(store, None, watched, config, today=today, across=across)
    return found, raised


def _rises_joined(store: AuditStore, kinds: Iterable[str], watched: Sequence[Measure], config: DetectorConfig, *,
                  today: str, across: str) -> tuple[list[Rise], frozenset[str]]:
    """The rises computed from the index of every record read (measures that join records)."""
    raised: set[str] = set()
    found = rises(_noting(records_of_kinds(store, kinds), raised), watched, config, today=today, across=across)
    return found, frozenset(raised)


@dataclass(slots=True)
class Tally:
    """What the watch has counted, kept between runs in the share worker's memory: the cells of the periods from
    the first the detector reads on (cells.PeriodsFrom), the ids of the rises raised, and the last seq read. A run
    reads only the records appended since (issue 24, session 15: each run read the whole log again, and in an
    hour's soak at 100 events/s the run at minute 40 held the share worker up for twenty seconds).

    Counted from the start again whenever what was counted may no longer be what the store holds or what the run
    asks: other measures or period; a window that starts before the last one's (the clock went back, or a longer
    baseline: the cells before the last one's start were let go); a store whose head is behind the last seq read
    (another store, or one restored); or a prune since of a kind it counts (a pruned record is no longer counted:
    source.py). The detector's other settings are read when it runs, not counted in."""

    key: tuple[Any, ...]
    cells: HotspotCells
    first: str
    through_seq: int = 0
    raised: set[str] = field(default_factory=set)


def rises_since(store: AuditStore, tally: Tally | None, watched: Sequence[Measure], config: DetectorConfig, *,
                today: str, across: str) -> tuple[list[Rise], frozenset[str], Tally | None]:
    """The rises over the store's records, counting on from `tally` (None: from the start; blocking): the rises,
    the ids already raised, and the tally for the next run (None for measures that join records: those are
    computed from every record each run)."""
    kinds = kinds_read_by(watched)
    if not all(streamable(m) for m in watched if m.available):
        return (*_rises_joined(store, kinds, watched, config, today=today, across=across), None)
    until = last_complete_period(today, across)
    first = min(detector_periods(until, across, config))
    head = store.head()[0]
    key = (tuple(watched), across)  # the detector's settings are read at detect, but for the window (first)
    if (tally is None or tally.key != key or first < tally.first or head < tally.through_seq
            or _pruned(store, kinds, after_seq=tally.through_seq, through_seq=head)):
        tally = Tally(key, HotspotCells(watched, across, keep=PeriodsFrom(first)), first)
    else:
        tally.cells.keep_from(first)
        tally.first = first
    try:
        for record in _noting(records_of_kinds(store, kinds, after_seq=tally.through_seq, through_seq=head),
                              tally.raised):
            tally.cells.add(record)
    except NeedsJoin as exc:  # a record that takes another's codes: counted from the index instead, every run
        log.warning("insight_watch_record_needs_join", measure=str(exc))
        return (*_rises_joined(store, kinds, watched, config, today=today, across=across), None)
    tally.through_seq = head
    return detect(tally.cells.tables(), config, until), frozenset(tally.raised), tally


def _pruned(store: AuditStore, kinds: Iterable[str], *, after_seq: int, through_seq: int) -> bool:
    """Whether a prune of one of `kinds` was logged between the two seqs (store.prune logs one per kind)."""
    wanted = set(kinds)
    return any(r.get("action") == PRUNE_ACTION and r.get("target") in wanted
               for r in store.bodies_of_kind("admin_action", after_seq=after_seq, through_seq=through_seq))


def _noting(records: Iterable[dict[str, Any]], raised: set[str]) -> Iterator[dict[str, Any]]:
    """The records, with the ids of the watch's own rises among them added to `raised` as they go by."""
    for record in records:
        if _is_raised(record):
            raised.add(record["event_id"])
        yield record


def _is_raised(record: Mapping[str, Any]) -> bool:
    return bool(record.get("kind") == "event_published" and record.get("event_type") == RISE
                and record.get("event_id"))


def already_raised(records: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The ids of the rises the audit store says were published."""
    return frozenset(r["event_id"] for r in records if _is_raised(r))
