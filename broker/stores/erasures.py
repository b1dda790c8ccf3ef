"""The erasure register: which children were crypto-shredded, when, and by whom (every token each carried).

The keystore destroys the data keys; this register is what the rest of the broker consults so that nothing it still
holds about an erased child is served again (HTTP pull and server-sent events, dead letters, replays, reprocess) and
no new keys are minted for data about the child that was received before the erasure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from broker.stores.db import open_register

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS erased (token TEXT PRIMARY KEY, erased_at TEXT NOT NULL, actor TEXT NOT NULL)",
    # the child's events received before the erasure (from the audit log's publications): what HTTP never serves
    # again and intake never accepts again
    "CREATE TABLE IF NOT EXISTS erased_events (event_id TEXT PRIMARY KEY, token TEXT NOT NULL)",
    # the person.erased notice each erasure owes its recipients: published by the service (a CLI shred has no Kafka)
    "CREATE TABLE IF NOT EXISTS erasure_notices (token TEXT NOT NULL, erased_at TEXT NOT NULL, tokens TEXT NOT NULL,"
    " announced_at TEXT, PRIMARY KEY (token, erased_at))",
]


class ErasureRegister:
    FILE, TABLE = "erasures.sqlite", "erased"  # its SQLite file in the data directory, and its table
    TABLES = ("erased", "erased_events", "erasure_notices")  # every table, for `stores migrate`

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.db = open_register(path, _SCHEMA, url=url, durable=True)

    def record(self, tokens: Iterable[str], erased_at: str, actor: str) -> None:
        """Every token of one child, erased at `erased_at` (the first erasure of a token is the one kept)."""
        with self.db.transaction():
            self.db.executemany("INSERT INTO erased VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                [(t, erased_at, actor) for t in dict.fromkeys(tokens)])

    def erased_at(self, tokens: Iterable[str]) -> dict[str, str]:
        """token -> when it was erased, for those of `tokens` that were."""
        return dict(self.db.query_in("SELECT token, erased_at FROM erased WHERE token IN ({marks})", tokens))

    def is_erased(self, token: str) -> bool:
        return bool(self.erased_at([token]))

    def record_events(self, pairs: Iterable[tuple[str, str]]) -> None:
        """(event id, token) of the child's events received before its erasure."""
        with self.db.transaction():
            self.db.executemany("INSERT INTO erased_events VALUES (?, ?) ON CONFLICT DO NOTHING",
                                list(dict.fromkeys(pairs)))

    def erased_events(self, event_ids: Iterable[str]) -> set[str]:
        """Those of `event_ids` that were received before their child's erasure."""
        return {r[0] for r in self.db.query_in("SELECT event_id FROM erased_events WHERE event_id IN ({marks})",
                                               event_ids)}

    def owe_notice(self, tokens: list[str], erased_at: str) -> None:
        """A person.erased notice is owed for this erasure of a child (`tokens`, current first)."""
        with self.db.transaction():
            self.db.execute("INSERT INTO erasure_notices VALUES (?, ?, ?, NULL) ON CONFLICT DO NOTHING",
                            (tokens[0], erased_at, json.dumps(tokens)))

    def notices_owed(self, limit: int = 100) -> list[tuple[list[str], str]]:
        """(tokens, erased_at) of notices not yet published, oldest first."""
        rows = self.db.query("SELECT tokens, erased_at FROM erasure_notices WHERE announced_at IS NULL"
                             " ORDER BY erased_at LIMIT ?", (limit,))
        return [(json.loads(tokens), erased_at) for tokens, erased_at in rows]

    def announced(self, token: str, erased_at: str, at: str) -> None:
        """The notice of this erasure is on the events topic (Kafka acknowledged it)."""
        with self.db.transaction():
            self.db.execute("UPDATE erasure_notices SET announced_at = ? WHERE token = ? AND erased_at = ?"
                            " AND announced_at IS NULL", (at, token, erased_at))

    def close(self) -> None:
        self.db.close()
