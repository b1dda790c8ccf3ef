"""One way to open the broker's registers: a SQLite file in the data directory, or one PostgreSQL database.

SQLite suits one host. API and worker pods sharing registers (the delivered log, cursors, consent, case state, the
identity register) need PostgreSQL (`MASH_STORE_URL`): SQLite's locking is not safe on the network file systems a
ReadWriteMany volume uses. The registers write SQL both accept (`INSERT ... ON CONFLICT`, `?` placeholders that
`Db` turns into psycopg's `%s`), so each register is written once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from broker.errors import InputRejected

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
IN_CHUNK = 500  # values per IN list: well under SQLite's 32,766 and PostgreSQL's 65,535 parameters
_DDL_LOCK_KEY = 0x6D617368  # pg_advisory_xact_lock: pods starting together create each table once


class StoreUrlError(InputRejected, ValueError):
    pass


def private_sqlite_file(path: Path) -> None:
    """Make `path`'s folder (0700) and the file (0600) before SQLite opens it: the stores hold pseudonymous tokens,
    consent, case state and the audit trail, readable by no other local user. SQLite gives its -wal and -shm files
    the database file's mode. An existing file or folder keeps its mode (`mash-broker doctor` warns when loose)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class Db:
    """A register's connection: execute, executemany and transactions with the same SQL on either database."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect
        self._lock = threading.RLock()  # sqlite3 connections are shared across threads; keep transactions whole

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The cursor; read it under a lock of the caller's when other threads share the connection (or use query)."""
        with self._lock:
            return self.conn.execute(self._q(sql), tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row, fetched while the connection is held."""
        with self._lock:
            return [tuple(row) for row in self.conn.execute(self._q(sql), tuple(params)).fetchall()]

    def query_in(self, sql: str, values: Iterable[Any], params: Sequence[Any] = (),
                 chunk: int = IN_CHUNK) -> list[tuple[Any, ...]]:
        """Every row of `sql` for all of `values`, whose `{marks}` stands for the placeholders of one IN list: one
        query per `chunk` distinct values (databases bound the parameters of one statement). `params` come first."""
        wanted = list(dict.fromkeys(values))
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(wanted), chunk):
            part = wanted[start:start + chunk]
            rows += self.query(sql.format(marks=",".join("?" * len(part))), [*params, *part])
        return rows

    def count(self, table: str) -> int:
        """Rows in `table` (a register's fixed table name, never input)."""
        return int(self.query(f"SELECT COUNT(*) FROM {table}")[0][0])

    def clear(self, table: str) -> int:
        """Delete every row of `table` (a register's fixed table name) in one transaction; returns how many."""
        with self.transaction():
            count = self.count(table)
            self.execute(f"DELETE FROM {table}")
        return count

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self._lock:
            if self.dialect == "postgresql":
                with self.conn.cursor() as cur:
                    cur.executemany(self._q(sql), rows)
            else:
                self.conn.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; on SQLite the write lock is taken at the start (no upgrade deadlock between processes)."""
        with self._lock:
            if self.dialect == "postgresql":
                with self.conn.transaction():
                    yield
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def open_register(path: Path, schema: Sequence[str], *, url: str | None = None, durable: bool = False) -> Db:
    """The register at `url` (postgresql://...), else the SQLite file at `path` (created with its folder), with
    `schema` (CREATE ... IF NOT EXISTS statements) applied.

    `durable`, for SQLite: every commit is synced before it returns (what an acknowledged admin action needs);
    otherwise WAL's NORMAL mode, which survives a process crash and may lose the last commits on power loss (fine for
    state the event stream rebuilds). PostgreSQL commits are durable either way.
    """
    if url:
        if not url.startswith(POSTGRES_SCHEMES):
            raise StoreUrlError("MASH_STORE_URL must start with postgresql://")
        import psycopg

        db = Db(psycopg.connect(url, autocommit=True), "postgresql")
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(?)", (_DDL_LOCK_KEY,))
            for statement in schema:
                db.execute(statement)
        return db
    private_sqlite_file(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    for statement in schema:
        conn.execute(statement)
    return Db(conn, "sqlite")
