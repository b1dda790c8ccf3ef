"""CPU of one insight-watch run as the log grows (issue 24, session 15): counted from the start (rises_in_store,
each run of sessions 12-14) against counted on from the last run (rises_since with its Tally), on a real SQLite
audit store of 10,000 published events and 50,000 share decisions a scale (tests/insight/watch_memory.py `fill`;
fictitious: tokens lt1_..., districts ZZ-, URNs 999-), with `--more` events appended between the two runs.

    nice -n 19 ionice -c3 .venv/bin/python -m tests.insight.watch_runs [--scales 1,4,16] [--more 1000]

Prints the CPU time (time.process_time) of each run and checks they find the same rises. Reported, not asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from broker.audit.store import open_audit_store
from broker.service.insight_watch import rises_in_store, rises_since
from tests.insight.watch_memory import CONFIG, TODAY, WATCHED, fill


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", default="1,4,16", help="multiples of 10,000 events in the log before the run")
    parser.add_argument("--more", type=int, default=1000, help="events appended since the last run")
    args = parser.parse_args()
    for scale in (int(s) for s in args.scales.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            store = open_audit_store(Path(folder), create_key=True)
            try:
                fill(store, events=10_000 * scale)
                _, _, tally = rises_since(store, None, WATCHED, CONFIG, today=TODAY, across="week")
                fill(store, events=args.more, seed=25)
                start = time.process_time()
                found, raised, tally = rises_since(store, tally, WATCHED, CONFIG, today=TODAY, across="week")
                on = time.process_time() - start
                start = time.process_time()
                whole = rises_in_store(store, WATCHED, CONFIG, today=TODAY, across="week")
                again = time.process_time() - start
                assert (found, raised) == whole, "the runs disagree"
                print(f"{10_000 * scale} events, then {args.more} more: counted from the start {again:.3f} s, "
                      f"counted on {on:.3f} s; same rises: {len(found)}", flush=True)
            finally:
                store.close()


if __name__ == "__main__":
    main()
