"""Memory of one insight-watch run (issue 24) on a real SQLite audit store of 10,000 published events and 50,000
share decisions over 17 weeks (fictitious: tokens lt1_..., districts ZZ-, URNs 999-), and of 2 and 4 times as many
events over the same weeks and places (`--scales 1,2,4`): the whole read of session 10 (every record of five kinds,
in one list), session 11's (the watched kinds streamed into the index of every record) and session 12's (each record
folded into the detector's cells and let go: rises_in_store).

    nice -n 19 ionice -c3 .venv/bin/python -m tests.insight.watch_memory [--scales 1,2,4] [--rounds 3]

Prints the tracemalloc peak of each, measured in one process on the same store, and the CPU time of each
(time.process_time, without tracemalloc, the three in turn for `--rounds` rounds: the median). Reported, not asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from broker.audit.record import audit_record
from broker.audit.store import AuditStore, open_audit_store
from broker.insight.detect import DetectorConfig
from broker.insight.hotspots import RISE, rises
from broker.insight.measures import default_measures
from broker.insight.source import kinds_read_by, records_from_store, records_of_kinds
from broker.service.insight_watch import already_raised, rises_in_store

TODAY = "2026-12-01"
CONFIG = DetectorConfig()
WATCHED = [default_measures().by_id(m) for m in ("contacts", "referrals")]


def fill(store: AuditStore, events: int = 10_000, decisions_per_event: int = 5, units: int = 10,
         seed: int = 24) -> None:
    """`events` police incidents over 17 weeks in `units` districts and `units` schools, one district (ZZ0) rising
    in the tested week (2026-W48), each event with its share decisions; and a rise raised before."""
    rng = random.Random(seed)
    start = dt.date(2026, 8, 1)
    batch: list[dict[str, Any]] = [audit_record("event_published", time="2026-11-30T06:00:00Z", actor="insight-watch",
                                                event_type=RISE, event_id=str(uuid.UUID(int=rng.getrandbits(128))),
                                                subject="lt1_" + "f" * 24, reason="raised")]
    for n in range(events):
        date = start + dt.timedelta(days=rng.randrange(120))
        day = date.isoformat()
        hot = date >= dt.date(2026, 11, 23) and rng.random() < 0.2
        event_id, subject = str(uuid.UUID(int=rng.getrandbits(128))), f"lt1_{n:024d}"
        batch.append(audit_record("event_published", time=f"{day}T09:00:00Z", actor="intake:police",
                                  event_id=event_id, event_type="police.incident_child_present", subject=subject,
                                  agency="police", insight={"occurred_on": day, "source_agency": "police",
                                                            "district": "ZZ0" if hot else f"ZZ{rng.randrange(units)}",
                                                            "school_urn": f"999{rng.randrange(units):03d}"}))
        for s in range(decisions_per_event):
            batch.append(audit_record("decision", time=f"{day}T09:00:01Z", actor="share", subject=subject,
                                      event_id=event_id, subscriber=f"subscriber_{s}",
                                      decision_id=str(uuid.UUID(int=rng.getrandbits(128))), outcome="withhold",
                                      reason="no rule matched"))
        if len(batch) >= 6000:
            store.append(batch)
            batch = []
    store.append(batch)


def old(store: AuditStore) -> object:
    records = records_from_store(store)
    return rises(records, WATCHED, CONFIG, today=TODAY), already_raised(records)


def session11(store: AuditStore) -> object:
    raised: set[str] = set()

    def noting(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for record in records:
            if record.get("event_type") == RISE:
                raised.add(record["event_id"])
            yield record

    return rises(noting(records_of_kinds(store, kinds_read_by(WATCHED))), WATCHED, CONFIG, today=TODAY), raised


def new(store: AuditStore) -> object:
    return rises_in_store(store, WATCHED, CONFIG, today=TODAY, across="week")


RUNS: dict[str, Callable[[AuditStore], object]] = {"whole read (s10)": old, "streamed index (s11)": session11,
                                                    "cells (s12)": new}


def peak(run: Callable[[AuditStore], object], store: AuditStore) -> tuple[int, object]:
    tracemalloc.start()
    result = run(store)
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top, result


def cpu(run: Callable[[AuditStore], object], store: AuditStore) -> float:
    start = time.process_time()
    run(store)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", default="1,2,4", help="multiples of 10,000 events, over the same weeks")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--units", type=int, default=10, help="districts, and schools, the events are spread over")
    args = parser.parse_args()
    for scale in (int(s) for s in args.scales.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            store = open_audit_store(Path(folder), create_key=True)
            try:
                fill(store, events=10_000 * scale, units=args.units)
                peaks, results = {}, []
                for name, run in RUNS.items():
                    peaks[name], result = peak(run, store)
                    results.append((result[0], frozenset(result[1])))  # type: ignore[index]
                assert results[0] == results[1] == results[2], "the runs disagree"
                times: dict[str, list[float]] = {name: [] for name in RUNS}
                for _ in range(args.rounds):
                    for name, run in RUNS.items():
                        times[name].append(cpu(run, store))
                shown = "; ".join(f"{name}: peak {peaks[name] / 2**20:.1f} MiB, CPU {statistics.median(t):.2f} s"
                                  for name, t in times.items())
                print(f"{10_000 * scale} events, {args.units} districts and schools: {shown}; same rises: "
                      f"{len(results[0][0])}, raised before: {len(results[0][1])}", flush=True)
            finally:
                store.close()


if __name__ == "__main__":
    main()
