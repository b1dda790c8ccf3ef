"""The audit store: the one place that chains records. SQLite file by default, PostgreSQL by URL (psycopg 3).

One writer at a time appends (the head row is locked: BEGIN IMMEDIATE in SQLite, SELECT ... FOR UPDATE in
PostgreSQL), so seq and prev_hash never fork. Records are validated before they are chained; a repeated record id
(Kafka redelivery) is dropped, except a release meeting a withhold stored under its id before session 13, which is
chained under an id derived from it (`_releases`). Query columns are copied out of each record for indexing; the
hashed truth is the canonical JSON body, and verify() checks every column against it, so an edited index is
tampering like an edited body. Searches read the indexed columns (fast); the answer is only as good as the last
verify, which is why the subject access report and `mash-broker audit verify` run it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.audit.chain import GENESIS, INDEX_COLUMNS, TOMBSTONE_COLUMNS, extend_canonical
from broker.audit.checkpoint import parse_public_key, sign_checkpoint
from broker.audit.disclosures import Disclosure, disclosures
from broker.audit.kafka_reads import first_reads
from broker.audit.keys import PUBLIC_KEY_FILE, SigningKeyMissing, load_signing_key
from broker.audit.record import AuditRecordError, all_valid, audit_record, normalise_time, validate_record
from broker.audit.retention import cutoffs, expired
from broker.audit.verify import PRUNE_ACTION, VerifyResult, verify
from broker.audit.withheld import expand
from broker.clock import now_iso
from broker.errors import Unavailable
from broker.policy.decision import DECISION_NAMESPACE, uuid5_text
from broker.stores.db import Db, private_sqlite_file

COLUMNS = INDEX_COLUMNS  # record fields copied into indexed columns (checked against the body on verify)
COMPACT_ACTION = "audit.compact"
AUDIT_CACHE_KIB = 32 * 1024  # SQLite page cache of an appending audit store (AuditStore.cache_for_appends)
REPROCESS_ACTION = "deadletter.reprocess"  # the admin_action the reprocess path records (broker/service/reprocess.py)
FILTERS = ("subject", "agency", "subscriber", "event_type", "rule_id", "kind", "decision_id", "event_id")
PARTIAL_INDEXES = ("subject", "agency", "subscriber", "event_type", "rule_id", "decision_id", "deadletter_id")

_DECISION_NAMESPACE_BYTES = DECISION_NAMESPACE.bytes


def release_id(record_id: str) -> str:
    """The record id the store chains a release under when its own id already holds a withhold (see `_releases`)."""
    return uuid5_text(_DECISION_NAMESPACE_BYTES, f"{record_id}\x1frelease-after-withhold")


def _releases(first: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether `record`, arriving under the record id `first` holds, is a release of what `first` withheld, not a
    repeat of it: a delivery decision meeting a withhold decision of the same id.

    Until session 13 a withhold's decision id (its record id) was its delivery's, so a store written then holds
    withholds under the id that a later release of the same event to the same subscriber under the same protocol
    version still has (broker/policy/decision.py `decision_id`): dropped as a repeat, the release went missing from
    the audit and from a subject access report. Such a release is chained under `release_id(its id)` instead, the
    body's record_id set to it (so verify's index check holds) and its decision_id left the delivery's (its
    `delivered` and read records, and every view by decision id, find it). A repeat is still dropped: a decision of
    the outcome stored under its id, and a release whose derived id is stored (a replay of the release, whatever its
    time). Only a release meets this: since session 13 a withhold has its own id, and a withhold meeting a stored
    delivery can only come from a tree before it, which dropped it too. A costless check where nothing collides: it
    is asked only of ids already stored or repeated in a batch."""
    return (record["kind"] == "decision" and record.get("outcome") == "deliver" and first["kind"] == "decision"
            and first.get("outcome") == "withhold")


def _keep(batch: dict[str, Mapping[str, Any]], record: Mapping[str, Any]) -> None:
    """`record` into the batch being built, unless its id is already there (first of each id kept): a release after
    a withhold of its id in the same batch under its derived id (`_releases`)."""
    rid = record["record_id"]
    first = batch.setdefault(rid, record)
    if first is not record and _releases(first, record):
        moved = release_id(rid)
        batch.setdefault(moved, {**record, "record_id": moved})


# Which of a batch's ids are stored, with their kind and outcome: one lookup per append, on the record_id index alone
# (with `kind = 'decision'` in the WHERE clause SQLite chose the kind index for a long IN list and read every stored
# decision per append: the indexer's CPU grew from 12 to 48% of a core in 18 minutes of session 14's soak).
_OUTCOMES = "SELECT record_id, kind, outcome FROM audit_entry WHERE record_id IN ({marks})"
_KNOWN = "SELECT record_id FROM audit_entry WHERE record_id IN ({marks})"


_DDL = (
    "CREATE TABLE IF NOT EXISTS audit_entry (seq BIGINT PRIMARY KEY, record_id TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL, time TEXT NOT NULL, subject TEXT, agency TEXT, subscriber TEXT, event_id TEXT,"
    " event_type TEXT, rule_id TEXT, decision_id TEXT, outcome TEXT, deadletter_id TEXT,"
    " prev_hash TEXT NOT NULL, record_sha256 TEXT NOT NULL, hash TEXT NOT NULL, body TEXT, pruned_at TEXT)",
    "CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL,"
    " hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_checkpoint (seq BIGINT NOT NULL, purpose TEXT NOT NULL, hash TEXT NOT NULL,"
    " time TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL, PRIMARY KEY (seq, purpose, key_id))",
    *(f"CREATE INDEX IF NOT EXISTS audit_entry_{c} ON audit_entry ({c}, seq)" for c in ("kind", "time")),
    # Partial: most records leave most of these empty (a decision names no agency, a withhold no rule, nearly
    # nothing a dead letter), and every query filters them by = or IN, which both databases read as IS NOT NULL.
    # Left out, the empty entries are never written: about 10% of an append's SQLite CPU (broker/bench/RESULTS.md,
    # session 10). A store made before keeps its full indexes, which answer the same.
    *(f"CREATE INDEX IF NOT EXISTS audit_entry_{c} ON audit_entry ({c}, seq) WHERE {c} IS NOT NULL"
      for c in PARTIAL_INDEXES),
)


class AuditStoreError(Unavailable, RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class PruneResult:
    pruned: int  # records turned into tombstones
    compacted: int  # leading tombstones dropped (0 unless asked)
    by_kind: dict[str, int]


class _Sql(Db):
    """The register connection (either database), plus the audit store's writer lock on the head row."""

    @contextmanager
    def write(self) -> Iterator[None]:
        """A transaction holding the writer lock: the head row's on PostgreSQL, the database's on SQLite."""
        with self.transaction():
            if self.dialect == "postgresql":
                self.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
            yield


def _entry(row: Sequence[Any]) -> dict[str, Any]:
    seq, prev_hash, digest, hash_, body, kind, time, pruned_at = row
    entry: dict[str, Any] = {"seq": int(seq), "prev_hash": prev_hash, "record_sha256": digest, "hash": hash_}
    if body is not None:
        entry["record"] = json.loads(body)
    else:
        entry["pruned"] = {"at": pruned_at, "kind": kind, "time": time}
    return entry


_ENTRY_COLS = "seq, prev_hash, record_sha256, hash, body, kind, time, pruned_at"
_VERIFY_COLS = f"{_ENTRY_COLS}, record_id, {', '.join(c for c in COLUMNS if c not in TOMBSTONE_COLUMNS)}"


def _verify_entry(row: Sequence[Any]) -> dict[str, Any]:
    """An entry with the store's index columns beside it, for verify() to compare with the body."""
    entry = _entry(row[:8])
    names = ("record_id", *(c for c in COLUMNS if c not in TOMBSTONE_COLUMNS))
    entry["index"] = {"kind": row[5], "time": row[6], "pruned_at": row[7], **dict(zip(names, row[8:], strict=True))}
    return entry


_CP_COLS = "seq, hash, time, purpose, key_id, signature"
_INSERT = (f"INSERT INTO audit_entry (seq, record_id, {', '.join(COLUMNS)}, prev_hash, record_sha256, hash, body)"
           f" VALUES ({','.join('?' * (len(COLUMNS) + 6))})")


def _checkpoint(row: Sequence[Any]) -> dict[str, Any]:
    return {"seq": int(row[0]), "hash": row[1], "time": row[2], "purpose": row[3], "key_id": row[4],
            "signature": row[5]}


def _time_range(where: list[str], params: list[Any], since: str | None, until: str | None) -> None:
    """Add `since <= time < until` (either end optional) to a WHERE being built."""
    if since:
        where.append("time >= ?")
        params.append(normalise_time(since))
    if until:
        where.append("time < ?")
        params.append(normalise_time(until))


class AuditStore:
    def __init__(self, sql: _Sql, *, signing_key: Ed25519PrivateKey | None = None,
                 public_key: Ed25519PublicKey | None = None, checkpoint_every: int = 1000,
                 clock: Callable[[], str] = now_iso) -> None:
        self._sql = sql
        self._lock = threading.RLock()
        self.signing_key = signing_key
        self.public_key = signing_key.public_key() if signing_key is not None else public_key
        self.checkpoint_every = checkpoint_every
        self.clock = clock
        with self._lock:
            for ddl in _DDL:
                sql.execute(ddl)
            sql.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ?) ON CONFLICT DO NOTHING", (GENESIS,))

    @property
    def dialect(self) -> str:
        return self._sql.dialect

    # --- writing ---------------------------------------------------------------------------------------------
    def append(self, records: Iterable[object], *,
               on_invalid: Callable[[int, list[str]], None] | None = None) -> list[dict[str, Any]]:
        """Validate, drop repeats, chain and store; returns the new entries. Signs a periodic checkpoint whenever
        the head crosses a multiple of `checkpoint_every`. An invalid record refuses the whole batch, unless
        `on_invalid(position, problems)` is given: then it is reported there and skipped (an indexer must not
        stall on one bad message)."""
        records = list(records)
        batch = self._all_valid(records)
        if batch is None:
            batch = self._checked(records, on_invalid)
        if not batch:
            return []
        with self._lock, self._sql.write():
            return self._chain(batch)

    @staticmethod
    def _all_valid(records: list[object]) -> dict[str, Mapping[str, Any]] | None:
        """The common case in two validator calls, not one per record: every record valid, and every decision a group
        stands for too; the records to chain by id (first of each id kept). None: some record is not, and
        `_checked` says which and why."""
        if not all(isinstance(r, Mapping) for r in records) or not all_valid(records):  # type: ignore[arg-type]
            return None
        groups = [expand(r) for r in records]  # type: ignore[arg-type]
        made = [r for stored, record in zip(groups, records, strict=True) if stored != [record] for r in stored]
        if made and not all_valid(made):
            return None
        batch: dict[str, Mapping[str, Any]] = {}
        for stored in groups:
            for r in stored:
                _keep(batch, r)  # (a repeat within the batch is dropped, a release after a withhold moved)
        return batch

    @staticmethod
    def _checked(records: list[object],
                 on_invalid: Callable[[int, list[str]], None] | None) -> dict[str, Mapping[str, Any]]:
        """Each record checked on its own, its problems named (the batch refused, or each bad one reported and
        skipped)."""
        batch: dict[str, Mapping[str, Any]] = {}
        for i, record in enumerate(records):
            problems = validate_record(record) if isinstance(record, Mapping) else ["(record): not a JSON object"]
            # a group of withholds is chained as the per-subscriber decisions it stands for (broker/audit/withheld.py),
            # each checked like any record: what the store holds, and every reader sees, is one record per decision
            stored = expand(record) if not problems and isinstance(record, Mapping) else []
            if not problems and stored != [record]:
                problems = sorted({p for r in stored for p in validate_record(r)})
            if problems or not isinstance(record, Mapping):  # (a non-mapping always has a problem)
                if on_invalid is None:
                    raise AuditRecordError([f"record {i}: {p}" for p in problems])
                on_invalid(i, problems)
                continue
            for r in stored:
                _keep(batch, r)
        return batch

    def _chain(self, batch: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Inside the writer's transaction: drop known ids, chain, store, move the head, and sign a periodic
        checkpoint at every multiple of `checkpoint_every` the head passes, in the same transaction, so a verifier
        can expect one at each multiple (a missing one was deleted)."""
        found = self._sql.query_in(_OUTCOMES, batch)  # one lookup: which ids are stored, and the decisions' outcomes
        known = {rid for rid, _kind, _outcome in found}
        stored = {rid: outcome for rid, kind, outcome in found if kind == "decision" and batch[rid]["kind"] == kind}
        if stored:  # a re-run's repeats, or a release meeting a withhold stored under its id before session 13
            batch, known = self._past_withholds(batch, known, stored)
        fresh = [r for rid, r in batch.items() if rid not in known]
        seq, head = self._sql.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        entries: list[dict[str, Any]] = []
        rows: list[tuple[Any, ...]] = []
        for e, body in extend_canonical(int(seq), head, fresh):  # the entry and its row in one pass
            record = e["record"]
            entries.append(e)
            rows.append((e["seq"], record["record_id"], *map(record.get, COLUMNS), e["prev_hash"], e["record_sha256"],
                         e["hash"], body.decode()))
        self._sql.executemany(_INSERT, rows)
        if not entries:
            return entries
        self._sql.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1",
                          (entries[-1]["seq"], entries[-1]["hash"]))
        every = self.checkpoint_every
        if self.signing_key is not None and every > 0:
            first = int(seq) + 1
            for at in range(-(-first // every) * every, entries[-1]["seq"] + 1, every):
                self._store_checkpoint(sign_checkpoint(self.signing_key, at, entries[at - first]["hash"],
                                                       self.clock(), "periodic"))
        return entries

    def _known(self, ids: Iterable[str]) -> set[str]:
        return {r[0] for r in self._sql.query_in(_KNOWN, ids)}

    def _past_withholds(self, batch: Mapping[str, Mapping[str, Any]], known: set[str],
                        stored: Mapping[str, str]) -> tuple[Mapping[str, Mapping[str, Any]], set[str]]:
        """The batch and its known ids, decided against the stored decisions of ids it shares with the store
        (`_releases`): a delivery decision whose id holds a stored withhold moves to its derived id (known if the
        release was stored before); a release the batch itself moved there after a withhold of the same id is
        dropped if the id holds a stored delivery (the delivery was first). `stored`: the outcome of each decision
        of the batch whose id is stored."""
        moved: dict[str, str] = {}  # id -> derived id of the releases that meet a stored withhold
        dropped: set[str] = set()  # derived ids of releases the batch moved after a withhold, a delivery stored
        for rid, outcome in stored.items():
            if outcome == "withhold" and batch[rid].get("outcome") == "deliver":
                moved[rid] = release_id(rid)
            elif outcome == "deliver" and batch[rid].get("outcome") == "withhold":
                dropped.add(release_id(rid))
        if not moved and not dropped:
            return batch, known
        out: dict[str, Mapping[str, Any]] = {}
        for rid, r in batch.items():
            if rid in moved:
                out.setdefault(moved[rid], {**r, "record_id": moved[rid]})
            elif rid not in dropped:
                out.setdefault(rid, r)
        return out, known | self._known(moved.values())

    def _store_checkpoint(self, cp: Mapping[str, Any]) -> None:
        self._sql.execute(f"INSERT INTO audit_checkpoint ({_CP_COLS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                          (cp["seq"], cp["hash"], cp["time"], cp["purpose"], cp["key_id"], cp["signature"]))

    def log(self, kind: str, *, actor: str, time: str | None = None, **fields: Any) -> dict[str, Any]:
        """Build one record now and append it (for actions taken at the store: prune, reprocess, admin)."""
        return self.append([audit_record(kind, time=time or self.clock(), actor=actor, **fields)])[0]

    def checkpoint(self, purpose: str = "on_demand", *, at_seq: int | None = None) -> dict[str, Any]:
        """Sign the head (or the entry at `at_seq`) and store the checkpoint."""
        if self.signing_key is None:
            raise SigningKeyMissing("this store was opened without the audit signing key")
        with self._lock:
            if at_seq is None:
                seq, head = self.head()
            else:
                row = self._sql.execute("SELECT hash FROM audit_entry WHERE seq = ?", (at_seq,)).fetchone()
                if row is None:
                    raise AuditStoreError(f"no entry with seq {at_seq}")
                seq, head = at_seq, row[0]
            cp = sign_checkpoint(self.signing_key, seq, head, self.clock(), purpose)
            self._store_checkpoint(cp)
            return cp

    # --- reading ---------------------------------------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        with self._lock:
            seq, head = self._sql.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
            return int(seq), head

    def entries(self, after_seq: int = 0, page: int = 1000, through_seq: int | None = None,
                *, with_index: bool = False) -> Iterator[dict[str, Any]]:
        """Every entry in seq order (up to `through_seq`), read a page at a time; `with_index` adds the store's
        index columns of each (what verify compares with the body)."""
        cols, build = (_VERIFY_COLS, _verify_entry) if with_index else (_ENTRY_COLS, _entry)
        last = 2**63 - 1 if through_seq is None else through_seq
        while True:
            with self._lock:
                rows = self._sql.execute(f"SELECT {cols} FROM audit_entry WHERE seq > ? AND seq <= ? ORDER BY seq"
                                         " LIMIT ?", (after_seq, last, page)).fetchall()
            if not rows:
                return
            for row in rows:
                yield build(row)
            after_seq = int(rows[-1][0])

    def bodies_of_kind(self, kind: str, page: int = 1000, *, after_seq: int = 0,
                       through_seq: int | None = None) -> Iterator[dict[str, Any]]:
        """The record bodies of one kind in seq order (after `after_seq`, up to `through_seq`), a page at a time on
        the index audit_entry_kind (kind, seq): a reader of a few kinds (the insight watch) never loads nor parses
        the rest of the log, and holds one page at a time; a reader that keeps what it counted (the watch between
        runs) reads only what came after. Tombstones (pruned: no body) are passed over."""
        last = 2**63 - 1 if through_seq is None else through_seq
        while True:
            with self._lock:
                rows = self._sql.execute("SELECT seq, body FROM audit_entry WHERE kind = ? AND seq > ? AND seq <= ?"
                                         " ORDER BY seq LIMIT ?", (kind, after_seq, last, page)).fetchall()
            if not rows:
                return
            for _seq, body in rows:
                if body is not None:
                    yield json.loads(body)
            after_seq = int(rows[-1][0])

    def checkpoints(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._sql.execute(f"SELECT {_CP_COLS} FROM audit_checkpoint ORDER BY seq, purpose").fetchall()
        return [_checkpoint(r) for r in rows]

    def verify(self, public_key: Ed25519PublicKey | None = None) -> VerifyResult:
        """Chain, checkpoints (one expected at every multiple of checkpoint_every), index columns, tombstones, and
        the head row against the last entry; rows beyond the head are tampering too.

        The walk reads the chain up to the head read at its start, with the checkpoints signed by then, so records
        appended meanwhile cannot look like tampering; a failure seen while the head moved (a prune or compaction
        running beside) is checked once more before it is reported."""
        key = public_key or self.public_key
        if key is None:
            raise SigningKeyMissing("no audit public key: give one, or open the store with the data directory")
        for _ in range(3):
            head = self.head()
            checkpoints = [c for c in self.checkpoints() if c["seq"] <= head[0]]
            result = verify(self.entries(through_seq=head[0], with_index=True), checkpoints, key,
                            checkpoint_every=self.checkpoint_every, head=head)
            if result.ok:
                with self._lock:
                    beyond = self._sql.execute("SELECT MAX(seq) FROM audit_entry").fetchone()[0]
                now = self.head()
                if beyond is not None and int(beyond) > now[0]:
                    return VerifyResult(False, result.checked, now[0] + 1,
                                        f"entries after the store's head (seq {now[0]}) were added outside the writer",
                                        result.head_seq, result.head_hash, result.checkpoints,
                                        result.last_checkpoint_seq, fault="head")
                return result
            if self.head() == head:
                return result
        return result

    def search(self, *, since: str | None = None, until: str | None = None, limit: int = 100,
               before_seq: int | None = None, newest_first: bool = True, **filters: str | None) -> list[dict[str, Any]]:
        """Entries matching every given filter (subject, agency, subscriber, event_type, rule_id, kind, decision_id,
        event_id) and time range [since, until)."""
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise AuditStoreError("unknown filter(s): " + ", ".join(sorted(unknown)))
        where: list[str] = []
        params: list[str | int] = []
        for name, value in filters.items():
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        _time_range(where, params, since, until)
        if before_seq is not None:
            where.append("seq < ?")
            params.append(before_seq)
        sql = f"SELECT {_ENTRY_COLS} FROM audit_entry"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ?"
        with self._lock:
            rows = self._sql.execute(sql, [*params, max(1, min(limit, 10000))]).fetchall()
        return [_entry(r) for r in rows]

    def timeline(self, subject: str, limit: int = 5000, aliases: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Everything about one child, oldest first: records naming the token (or any of `aliases`, the tokens the
        identity register says the child also carried), and the reads of its deliveries (a read record carries the
        decision id, not the token)."""
        tokens = list(dict.fromkeys((subject, *aliases)))
        marks = ",".join("?" * len(tokens))
        with self._lock:
            rows = self._sql.execute(
                f"SELECT {_ENTRY_COLS} FROM audit_entry WHERE subject IN ({marks}) OR (kind = 'delivery_read' AND"
                f" decision_id IN (SELECT decision_id FROM audit_entry WHERE subject IN ({marks})"
                " AND decision_id IS NOT NULL)) ORDER BY seq LIMIT ?", (*tokens, *tokens, limit)).fetchall()
        found = [_entry(r) for r in rows]
        sent = [e["record"] for e in found if e.get("record", {}).get("kind") == "delivered"]
        if not any("offset" in d for d in sent):
            return found
        # a Kafka read names no child: the group's committed offsets that first went past one of its deliveries
        first_sent = min(e["seq"] for e in found if e.get("record", {}).get("kind") == "delivered")
        with self._lock:
            up_to = [_entry(r) for r in self._sql.query_in(
                f"SELECT {_ENTRY_COLS} FROM audit_entry WHERE kind = 'delivery_read_up_to' AND seq > ? AND subscriber"
                " IN ({marks}) ORDER BY seq", [d["subscriber"] for d in sent if "offset" in d], [first_sent])]
        covering = {id(r) for r in first_reads(sent, [e["record"] for e in up_to if e.get("record")])}
        return sorted([*found, *(e for e in up_to if id(e.get("record")) in covering)], key=lambda e: e["seq"])

    def _disclosure_where(self, subscriber: str | None, tokens: Sequence[str], since: str | None,
                          until: str | None) -> tuple[str, list[str]]:
        """The WHERE of the decisions to deliver (a person's share after a referral, human_decision, discloses
        like the protocol's own decision): the deliveries are chosen in SQL, so a withholding never takes a place
        in a page."""
        where = ["kind IN ('decision', 'human_decision')", "outcome = 'deliver'"]
        params: list[str] = []
        if subscriber is not None:
            where.append("subscriber = ?")
            params.append(subscriber)
        if tokens:
            where.append(f"subject IN ({','.join('?' * len(tokens))})")
            params.extend(tokens)
        _time_range(where, params, since, until)
        return " AND ".join(where), params

    def disclosures(self, *, subscriber: str | None = None, subject: str | None = None, since: str | None = None,
                    until: str | None = None, limit: int = 1000, aliases: Sequence[str] = (),
                    after_seq: int = 0) -> list[Disclosure]:
        """Decisions to deliver (to a subscriber, or about a child under any of its tokens), oldest first, with
        when they were delivered and read: the first `limit` after `after_seq` (page on with the last one's seq)."""
        tokens = [t for t in dict.fromkeys((subject, *aliases)) if t is not None]
        where, params = self._disclosure_where(subscriber, tokens, since, until)
        with self._lock:
            rows = self._sql.execute(f"SELECT {_ENTRY_COLS} FROM audit_entry WHERE {where} AND seq > ?"
                                     " ORDER BY seq LIMIT ?", [*params, after_seq, max(1, min(limit, 10000))]
                                     ).fetchall()
        decisions = [_entry(r) for r in rows]
        ids = [e["record"]["decision_id"] for e in decisions if e.get("record")]
        with self._lock:
            related = self._sql.query_in(f"SELECT {_ENTRY_COLS} FROM audit_entry WHERE kind IN ('delivered',"
                                         " 'delivery_read') AND decision_id IN ({marks}) ORDER BY seq", ids)
            # Kafka reads name no decision: a group's committed offset covers the deliveries below it on its topic,
            # and is chained after them (the delivery is readable only once its own records are committed)
            subscribers = [e["record"]["subscriber"] for e in decisions if e.get("record")]
            related += self._sql.query_in(f"SELECT {_ENTRY_COLS} FROM audit_entry WHERE kind = 'delivery_read_up_to'"
                                          " AND seq > ? AND subscriber IN ({marks})", subscribers,
                                          [decisions[0]["seq"] if decisions else 0])
        return disclosures([*decisions, *(_entry(r) for r in sorted(related, key=lambda r: int(r[0])))])

    def every_disclosure(self, *, subscriber: str | None = None, subject: str | None = None,
                         aliases: Sequence[str] = (), page: int = 1000) -> list[Disclosure]:
        """Every disclosure (to a subscriber, or about a child), oldest first, read a page at a time: what a subject
        access report must list in full, however many there are."""
        out: list[Disclosure] = []
        after = 0
        while found := self.disclosures(subscriber=subscriber, subject=subject, aliases=aliases, limit=page,
                                        after_seq=after):
            out += found
            after = found[-1].seq
            if len(found) < page:
                break
        return out

    def count_disclosures(self, *, subscriber: str | None = None, subject: str | None = None,
                          since: str | None = None, until: str | None = None, aliases: Sequence[str] = ()) -> int:
        """How many decisions to deliver `disclosures` would page through (the figure IG reads, not a page's)."""
        tokens = [t for t in dict.fromkeys((subject, *aliases)) if t is not None]
        where, params = self._disclosure_where(subscriber, tokens, since, until)
        with self._lock:
            return int(self._sql.execute(f"SELECT COUNT(*) FROM audit_entry WHERE {where}", params).fetchone()[0])

    def event_sources(self, found: Sequence[Disclosure]) -> dict[str, tuple[str, str | None]]:
        """event id -> (agency, source system) of the disclosed events, from their `event_published` records: whose
        data each disclosure was (the owning agency's digest). Read by the children's tokens, which are indexed."""
        wanted = {d.event_id for d in found}
        with self._lock:
            rows = self._sql.query_in("SELECT body FROM audit_entry WHERE kind = 'event_published' AND subject IN"
                                      " ({marks})", [d.subject for d in found if d.subject])
        out: dict[str, tuple[str, str | None]] = {}
        for (body,) in rows:
            if body is not None and (r := json.loads(body))["event_id"] in wanted:
                out.setdefault(r["event_id"], (r.get("agency", "unknown"), r.get("system")))
        return out

    def protocol_history(self) -> list[dict[str, Any]]:
        return self.search(kind="protocol_change", limit=10000, newest_first=False)

    def dead_letters(self, limit: int = 500) -> list[dict[str, Any]]:
        """Dead-lettered inputs, newest first, each with when it was last reprocessed (if ever)."""
        letters = self.search(kind="deadlettered", limit=limit)
        with self._lock:
            rows = self._sql.execute(
                "SELECT body FROM audit_entry WHERE kind = 'admin_action' AND body IS NOT NULL AND seq > ?"
                " ORDER BY seq", (min((e["seq"] for e in letters), default=0),)).fetchall()
        reprocessed: dict[str, str] = {}
        for (body,) in rows:
            record = json.loads(body)
            if record.get("action") == REPROCESS_ACTION and record.get("target"):
                reprocessed[record["target"]] = record["time"]
        for entry in letters:
            record = entry.get("record") or {}
            entry["reprocessed_at"] = reprocessed.get(record.get("deadletter_id", ""))
        return letters

    def deadletter(self, deadletter_id: str) -> dict[str, Any] | None:
        """The latest deadlettered record for this dead-letter id."""
        with self._lock:
            row = self._sql.execute(f"SELECT {_ENTRY_COLS} FROM audit_entry WHERE kind = 'deadlettered'"
                                    " AND deadletter_id = ? ORDER BY seq DESC LIMIT 1", (deadletter_id,)).fetchone()
        return _entry(row) if row else None

    # --- retention -------------------------------------------------------------------------------------------
    def prune(self, retention_days: Mapping[str, int], *, now: str | None = None, actor: str = "retention",
              compact: bool = False) -> PruneResult:
        """Turn records past their kind's retention into tombstones (chain intact) and, in the same transaction,
        log one admin_action `audit.prune` per kind pruned, naming the kind (target), the cut-off (before), the
        head it could reach (through_seq) and the count: the record a verifier needs to accept those tombstones
        (a tombstone no logged prune covers is tampering). Prune records are never pruned themselves, for that
        reason. With `compact`, the leading run of tombstones is then dropped behind a signed prune checkpoint."""
        now = normalise_time(now or self.clock())
        cut = cutoffs(now, retention_days)
        by_kind: dict[str, int] = {}
        with self._lock, self._sql.write():
            through = int(self._sql.execute("SELECT seq FROM audit_head WHERE id = 1").fetchone()[0])
            logged: dict[str, Mapping[str, Any]] = {}
            for kind, before in cut.items():
                rows = self._sql.execute("SELECT seq, time, body FROM audit_entry WHERE kind = ? AND time < ?"
                                         " AND body IS NOT NULL AND seq <= ?", (kind, before, through)).fetchall()
                seqs = [int(s) for s, t, body in rows if expired(kind, t, cut) and not _is_prune_record(kind, body)]
                if seqs:
                    blank = ", ".join(f"{c} = NULL" for c in COLUMNS if c not in TOMBSTONE_COLUMNS)
                    self._sql.executemany(f"UPDATE audit_entry SET body = NULL, pruned_at = ?, {blank} WHERE seq = ?",
                                          [(now, s) for s in seqs])
                    by_kind[kind] = len(seqs)
                    record = audit_record("admin_action", time=now, actor=actor, action=PRUNE_ACTION, target=kind,
                                          before=before, through_seq=through, count=len(seqs))
                    logged[record["record_id"]] = record
            self._chain(logged)
        total = sum(by_kind.values())
        compacted = self.compact(actor=actor) if compact else 0
        return PruneResult(total, compacted, by_kind)

    def compact(self, *, actor: str = "retention") -> int:
        """Drop the leading run of tombstones. The entry before the new start is signed first (purpose prune):
        that checkpoint is what lets a verifier trust a chain that no longer starts at seq 1. Logged as an
        admin_action `audit.compact` (count, through_seq: the last seq dropped)."""
        with self._lock:
            row = self._sql.execute("SELECT MIN(seq) FROM audit_entry WHERE body IS NOT NULL").fetchone()
            first_kept = row[0]
            if first_kept is None:
                first_kept = self.head()[0]  # keep the last entry as the chain's visible end
            last_drop = int(first_kept) - 1
            lowest = self._sql.execute("SELECT MIN(seq) FROM audit_entry").fetchone()[0]
            if lowest is None or last_drop < int(lowest):
                return 0
            self.checkpoint("prune", at_seq=last_drop)
            with self._sql.write():
                count = self._sql.execute("SELECT COUNT(*) FROM audit_entry WHERE seq <= ?", (last_drop,)).fetchone()[0]
                self._sql.execute("DELETE FROM audit_entry WHERE seq <= ?", (last_drop,))
            self.log("admin_action", actor=actor, action=COMPACT_ACTION, through_seq=last_drop, count=int(count))
            return int(count)

    def cache_for_appends(self) -> None:
        """Give this connection the appender's page cache (the audit indexer's; on SQLite, a no-op elsewhere).

        Record ids, decision ids and subjects are random keys, so each append walks their indexes at random and
        SQLite's default 2 MiB page cache misses more as the log grows: at 180,000 entries a 32 MiB cache cut the
        append from 119 to 96 us per record (broker/bench/RESULTS.md). A process that only reads keeps the default:
        the insight watch reads its kinds in seq order, and through the large cache it grew a share worker by
        35 MB at its first hourly run for nothing (issue 24, session 13: 4 MB at the default)."""
        if self._sql.dialect == "sqlite":
            with self._lock:
                self._sql.execute(f"PRAGMA cache_size=-{AUDIT_CACHE_KIB}")

    def close(self) -> None:
        with self._lock:
            self._sql.conn.close()


def _is_prune_record(kind: str, body: str) -> bool:
    """A prune's own record: what makes its tombstones legitimate, so it is kept whatever admin_action's period."""
    return kind == "admin_action" and json.loads(body).get("action") == PRUNE_ACTION


def open_audit_store(data_dir: Path, url: str | None = None, *, create_key: bool = False,
                     checkpoint_every: int = 1000, clock: Callable[[], str] = now_iso) -> AuditStore:
    """SQLite at <data_dir>/audit.sqlite (or sqlite:///PATH), or PostgreSQL at a postgresql:// URL. The signing key
    comes from the data directory (created if `create_key`); without it the store can read and verify (with
    audit-signing.pub) but not sign."""
    try:
        signing: Ed25519PrivateKey | None = load_signing_key(data_dir, create=create_key)
    except SigningKeyMissing:
        signing = None
    public = None
    if signing is None and (data_dir / PUBLIC_KEY_FILE).is_file():
        public = parse_public_key((data_dir / PUBLIC_KEY_FILE).read_text())
    if url and url.startswith(("postgresql://", "postgres://")):
        import psycopg

        sql = _Sql(psycopg.connect(url, autocommit=True), "postgresql")
    else:
        import sqlite3

        path = Path(url.removeprefix("sqlite:///")) if url else data_dir / "audit.sqlite"
        if url and not url.startswith("sqlite:///"):
            raise AuditStoreError("audit URL must start with postgresql:// or sqlite:///")
        private_sqlite_file(path)  # 0600 in a 0700 folder
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        sql = _Sql(conn, "sqlite")
    return AuditStore(sql, signing_key=signing, public_key=public, checkpoint_every=checkpoint_every, clock=clock)
