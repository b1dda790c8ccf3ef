"""The identity register: which child token each identifier token belongs to (see broker/pipeline/resolve.py).

It holds tokens only (keyed HMACs of identifiers, the same values that key Kafka messages), never an identifier.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from broker.pipeline.resolve import Known, Resolution
from broker.stores.db import open_register

_SCHEMA = ["CREATE TABLE IF NOT EXISTS identity (identifier TEXT PRIMARY KEY, kind TEXT NOT NULL,"
           " child TEXT NOT NULL, linked_at TEXT NOT NULL)",
           "CREATE INDEX IF NOT EXISTS identity_child ON identity (child)"]
_LOOKUP_CHUNK = 400  # identifier tokens per query: well under SQLite's bound-parameter limit


class IdentityRegister:
    FILE, TABLE = "identities.sqlite", "identity"  # its SQLite file in the data directory, and its table

    def __init__(self, path: Path, url: str | None = None) -> None:
        # durable: a link forgotten on power loss would split a child's stream again
        self.db = open_register(path, _SCHEMA, url=url, durable=True)

    def known(self, tokens: Iterable[str]) -> Known:
        """What the register holds about these identifier tokens and every identity of the children they name."""
        known = Known()
        for identifier, kind, child in self.db.query_in(
                "SELECT identifier, kind, child FROM identity WHERE child IN (SELECT child FROM identity"
                " WHERE identifier IN ({marks}))", tokens, chunk=_LOOKUP_CHUNK):
            known.child_of[identifier] = child
            known.members.setdefault(child, {})[kind] = identifier
        return known

    def current(self, token: str) -> str:
        """The token a child's events carry now: `token` itself unless it was folded into another child's."""
        rows = self.db.query("SELECT child FROM identity WHERE identifier = ?", (token,))
        return rows[0][0] if rows else token

    def aliases(self, token: str) -> list[str]:
        """Every token the child of `token` has carried or could carry: its current token first, then the tokens of
        its other identifiers (some were its token before a merge). What erasure must reach."""
        current = self.current(token)
        others = [row[0] for row in self.db.query(
            "SELECT identifier FROM identity WHERE child = ? AND identifier != ? ORDER BY identifier",
            (current, current))]
        return [current, *others]  # a folded token is an identifier of the child, so among `others`

    def apply(self, resolutions: Iterable[Resolution], at: str) -> None:
        """Record links and merges, in order, in one transaction. An identifier already held keeps its child: two
        requests racing to link the same identifier leave the later link for the next record that carries both."""
        with self.db.transaction():
            for resolution in resolutions:
                for absorbed in resolution.merged:
                    self.db.execute("UPDATE identity SET child = ? WHERE child = ?", (resolution.token, absorbed))
                self.db.executemany("INSERT INTO identity VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                    [(i.token, i.kind, resolution.token, at) for i in resolution.links])

    def close(self) -> None:
        self.db.close()


def aliases_in(data_dir: Path, token: str, url: str | None = None) -> list[str]:
    """`IdentityRegister.aliases` for the register at `url` or in a data directory (the CLI's way in); [token]
    without one."""
    path = data_dir / IdentityRegister.FILE
    if not url and not path.exists():
        return [token]
    register = IdentityRegister(path, url)
    try:
        return register.aliases(token)
    finally:
        register.close()
