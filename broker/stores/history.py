"""The history register: the broker's own record of each child's events for the hub (issue 16), per linkage token.

Per event: its id, type, sending agency, time and risk level code; never its content. Beside them the child's MASH
enquiries (ids, times, the event ids that joined) and its timeliness clocks (running, met or breached). The hub
watch (broker/service/hub_watch.py) reads it for a batch, plans (broker/pipeline/hub/plan.py) and writes back in
one transaction; it survives restarts, so a cumulative concern spanning months needs no replay of Kafka. A merge
(`person.linked`) moves the superseded token's rows to the child's token and records the fold (`folds`), so that
an event still under the old token, read later, is planned as the child's. A child's erasure deletes every row
under every token it carried (`forget`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from broker.pipeline.hub.calendar import iso, parse_instant
from broker.pipeline.hub.history import Clock, Enquiry, Entry
from broker.pipeline.hub.plan import ANY_DATE, HistoryReads, HubFacts, HubPlan
from broker.stores.db import open_register

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS history (token TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL,"
    " agency TEXT NOT NULL, occurred_at TEXT NOT NULL, level TEXT NOT NULL, PRIMARY KEY (token, event_id))",
    # a batch reads each child's history near its events' times, and its referrals and closures at any date
    "CREATE INDEX IF NOT EXISTS history_time ON history (token, occurred_at)",
    "CREATE INDEX IF NOT EXISTS history_type ON history (token, event_type)",
    "CREATE TABLE IF NOT EXISTS enquiries (enquiry_id TEXT PRIMARY KEY, token TEXT NOT NULL, opened_at TEXT NOT NULL,"
    " last_at TEXT NOT NULL, contributions TEXT NOT NULL, open INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS enquiries_token ON enquiries (token)",
    "CREATE TABLE IF NOT EXISTS clocks (clock_id TEXT PRIMARY KEY, kind TEXT NOT NULL, token TEXT NOT NULL,"
    " event_id TEXT NOT NULL, event_type TEXT NOT NULL, started_at TEXT NOT NULL, due_at TEXT NOT NULL,"
    " enquiry_id TEXT, linkage TEXT NOT NULL, state TEXT NOT NULL, settled_at TEXT)",
    # the running clocks are read by child (each batch) and by due time (each settling, every few seconds): a
    # decision clock runs a working day, so a day's enquiries' clocks are running at any time (session 12's soak:
    # 11,680 after 18 minutes, read whole every 5 s and scanned on every batch through an index of the state alone)
    "DROP INDEX IF EXISTS clocks_state",
    "CREATE INDEX IF NOT EXISTS clocks_running_token ON clocks (state, token)",
    "CREATE INDEX IF NOT EXISTS clocks_running_due ON clocks (state, due_at)",
    "CREATE INDEX IF NOT EXISTS clocks_running_kind ON clocks (state, kind)",
    # the watch's own folds, superseded token -> the child's: an event under a folded token read after the fold
    # (another partition) counts under the child's even before the identity register holds the link
    "CREATE TABLE IF NOT EXISTS folds (token TEXT PRIMARY KEY, into_token TEXT NOT NULL)",
]
_TABLES = ("history", "enquiries", "clocks", "folds")
_CLOCK_COLUMNS = "clock_id, kind, token, event_id, event_type, started_at, due_at, enquiry_id, linkage"
_ENTRY_COLUMNS = "token, event_id, event_type, agency, occurred_at, level"
_SPANS_PER_QUERY = 300  # (token, from, to) rows in one statement's VALUES list: 900 parameters


def _clock(row: Sequence[object]) -> Clock:
    clock_id, kind, token, event_id, event_type, started, due, enquiry, linkage = row
    return Clock(str(clock_id), str(kind), str(token), str(event_id), str(event_type), str(started), str(due),
                 str(enquiry) if enquiry else None, json.loads(str(linkage)))


class HistoryRegister:
    FILE, TABLE = "history.sqlite", "history"  # its SQLite file in the data directory, and its main table
    TABLES = _TABLES  # every table, for `stores migrate`

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, _SCHEMA, url=url)
        if self.db.dialect == "sqlite":  # erasure: deleted rows are overwritten, not left in free pages
            self.db.execute("PRAGMA secure_delete=ON")

    def facts(self, tokens: Iterable[str], reads: HistoryReads | None = None) -> HubFacts:
        """The open enquiry and running clocks of each of these tokens, and of the tokens any of them was folded into
        (`current`); and their history: what `reads` names (broker/pipeline/hub/plan.py `history_reads`), else all
        of it."""
        wanted = list(dict.fromkeys(tokens))
        facts = HubFacts()
        facts.current = dict(self.db.query_in("SELECT token, into_token FROM folds WHERE token IN ({marks})", wanted))
        wanted = list(dict.fromkeys([*wanted, *facts.current.values()]))
        rows = self._history(wanted, None if reads is None else reads.following(facts.current))
        for token, *entry in sorted(set(rows), key=lambda row: (row[0], row[4], row[1])):
            facts.history.setdefault(token, []).append(Entry(*entry))
        for enquiry_id, token, opened, last, contributions in self.db.query_in(
                "SELECT enquiry_id, token, opened_at, last_at, contributions FROM enquiries WHERE open = 1 AND token"
                " IN ({marks}) ORDER BY opened_at", wanted):
            facts.enquiries[token] = Enquiry(enquiry_id, token, opened, last, tuple(json.loads(contributions)))
        for row in self.db.query_in(f"SELECT {_CLOCK_COLUMNS} FROM clocks WHERE state = 'running' AND token IN"
                                    " ({marks})", wanted):
            clock = _clock(row)
            facts.clocks.setdefault(clock.token, []).append(clock)
        return facts

    def _history(self, tokens: list[str], reads: HistoryReads | None) -> list[tuple[Any, ...]]:
        """History rows (with repeats where two reads overlap): all of `tokens`' without `reads`, else what it
        names, each part on an index."""
        select = f"SELECT {_ENTRY_COLUMNS} FROM history"
        if reads is None:
            return self.db.query_in(f"{select} WHERE token IN ({{marks}})", tokens)
        rows = self.db.query_in(f"{select} WHERE token IN ({{marks}})", sorted(reads.whole))
        kinds = ",".join("?" * len(ANY_DATE))
        rows += self.db.query_in(f"{select} WHERE event_type IN ({kinds}) AND token IN ({{marks}})",
                                 sorted(reads.any_date - reads.whole), ANY_DATE)
        spans = [(t, lo, hi) for t, ranges in sorted(reads.spans.items()) if t not in reads.whole
                 for lo, hi in ranges]
        for start in range(0, len(spans), _SPANS_PER_QUERY):
            part = spans[start:start + _SPANS_PER_QUERY]
            rows += self.db.query(
                f"WITH span (token, since, until) AS (VALUES {','.join(['(?, ?, ?)'] * len(part))})"
                f" SELECT {', '.join('h.' + c for c in _ENTRY_COLUMNS.split(', '))} FROM span JOIN history h"
                " ON h.token = span.token AND h.occurred_at >= span.since AND h.occurred_at < span.until",
                [v for row in part for v in row])
        return rows

    def apply(self, plan: HubPlan) -> None:
        """A batch's writes in one transaction, in the order that leaves every row under the child's current token:
        new history and clocks, then the merges, then the enquiries' state and the clocks the batch stopped."""
        with self.db.transaction():
            self.db.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                [(token, e.event_id, e.event_type, e.agency, e.occurred_at, e.level)
                                 for token, e in plan.entries])
            self.db.executemany(f"INSERT INTO clocks ({_CLOCK_COLUMNS}, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
                                " 'running') ON CONFLICT DO NOTHING",
                                [(c.clock_id, c.kind, c.token, c.event_id, c.event_type, c.started_at, c.due_at,
                                  c.enquiry_id, json.dumps(dict(c.linkage))) for c in plan.started])
            for absorbed, into in plan.folds:
                self.db.execute("UPDATE history SET token = ? WHERE token = ? AND event_id NOT IN"
                                " (SELECT event_id FROM history WHERE token = ?)", (into, absorbed, into))
                self.db.execute("DELETE FROM history WHERE token = ?", (absorbed,))
                self.db.execute("UPDATE enquiries SET token = ? WHERE token = ?", (into, absorbed))
                self.db.execute("UPDATE clocks SET token = ? WHERE token = ?", (into, absorbed))
                self.db.execute("UPDATE folds SET into_token = ? WHERE into_token = ?", (into, absorbed))
                self.db.execute("INSERT INTO folds VALUES (?, ?) ON CONFLICT (token) DO UPDATE SET into_token ="
                                " excluded.into_token", (absorbed, into))
            self.db.executemany(
                "INSERT INTO enquiries VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (enquiry_id) DO UPDATE SET token ="
                " excluded.token, last_at = excluded.last_at, contributions = excluded.contributions,"
                " open = excluded.open",
                [(q.enquiry_id, q.token, q.opened_at, q.last_at, json.dumps(list(q.contributions)), int(q.open))
                 for q in plan.enquiries.values()])
            self.db.executemany("UPDATE clocks SET state = 'met', settled_at = ? WHERE clock_id = ? AND"
                                " state = 'running'", [(at, c.clock_id) for c, at in plan.stopped])

    def clocks_to_settle(self, now: str) -> list[Clock]:
        """The running clocks that `settle` (broker/pipeline/hub/plan.py) can settle at `now`, by due time: every
        Encompass clock (a delivery meets it, due or not) and every other clock due by now (it can only breach: a
        decision clock is met in the batch that holds the decision). Not every running clock (the schema's note)."""
        # due_at is always calendar.iso(): UTC to the second, "Z", so text order is time order; the bound is the
        # next whole second, so that every clock due before `now` is read and settle() makes the exact test
        bound = iso(parse_instant(now).replace(microsecond=0) + dt.timedelta(seconds=1))
        return [_clock(row) for row in self.db.query(
            f"SELECT {_CLOCK_COLUMNS} FROM clocks WHERE state = 'running' AND (kind = 'encompass' OR due_at < ?)"
            " ORDER BY due_at, clock_id", (bound,))]

    def settle(self, met: Iterable[tuple[Clock, str]], breached: Iterable[Clock], at: str) -> None:
        with self.db.transaction():
            self.db.executemany("UPDATE clocks SET state = 'met', settled_at = ? WHERE clock_id = ? AND"
                                " state = 'running'", [(when, c.clock_id) for c, when in met])
            self.db.executemany("UPDATE clocks SET state = 'breached', settled_at = ? WHERE clock_id = ? AND"
                                " state = 'running'", [(at, c.clock_id) for c in breached])

    def enquiries(self, token: str) -> list[Enquiry]:
        """The child's enquiries, open and closed, oldest first (the hub's view, `mash-broker` and tests)."""
        return [Enquiry(q, t, o, last, tuple(json.loads(c)), bool(is_open)) for q, t, o, last, c, is_open in
                self.db.query("SELECT enquiry_id, token, opened_at, last_at, contributions, open FROM enquiries"
                              " WHERE token = ? ORDER BY opened_at", (token,))]

    def clocks(self, token: str) -> list[tuple[Clock, str]]:
        """The child's clocks and each one's state (running, met, breached)."""
        return [(_clock(row[:-1]), str(row[-1])) for row in self.db.query(
            f"SELECT {_CLOCK_COLUMNS}, state FROM clocks WHERE token = ? ORDER BY started_at", (token,))]

    def forget(self, tokens: Iterable[str]) -> int:
        """A child's erasure: every row under these tokens goes; returns how many."""
        wanted = list(dict.fromkeys(tokens))
        gone = 0
        with self.db.transaction():
            for table in _TABLES:
                for start in range(0, len(wanted), 400):
                    part = wanted[start:start + 400]
                    cur = self.db.execute(f"DELETE FROM {table} WHERE token IN ({','.join('?' * len(part))})", part)
                    gone += max(cur.rowcount, 0)
        if self.db.dialect == "sqlite":
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

    def close(self) -> None:
        self.db.close()
