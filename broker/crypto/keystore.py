"""The data-key store: wrapped data keys (DEKs) per (scope, classification) in SQLite, KEKs in a KMS.

A child's scope is its linkage token; dead letters use their own scope. Shredding a scope destroys its wrapped DEKs,
so every copy of the fields they protected, on every topic and every backup of the topics, becomes unreadable (the
keystore's own backups must therefore be kept short). Data keys rotate by age and by use count: new encryptions get
a new DEK, old DEKs stay for decryption. A use is one `encryption_key` call: protect_event makes one per event and
classification (all that event's fields of the classification), protect_blob one per blob.

Use counts are reserved in blocks (one UPDATE per block, not per encryption), so the stored count is an upper bound
of real use across every process; unused reservations are given back on rotation and close.

A shred also records the ids of the events the scope's keys protected (given by the caller: the audit log's
publications), and `encryption_keys` refuses (ErasedData) to protect any of them again: a resend of a record received
before the erasure never gets fresh keys. Events with new ids (records received after the erasure) get new keys: new
processing, which a second shred erases in turn.

Two locks, taken in this order and never the other way: `_db_lock` for the connection and its transactions, `_lock`
for what is in memory. An encryption whose keys are in memory takes only `_lock`, so it never waits behind another
scope's key being made (a transaction and its disk sync, ~5-50 ms on a busy host). Keys that must be made or
reserved are queued, and whichever thread holds `_db_lock` next makes every queued one in one transaction (group
commit: one disk sync for all the threads waiting, not one each). A new key is put in memory, where others can use
it, only once its transaction is committed: no key is ever used that is not durably stored.

Unwrapped DEKs are cached in a bounded LRU. A shred in this process evicts them at once; a shred by another process
(e.g. `mash-broker keys shred` beside a running service) is seen within `revalidate_after` seconds through SQLite's
data_version and a key epoch bumped by every shred and forced rotation.

The SQL is kept portable (ON CONFLICT, RETURNING, no SQLite-only types) so a PostgreSQL store can follow: TEXT for
wrapped blobs, REAL for epoch seconds; only the `?` placeholders and the PRAGMAs in sqlite.py are SQLite's.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from broker.crypto.errors import ErasedData, KeyShredded, KeyUnavailable, KmsError
from broker.crypto.kms import Kms, blob_version, kek_name_for
from broker.crypto.provider import DataKey
from broker.crypto.sqlite import open_key_db
from broker.schema.classification import CLASSIFICATIONS

DEFAULT_MAX_AGE_SECONDS = 30 * 24 * 3600
DEFAULT_MAX_USES = 250_000  # events per key: even at 1,000 fields an event, far below AES-GCM's 2**32 nonce limit
DEFAULT_CACHE_SIZE = 4096
DEFAULT_REVALIDATE_AFTER = 0.25
RESERVE_BLOCK = 1024
ENCRYPTING = tuple(c for c in CLASSIFICATIONS if c != "operational")

UnwrapHook = Callable[[str, str, str], None]  # (key id, scope, reason)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS data_keys (
        key_id TEXT PRIMARY KEY,
        scope TEXT NOT NULL,
        classification TEXT NOT NULL,
        kek_name TEXT NOT NULL,
        wrapped TEXT,
        created_at REAL NOT NULL,
        use_count INTEGER NOT NULL,
        retired_at REAL,
        shredded_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS data_keys_by_scope ON data_keys (scope, classification, created_at)",
    "CREATE TABLE IF NOT EXISTS keystore_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT INTO keystore_meta (name, value) VALUES ('key_epoch', 0) ON CONFLICT (name) DO NOTHING",
    # events received before their scope was shredded: never protected again (see `encryption_keys`)
    "CREATE TABLE IF NOT EXISTS shredded_events (event_id TEXT PRIMARY KEY, scope TEXT NOT NULL)",
)


@dataclass(slots=True)
class _Current:
    """The DEK this process encrypts with for one (scope, classification), and its unused reserved uses."""

    key: DataKey
    created_at: float
    remaining: int


@dataclass(slots=True)
class _Mint:
    """One caller's keys that were not in memory, queued for the next key transaction (see the module docstring)."""

    scope: str
    classifications: list[str]
    keys: dict[str, DataKey] = field(default_factory=dict)
    done: bool = False
    error: BaseException | None = None
    uses: int = 1  # taken per key: 0 for `prepare_keys`, which only makes them ready


@dataclass(frozen=True, slots=True)
class ShredReport:
    """What a shred did, for the audit record (no personal data: the scope is a pseudonymous linkage token)."""

    scope: str
    data_keys: int
    classifications: list[str]
    shredded_at: float

    def audit_fields(self) -> dict[str, Any]:
        return {"action": "keys.shred", "subject": self.scope, "data_keys_shredded": self.data_keys,
                "classifications": self.classifications,
                "shredded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.shredded_at))}


def shred_child(keys: Any, tokens: list[str],
                event_ids: Iterable[tuple[str, str]] = ()) -> tuple[list[ShredReport], dict[str, Any]]:
    """Shred every token one child has carried (the identity register's aliases, current first): the reports, one
    per token, and their summary for the caller (API response or CLI output). `event_ids`, (event id, token) pairs,
    are the child's events received before now: the keystore will not protect them again."""
    by_token: dict[str, list[str]] = {}
    for event_id, token in event_ids:
        by_token.setdefault(token, []).append(event_id)
    reports = [keys.shred_with_report(token, by_token.get(token, ())) for token in tokens]
    return reports, {"subject": tokens[0], "tokens": tokens, "data_keys_shredded": sum(r.data_keys for r in reports),
                     "classifications": sorted({c for r in reports for c in r.classifications})}


def _least_recent(entries: OrderedDict[tuple[str, str], _Current], keep: Container[tuple[str, str]],
                  count: int) -> list[tuple[str, str]]:
    """The `count` least recently used keys of `entries` (oldest first) that are not in `keep`, read from the old
    end only as far as needed. Scanning the whole map (up to `cache_size` entries) on every key transaction, to
    evict nothing until the map is full, was a third of intake's CPU in the key store (session 12)."""
    if count <= 0:
        return []
    return list(islice((k for k in entries if k not in keep), count))


class KeyStore:
    """KeyProvider backed by SQLite and a KMS. Thread-safe; several processes may share the file."""

    def __init__(self, path: Path, kms: Kms, *, max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
                 max_uses: int = DEFAULT_MAX_USES, cache_size: int = DEFAULT_CACHE_SIZE,
                 revalidate_after: float = DEFAULT_REVALIDATE_AFTER, on_unwrap: UnwrapHook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if max_uses < 1 or max_age_seconds <= 0 or cache_size < 1:
            raise ValueError("max_uses, max_age_seconds and cache_size must be positive")
        self.kms = kms
        self.max_age = max_age_seconds
        self.max_uses = max_uses
        self.cache_size = cache_size
        self.revalidate_after = revalidate_after
        self.on_unwrap = on_unwrap
        self._clock = clock
        self._db_lock = threading.RLock()  # the connection and its transactions: taken first
        self._lock = threading.RLock()  # what is in memory: taken second, never held across a disk sync by intake
        self._queue: list[_Mint] = []  # keys waiting for the next key transaction (under _lock)
        self._db = open_key_db(path)
        for statement in _SCHEMA:
            self._db.execute(statement)
        # Bounded like the DEK cache: one entry per (child, classification) would otherwise grow with every child
        # the hub ever sees. An evicted entry gives its reserved uses back and is reloaded from the store if needed.
        self._current: OrderedDict[tuple[str, str], _Current] = OrderedDict()
        self._cache: OrderedDict[str, tuple[str, bytes | None]] = OrderedDict()  # key id -> (scope, DEK | shredded)
        self._unwraps = 0
        self._epoch = self._read_epoch()
        self._data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
        self._next_check = time.monotonic() + revalidate_after
        self._erased_scopes: set[str] | None = None  # scopes with shredded events; reloaded when the epoch moves

    # --- KeyProvider ---------------------------------------------------------------------------------------
    def encryption_key(self, scope: str, classification: str) -> DataKey:
        return self.encryption_keys(scope, [classification])[classification]

    def encryption_keys(self, scope: str, classifications: Iterable[str], *,
                        event_id: str | None = None) -> dict[str, DataKey]:
        """`encryption_key` for each classification (one use each). The keys that must be made or reserved anew are
        made in one synced transaction, with those of every other thread waiting for one (see the module docstring):
        a new child's first event needs several, and a commit apiece cost ~5 ms of fsync each.

        ErasedData if `event_id` is an event of this scope received before the scope was shredded."""
        if time.monotonic() >= self._next_check:
            self._revalidate(wait=False)
        if not scope:
            raise ValueError("empty scope")
        if event_id is not None:
            self._refuse_erased(scope, event_id)
        with self._lock:
            keys, missing = self._take(scope, dict.fromkeys(classifications), 1)
        if not missing:
            return keys
        for classification in missing:
            if classification not in ENCRYPTING:
                raise ValueError(f"no data keys for classification {classification!r}")
        mint = _Mint(scope, missing)
        with self._lock:
            self._queue.append(mint)
        with self._db_lock:
            if not mint.done:  # else another thread made this one's keys with its own, in its transaction
                self._mint_queued()
        if mint.error is not None:
            raise mint.error
        keys.update(mint.keys)
        return keys

    def prepare_keys(self, wanted: Iterable[tuple[str, Iterable[str], str | None]]) -> None:
        """KeyPreparer: the keys of several events made ready in one transaction, no use counted (each event's own
        `encryption_keys` takes its uses, and finds them in memory). A request's new children otherwise made one
        synced transaction each: seven a request in the bench's files of 20, a fifth of intake's key-store CPU and
        most of its wall time (session 12). An event this store refuses (an erased child's old record) is left out,
        so no key is made for it; so is an unknown classification (its own call says why). More pairs than half the
        memory holds are left to the events' own calls, so that making them ready never evicts one another."""
        if time.monotonic() >= self._next_check:
            self._revalidate(wait=False)
        pairs: dict[tuple[str, str], None] = {}
        for scope, classifications, event_id in wanted:
            if not scope:
                continue
            if event_id is not None:
                try:
                    self._refuse_erased(scope, event_id)
                except ErasedData:
                    continue
            pairs.update(((scope, c), None) for c in classifications if c in ENCRYPTING)
        by_scope: dict[str, list[str]] = {}
        with self._lock:
            for scope, classification in pairs:
                if not self._take(scope, [classification], 0)[0]:
                    by_scope.setdefault(scope, []).append(classification)
            # all the pairs, those in memory too: the LRU touch above put them last, so the mint below evicts
            # none of them while the request's pairs fit in half the memory
            if not by_scope or len(pairs) > self.cache_size // 2:
                return
            mints = [_Mint(scope, classes, uses=0) for scope, classes in by_scope.items()]
            self._queue.extend(mints)
        with self._db_lock:
            if not all(m.done for m in mints):
                self._mint_queued()
        for mint in mints:
            if mint.error is not None:
                raise mint.error

    def _take(self, scope: str, classifications: Iterable[str], uses: int) -> tuple[dict[str, DataKey], list[str]]:
        """The keys in memory with uses left (`uses` each, taken: 1, or 0 to look only), each then the most
        recently used, and the classifications that have none (under _lock)."""
        keys, missing = {}, []
        now = self._clock()
        current = self._current
        for classification in classifications:
            pair = (scope, classification)
            cur = current.get(pair)
            if cur is not None and cur.remaining > 0 and now - cur.created_at < self.max_age:
                cur.remaining -= uses
                keys[classification] = cur.key
                current.move_to_end(pair)  # used now: the last to leave memory (an LRU, not first in, first out)
            else:
                missing.append(classification)
        return keys, missing

    def _refuse_erased(self, scope: str, event_id: str) -> None:
        """ErasedData if the event is one of the scope's received before its shred. Only an erased scope's events
        (or the first look after a shred) pay the database lookup."""
        with self._lock:
            erased = self._erased_scopes
        if erased is not None and scope not in erased:
            return
        with self._db_lock:
            with self._lock:
                erased = self._erased()
            if scope in erased and self._db.execute(
                    "SELECT 1 FROM shredded_events WHERE event_id = ? AND scope = ?", (event_id, scope)).fetchone():
                raise ErasedData(event_id)

    def _mint_queued(self) -> None:
        """Every queued caller's keys in one transaction (holding _db_lock): reserved anew, loaded from another
        process's, or made. They go into memory, for every thread to use, only once the transaction is committed;
        if it fails, every caller of the batch gets the error and nothing of it is used."""
        if time.monotonic() >= self._next_check:
            self._revalidate(wait=True)  # a steady stream of new keys must not keep another process's shred unseen
        with self._lock:
            batch, self._queue = self._queue, []
            wanted: list[tuple[_Mint, list[str]]] = []
            for mint in batch:  # a batch before this one may have made these keys meanwhile
                got, missing = self._take(mint.scope, mint.classifications, mint.uses)
                mint.keys.update(got)
                if missing:
                    wanted.append((mint, missing))
                else:
                    mint.done = True
            pairs = list(dict.fromkeys((m.scope, c) for m, missing in wanted for c in missing))
            previous = {pair: self._current.get(pair) for pair in pairs}
            # room for the new entries: the least recently used others leave memory now, their unused reserved uses
            # given back in the transaction (never used again by anyone: they are out of memory)
            overflow = len(self._current) + sum(p not in self._current for p in pairs) - self.cache_size
            evicted = [self._current.pop(k) for k in _least_recent(self._current, previous, overflow)]
        if not wanted:
            return
        fresh: dict[tuple[str, str], _Current] = {}
        try:
            now = self._clock()
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                for gone in evicted:
                    self._give_back(gone)
                for mint, missing in wanted:
                    for classification in missing:
                        pair = (mint.scope, classification)
                        made = fresh.get(pair)
                        if made is None or made.remaining <= 0:
                            made = self._next_current(mint.scope, classification, made or previous[pair], now)
                            fresh[pair] = made
                        made.remaining -= mint.uses
                        mint.keys[classification] = made.key
        except BaseException as exc:
            for mint, _ in wanted:
                mint.error, mint.done = exc, True
            return
        with self._lock:  # committed: now others may use them
            for pair, cur in fresh.items():
                self._current[pair] = cur
                self._current.move_to_end(pair)
                self._remember(cur.key.key_id, (pair[0], cur.key.key))
            for mint, _ in wanted:
                mint.done = True

    def decryption_key(self, key_id: str, reason: str = "") -> bytes:
        if time.monotonic() >= self._next_check:
            self._revalidate(wait=False)
        with self._lock:
            hit = self._cache.get(key_id)
            if hit is not None:
                self._cache.move_to_end(key_id)
        if hit is None:  # read and unwrap with the connection's lock: cached encryptions go on meanwhile
            with self._db_lock:
                with self._lock:
                    hit = self._cache.get(key_id)  # another thread may have unwrapped it meanwhile
                if hit is None:
                    row = self._db.execute("SELECT scope, kek_name, wrapped FROM data_keys WHERE key_id = ?",
                                           (key_id,)).fetchone()
                    if row is None:
                        raise KeyUnavailable(f"data key {key_id} is not in this keystore")
                    scope, kek_name, wrapped = row
                    hit = (scope, None if wrapped is None else self._unwrap(key_id, scope, kek_name, wrapped, reason))
                    self._remember(key_id, hit)
        if hit[1] is None:
            raise KeyShredded(key_id)
        return hit[1]

    # --- shredding and rotation ----------------------------------------------------------------------------
    def shred(self, scope: str) -> int:
        """Destroy every wrapped DEK of the scope (a child: its linkage token). Returns how many were destroyed."""
        return self.shred_with_report(scope).data_keys

    def shred_with_report(self, scope: str, event_ids: Iterable[str] = ()) -> ShredReport:
        """Destroy the scope's DEKs; `event_ids` (its events received until now) are never protected again."""
        if not scope:
            raise ValueError("empty scope")
        now = self._clock()
        with self._db_lock, self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO shredded_events (event_id, scope) VALUES (?, ?) ON CONFLICT "
                                     "(event_id) DO NOTHING", [(e, scope) for e in dict.fromkeys(event_ids)])
                classes = sorted({c for (c,) in self._db.execute(
                    "SELECT classification FROM data_keys WHERE scope = ? AND wrapped IS NOT NULL", (scope,))})
                count = self._db.execute(
                    "UPDATE data_keys SET wrapped = NULL, shredded_at = ? WHERE scope = ? AND wrapped IS NOT NULL",
                    (now, scope)).rowcount
                self._bump_epoch()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            # Old page images live on in the write-ahead log until a checkpoint; truncate it now.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._erased_scopes = None
            for key in [k for k in self._current if k[0] == scope]:
                del self._current[key]
            for key_id in [k for k, (s, _) in self._cache.items() if s == scope]:
                self._cache[key_id] = (scope, None)
        return ShredReport(scope, count, classes, now)

    def holds(self, scope: str) -> bool:
        """Whether any data key (live or shredded) was ever made for `scope`: the keystore's word that it knows it."""
        with self._db_lock, self._lock:
            return self._db.execute("SELECT 1 FROM data_keys WHERE scope = ? LIMIT 1", (scope,)).fetchone() is not None

    def rotate_data_keys(self, scope: str | None = None) -> int:
        """Retire the active DEKs (of one scope, or all): the next encryption of each gets a new one."""
        now = self._clock()
        with self._db_lock, self._lock:
            self._give_back_reservations()
            where, args = ("AND scope = ?", (now, scope)) if scope else ("", (now,))
            self._db.execute("BEGIN IMMEDIATE")
            try:
                count = self._db.execute(
                    f"UPDATE data_keys SET retired_at = ? WHERE retired_at IS NULL AND wrapped IS NOT NULL {where}",
                    args).rowcount
                self._bump_epoch()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._current.clear()
        return count

    def rotate_keks(self, classifications: Iterable[str] = ENCRYPTING) -> dict[str, int]:
        """A new KEK version per classification; new DEKs are wrapped under it, old ones still unwrap."""
        return {kek_name_for(c): self.kms.rotate(kek_name_for(c)) for c in classifications}

    def rewrap(self) -> int:
        """Re-wrap every live DEK not under its KEK's newest version. Returns how many were re-wrapped."""
        with self._db_lock, self._lock:
            rows = self._db.execute("SELECT key_id, kek_name, wrapped FROM data_keys WHERE wrapped IS NOT NULL"
                                    ).fetchall()
        latest: dict[str, int] = {}
        done = 0
        for key_id, kek_name, wrapped in rows:
            newest = latest.setdefault(kek_name, self.kms.latest_version(kek_name))
            if blob_version(wrapped.encode()) >= newest:
                continue
            fresh = self.kms.rewrap(kek_name, wrapped.encode()).decode("ascii")
            with self._db_lock, self._lock:  # only if unchanged: a concurrent shred must not be undone
                done += self._db.execute("UPDATE data_keys SET wrapped = ? WHERE key_id = ? AND wrapped = ?",
                                         (fresh, key_id, wrapped)).rowcount
        return done

    # --- observation ---------------------------------------------------------------------------------------
    def unwrap_count(self) -> int:
        """Unwraps by the KMS in this process (cache misses): export it as a metric."""
        return self._unwraps

    def status(self) -> dict[str, Any]:
        now = self._clock()
        by_class: dict[str, dict[str, int]] = {}
        due = 0
        oldest: float | None = None
        kek_versions: dict[str, dict[int, int]] = {}
        with self._db_lock, self._lock:
            self._give_back_reservations()
            rows = self._db.execute("SELECT classification, kek_name, wrapped, created_at, use_count, retired_at "
                                    "FROM data_keys").fetchall()
            scopes = self._db.execute("SELECT COUNT(DISTINCT scope) FROM data_keys WHERE wrapped IS NOT NULL"
                                      ).fetchone()[0]
            shredded_scopes = self._db.execute(
                "SELECT COUNT(DISTINCT scope) FROM data_keys WHERE wrapped IS NULL").fetchone()[0]
        for classification, kek_name, wrapped, created_at, uses, retired_at in rows:
            state = "shredded" if wrapped is None else "retired" if retired_at is not None else "active"
            counts = by_class.setdefault(classification, {"active": 0, "retired": 0, "shredded": 0})
            counts[state] += 1
            if wrapped is not None:
                versions = kek_versions.setdefault(kek_name, {})
                version = blob_version(wrapped.encode())
                versions[version] = versions.get(version, 0) + 1
            if state == "active":
                oldest = created_at if oldest is None else min(oldest, created_at)
                due += now - created_at >= self.max_age or uses >= self.max_uses
        latest = {name: self.kms.latest_version(name) for name in kek_versions}
        totals = {s: sum(c[s] for c in by_class.values()) for s in ("active", "retired", "shredded")}
        return {
            "kms": self.kms.describe(),
            "data_keys": totals,
            "by_classification": by_class,
            "scopes_with_keys": scopes,
            "shredded_scopes": shredded_scopes,
            "kek_versions_in_use": {name: {"latest": latest[name], "wrapping": dict(sorted(v.items()))}
                                    for name, v in sorted(kek_versions.items())},
            "needing_rewrap": sum(n for name, v in kek_versions.items() for ver, n in v.items() if ver < latest[name]),
            "rotation": {"max_age_seconds": self.max_age, "max_uses": self.max_uses, "active_due": due,
                         "oldest_active_age_seconds": None if oldest is None else round(now - oldest)},
            "unwraps_this_process": self._unwraps,
            "cache": {"size": len(self._cache), "capacity": self.cache_size},
        }

    def close(self) -> None:
        with self._db_lock, self._lock:
            self._give_back_reservations()
            self._db.close()

    # --- internals -----------------------------------------------------------------------------------------
    def _erased(self) -> set[str]:
        """Scopes with shredded events (small: erased children), so that only their events pay a lookup."""
        if self._erased_scopes is None:
            self._erased_scopes = {s for (s,) in self._db.execute("SELECT DISTINCT scope FROM shredded_events")}
        return self._erased_scopes

    def _next_current(self, scope: str, classification: str, cur: _Current | None, now: float) -> _Current:
        """A key with uses reserved for (scope, classification), in the open transaction: more uses of `cur` (a
        copy: what is in memory changes only after the commit), else the newest active stored one, else a new one."""
        if cur is not None and now - cur.created_at < self.max_age:
            again = _Current(cur.key, cur.created_at, 0)
            if self._reserve(again):
                return again
        if cur is not None:
            self._retire(cur)
        return self._load_current(scope, classification, now) or self._create(scope, classification, now)

    def _load_current(self, scope: str, classification: str, now: float) -> _Current | None:
        """The newest active DEK another run or process made for this scope, if still young and not used up."""
        row = self._db.execute(
            "SELECT key_id, kek_name, wrapped, created_at FROM data_keys WHERE scope = ? AND classification = ? "
            "AND retired_at IS NULL AND wrapped IS NOT NULL ORDER BY created_at DESC LIMIT 1",
            (scope, classification)).fetchone()
        if row is None:
            return None
        key_id, kek_name, wrapped, created_at = row
        with self._lock:
            hit = self._cache.get(key_id)
        key = hit[1] if hit and hit[1] else self._unwrap(key_id, scope, kek_name, wrapped, f"encrypt {classification}")
        found = _Current(DataKey(key_id, key), created_at, 0)
        if now - created_at < self.max_age and self._reserve(found):
            self._remember(key_id, (scope, key))
            return found
        self._retire(found)
        return None

    def _create(self, scope: str, classification: str, now: float) -> _Current:
        key_id = "dk_" + secrets.token_urlsafe(12)
        key = secrets.token_bytes(32)
        kek_name = kek_name_for(classification)
        wrapped = self.kms.wrap(kek_name, key_id.encode() + b"\0" + key).decode("ascii")
        block = min(RESERVE_BLOCK, self.max_uses)
        self._db.execute("INSERT INTO data_keys (key_id, scope, classification, kek_name, wrapped, created_at, "
                         "use_count) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (key_id, scope, classification, kek_name, wrapped, now, block))
        return _Current(DataKey(key_id, key), now, block)

    def _reserve(self, cur: _Current) -> bool:
        """Reserve the next block of uses; False if the key has reached max_uses or was retired or shredded."""
        block = min(RESERVE_BLOCK, self.max_uses)
        row = self._db.execute(
            "UPDATE data_keys SET use_count = use_count + ? WHERE key_id = ? AND retired_at IS NULL "
            "AND wrapped IS NOT NULL RETURNING use_count", (block, cur.key.key_id)).fetchone()
        if row is None:
            return False
        allowed = min(block, self.max_uses - (row[0] - block))
        cur.remaining = max(0, allowed)
        if allowed < block:  # give back what lies beyond the limit, so the stored count stays meaningful
            self._db.execute("UPDATE data_keys SET use_count = use_count - ? WHERE key_id = ?",
                             (block - max(0, allowed), cur.key.key_id))
        return cur.remaining > 0

    def _retire(self, cur: _Current) -> None:
        self._db.execute("UPDATE data_keys SET retired_at = ?, use_count = use_count - ? "
                         "WHERE key_id = ? AND retired_at IS NULL", (self._clock(), cur.remaining, cur.key.key_id))
        cur.remaining = 0

    def _give_back_reservations(self) -> None:
        for cur in self._current.values():
            self._give_back(cur)

    def _give_back(self, cur: _Current) -> None:
        if cur.remaining:
            self._db.execute("UPDATE data_keys SET use_count = use_count - ? WHERE key_id = ?",
                             (cur.remaining, cur.key.key_id))
            cur.remaining = 0

    def _unwrap(self, key_id: str, scope: str, kek_name: str, wrapped: str, reason: str) -> bytes:
        try:
            plain = self.kms.unwrap(kek_name, wrapped.encode("ascii"))
        except KmsError:
            raise
        except Exception as exc:  # a KMS plug-in's own failure: still fail closed, as unavailable
            raise KmsError(f"KMS failed to unwrap data key {key_id} ({type(exc).__name__})") from None
        prefix = key_id.encode() + b"\0"
        if not plain.startswith(prefix) or len(plain) != len(prefix) + 32:
            raise KeyUnavailable(f"wrapped data key {key_id} does not belong to that key id")
        self._unwraps += 1
        if self.on_unwrap is not None:
            self.on_unwrap(key_id, scope, reason)  # an audit failure fails the unwrap: closed, not silent
        return plain[len(prefix):]

    def _remember(self, key_id: str, entry: tuple[str, bytes | None]) -> None:
        with self._lock:
            self._cache[key_id] = entry
            self._cache.move_to_end(key_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _read_epoch(self) -> int:
        return int(self._db.execute("SELECT value FROM keystore_meta WHERE name = 'key_epoch'").fetchone()[0])

    def _bump_epoch(self) -> None:
        self._epoch = self._db.execute(
            "UPDATE keystore_meta SET value = value + 1 WHERE name = 'key_epoch' RETURNING value").fetchone()[0]

    def _revalidate(self, *, wait: bool) -> None:
        """Drop every cached key if another process shredded or rotated since we last looked. Without `wait`, only
        if the connection is free: a key transaction under way looks itself before it makes keys (`_mint_queued`),
        so a cached encryption need not wait for its disk sync."""
        if not self._db_lock.acquire(blocking=wait):
            return
        try:
            self._revalidate_locked()
        finally:
            self._db_lock.release()

    def _revalidate_locked(self) -> None:
        with self._lock:
            self._next_check = time.monotonic() + self.revalidate_after
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                return
            self._data_version = version
            epoch = self._read_epoch()
            if epoch != self._epoch:
                self._epoch = epoch
                self._give_back_reservations()
                self._current.clear()
                self._cache.clear()
                self._erased_scopes = None
