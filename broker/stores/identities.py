"""The identity register: which child token each identifier token belongs to (see broker/pipeline/resolve.py).

It holds tokens only (keyed HMACs of identifiers, the same values that key Kafka messages), never an identifier,
and one fact of personal data, never in the clear: each child token's date of birth (`birth_dates`), learned at
intake from the events that carry one and sealed under the child's own `identity` data key (broker/service/facts.py),
so that a decision about an event that carries none (an SSDA903 episode row, whose header file carried the DOB) can
still tell the child's age on the event date. Nothing else about the child is kept: no name, no identifier, no
source. Two events that give one token different dates leave it unknown (`conflict`), so a wrong date never makes a
child look younger or older than its own records say. Erasure deletes the rows under every token the child carried
(`forget_facts`, with SQLite's secure_delete and a WAL checkpoint), and shredding the child's keys leaves any
copy (a backup) unreadable.

The register also learns, the same way, which school (DfE URN) and GP practice (ODS code) each child is registered
with (`registrations`), from the records that name them (child.school, child.gp_practice), so that a record that
names neither (a police domestic abuse notification) still reaches the child's school under `registered_with`. The
latest record wins (a child moves school): each sealed code carries the date of the record it came from. Sealed
under the same key, forgotten on erasure with the date of birth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from broker.pipeline.resolve import Known, Resolution
from broker.stores.db import open_register


@dataclass(frozen=True, slots=True)
class SealedFacts:
    birth_dates: dict[str, str | None]  # token -> sealed date of birth, None when two dates disagreed
    registrations: dict[str, dict[str, str]]  # token -> {school | gp_practice: sealed code and record date}

_SCHEMA = ["CREATE TABLE IF NOT EXISTS identity (identifier TEXT PRIMARY KEY, kind TEXT NOT NULL,"
           " child TEXT NOT NULL, linked_at TEXT NOT NULL)",
           "CREATE INDEX IF NOT EXISTS identity_child ON identity (child)",
           # the child token's date of birth, sealed (module docstring): NULL with conflict 1 once two disagreed
           "CREATE TABLE IF NOT EXISTS birth_dates (token TEXT PRIMARY KEY, sealed TEXT,"
           " conflict INTEGER NOT NULL, learned_at TEXT NOT NULL)",
           # the child token's school or GP practice (kind: school | gp_practice), sealed with its record's date
           "CREATE TABLE IF NOT EXISTS registrations (token TEXT NOT NULL, kind TEXT NOT NULL, sealed TEXT NOT NULL,"
           " learned_at TEXT NOT NULL, PRIMARY KEY (token, kind))"]
_LOOKUP_CHUNK = 400  # identifier tokens per query: well under SQLite's bound-parameter limit


class IdentityRegister:
    FILE, TABLE = "identities.sqlite", "identity"  # its SQLite file in the data directory, and its table
    TABLES = ("identity", "birth_dates", "registrations")  # every table, for `stores migrate`

    def __init__(self, path: Path, url: str | None = None) -> None:
        # durable: a link forgotten on power loss would split a child's stream again
        self.db = open_register(path, _SCHEMA, url=url, durable=True)
        if self.db.dialect == "sqlite":  # erasure: a deleted date of birth is overwritten, not left in free pages
            self.db.execute("PRAGMA secure_delete=ON")

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

    def sealed_birth_dates(self, tokens: Iterable[str]) -> dict[str, str | None]:
        """token -> its sealed date of birth, or None when two dates disagreed (tokens with nothing held are left
        out). Sealed and opened by the shell (broker/service/facts.py), under the child's identity data key."""
        return {token: (None if conflict else sealed) for token, sealed, conflict in self.db.query_in(
            "SELECT token, sealed, conflict FROM birth_dates WHERE token IN ({marks})", tokens, chunk=_LOOKUP_CHUNK)}

    def record_birth_dates(self, learned: Iterable[tuple[str, str]], conflicts: Iterable[str], at: str) -> None:
        """`learned`: (token, sealed date) for tokens with no date held (or one no longer readable); `conflicts`:
        tokens given a date that disagrees with the one held, which leaves them unknown for good."""
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO birth_dates VALUES (?, ?, 0, ?) ON CONFLICT (token) DO UPDATE SET sealed ="
                " excluded.sealed, learned_at = excluded.learned_at WHERE birth_dates.conflict = 0",
                [(token, sealed, at) for token, sealed in learned])
            self.db.executemany("INSERT INTO birth_dates VALUES (?, NULL, 1, ?) ON CONFLICT (token) DO UPDATE SET"
                                " sealed = NULL, conflict = 1, learned_at = excluded.learned_at",
                                [(token, at) for token in dict.fromkeys(conflicts)])

    def sealed_facts(self, tokens: Iterable[str]) -> SealedFacts:
        """The dates of birth (as `sealed_birth_dates`) and the registrations held under these tokens, in one query
        per chunk of tokens: what a share batch reads of this register."""
        wanted = list(dict.fromkeys(tokens))
        found = SealedFacts({}, {})
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            part = wanted[start:start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(part))
            for token, kind, sealed, conflict in self.db.query(
                    f"SELECT token, '', sealed, conflict FROM birth_dates WHERE token IN ({marks}) UNION ALL"
                    f" SELECT token, kind, sealed, 0 FROM registrations WHERE token IN ({marks})", [*part, *part]):
                if kind:
                    found.registrations.setdefault(token, {})[kind] = sealed
                else:
                    found.birth_dates[token] = None if conflict else sealed
        return found

    def sealed_registrations(self, tokens: Iterable[str]) -> dict[str, dict[str, str]]:
        """token -> {kind: its sealed registration} (tokens with none are left out)."""
        out: dict[str, dict[str, str]] = {}
        for token, kind, sealed in self.db.query_in(
                "SELECT token, kind, sealed FROM registrations WHERE token IN ({marks})", tokens, chunk=_LOOKUP_CHUNK):
            out.setdefault(token, {})[kind] = sealed
        return out

    def record_registrations(self, learned: Iterable[tuple[str, str, str]], at: str) -> None:
        """`learned`: (token, kind, sealed registration) that replace what is held (the plan chose the latest)."""
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO registrations VALUES (?, ?, ?, ?) ON CONFLICT (token, kind) DO UPDATE SET"
                " sealed = excluded.sealed, learned_at = excluded.learned_at",
                [(token, kind, sealed, at) for token, kind, sealed in learned])

    def forget_facts(self, tokens: Iterable[str]) -> int:
        """Delete the date of birth and the registrations held under these tokens (a child's erasure); returns how
        many rows went."""
        wanted = list(dict.fromkeys(tokens))
        gone = 0
        with self.db.transaction():
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                part = wanted[start:start + _LOOKUP_CHUNK]
                for table in ("birth_dates", "registrations"):
                    cur = self.db.execute(f"DELETE FROM {table} WHERE token IN ({','.join('?' * len(part))})", part)
                    gone += max(cur.rowcount, 0)
        if self.db.dialect == "sqlite":  # the deleted pages out of the write-ahead log too
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

    def forget(self, tokens: Iterable[str]) -> int:
        """What erasure removes from this register: the dates of birth and registrations (links are tokens only and
        stay, so that erasure still reaches every token the child carried)."""
        return self.forget_facts(tokens)

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
