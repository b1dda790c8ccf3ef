"""Memory of one insight-watch run, old whole read against the bounded one (issue 24), on a real SQLite audit store
of 10,000 published events and 50,000 share decisions (fictitious: tokens lt1_..., districts ZZ-, URNs 999-).

    nice -n 19 ionice -c3 .venv/bin/python -m tests.insight.watch_memory

Prints the tracemalloc peak of each, measured in one process on the same store (not a timing: memory only).
"""

from __future__ import annotations

import datetime as dt
import random
import tempfile
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.audit.record import audit_record
from broker.audit.store import AuditStore, open_audit_store
from broker.insight.detect import DetectorConfig
from broker.insight.hotspots import rises
from broker.insight.measures import default_measures
from broker.insight.source import records_from_store
from broker.service.insight_watch import already_raised, rises_in_store

TODAY = "2026-12-01"
CONFIG = DetectorConfig()
WATCHED = [default_measures().by_id(m) for m in ("contacts", "referrals")]


def fill(store: AuditStore, events: int = 10_000, decisions_per_event: int = 5) -> None:
    rng = random.Random(24)
    start = dt.date(2026, 8, 1)
    batch: list[dict[str, Any]] = []
    for n in range(events):
        day = (start + dt.timedelta(days=rng.randrange(120))).isoformat()
        event_id, subject = str(uuid.UUID(int=rng.getrandbits(128))), f"lt1_{n:024d}"
        batch.append(audit_record("event_published", time=f"{day}T09:00:00Z", actor="intake:police",
                                  event_id=event_id, event_type="police.incident_child_present", subject=subject,
                                  agency="police", insight={"occurred_on": day, "source_agency": "police",
                                                            "district": f"ZZ{rng.randrange(10)}",
                                                            "school_urn": f"9990{rng.randrange(10):02d}"}))
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


def new(store: AuditStore) -> object:
    return rises_in_store(store, WATCHED, CONFIG, today=TODAY, across="week")


def peak(run: Callable[[AuditStore], object], store: AuditStore) -> tuple[int, object]:
    tracemalloc.start()
    result = run(store)
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top, result


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = open_audit_store(Path(folder), create_key=True)
        try:
            fill(store)
            (old_peak, old_result), (new_peak, new_result) = peak(old, store), peak(new, store)
            assert old_result == new_result
            print(f"old whole read: peak {old_peak / 2**20:.1f} MiB; bounded read: peak {new_peak / 2**20:.1f} MiB"
                  f" ({old_peak / new_peak:.1f}x less); same rises: {len(new_result[0])}")  # type: ignore[index]
        finally:
            store.close()


if __name__ == "__main__":
    main()
