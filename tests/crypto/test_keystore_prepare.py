"""The key store's intake work of issue 24 (session 13), old against new.

- `prepare_keys` (a request's keys made ready in one transaction, no use counted) then each event's own
  `encryption_keys`, against `encryption_keys` alone, event by event: two stores on their own files, driven by the
  same random script (requests over a few fictitious children, resends of old events, shreds with their events,
  rotations, restarts, the clock moving past the keys' age). Both must hand each event the same keys (by store row,
  key ids being random), refuse the same events (ErasedData), and leave the same rows: every key's scope,
  classification, KEK, creation, retirement, shredding and, once reservations are given back, its use count; the
  same refused event ids; the same unwrap audit.
- `_least_recent` against the expression it replaced, and the store's memory of current keys against a reference
  LRU (collections.OrderedDict) at small capacities: the same keys held, in the same order, the same transactions,
  an evicted key's reserved uses given back at once.
- A key provider's failure during `prepare_keys` fails closed: the error, and no key stored or handed out.

Every child is a fictitious linkage token; no test prints a value.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.crypto import KeyStore
from broker.crypto.errors import ErasedData, KmsError
from broker.crypto.keystore import ENCRYPTING, _least_recent
from broker.crypto.kms_local import LocalKms
from broker.crypto.provider import KeyPreparer
from tests.crypto.conftest import Clock

MAX_AGE = 1_000.0
SEEDS = range(16)  # of the prepare_keys differential (its script: `_script`)
Want = tuple[str, tuple[str, ...], str]  # (scope, classifications, event id) of one event
Row = tuple[Any, ...]


# --- reading a store's file ------------------------------------------------------------------------------------------
def _names(path: Path) -> dict[str, tuple[str, str, int]]:
    """key id -> (scope, classification, how many keys that pair had before it): a store's key ids are random, so
    two stores' keys are compared by these names."""
    seen: Counter[tuple[str, str]] = Counter()
    names: dict[str, tuple[str, str, int]] = {}
    with closing(sqlite3.connect(path)) as db:
        for key_id, scope, classification in db.execute(
                "SELECT key_id, scope, classification FROM data_keys ORDER BY rowid"):
            names[key_id] = (scope, classification, seen[(scope, classification)])
            seen[(scope, classification)] += 1
    return names


def _rows(path: Path, *, use_counts: bool, times: bool = True) -> tuple[list[Row], list[Row]]:
    """Every data key row by name and the refused events. The use count only when reservations were given back
    (`use_counts`: after close), and only of a key not shredded: a shred drops the scope's keys from memory without
    giving their reserved uses back (the key is gone; its count no longer limits anything), so a shredded key's
    count holds whatever was reserved when it was shredded, which depends on when memory last evicted it. Without
    `times` (two stores on the wall clock), whether a key was retired or shredded instead of when."""
    names = _names(path)
    with closing(sqlite3.connect(path)) as db:
        keys = sorted((names[key_id], kek, created if times else None,
                       uses if use_counts and wrapped is not None else None,
                       retired if times else retired is not None, wrapped is None,
                       shredded if times else shredded is not None)
                      for key_id, kek, created, uses, retired, wrapped, shredded in db.execute(
                          "SELECT key_id, kek_name, created_at, use_count, retired_at, wrapped, shredded_at "
                          "FROM data_keys"))
        events = sorted(db.execute("SELECT event_id, scope FROM shredded_events"))
    return keys, events


def _live(path: Path, key_id: str) -> bool:
    with closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT wrapped IS NOT NULL FROM data_keys WHERE key_id = ?", (key_id,)).fetchone()
    return bool(row and row[0])


# --- the differential of prepare_keys --------------------------------------------------------------------------------
class Side:
    """One store of the pair, reopened on its file at each restart; its commits and unwrap audit recorded."""

    def __init__(self, path: Path, kms: LocalKms, clock: Clock, cache_size: int, max_uses: int) -> None:
        self.path, self.kms, self.clock = path, kms, clock
        self.cache_size, self.max_uses = cache_size, max_uses
        self.commits = 0
        self.unwraps: list[tuple[str, str, str]] = []
        self.store = self._open()

    def _open(self) -> KeyStore:
        store = KeyStore(self.path, self.kms, max_age_seconds=MAX_AGE, max_uses=self.max_uses,
                         cache_size=self.cache_size, clock=self.clock,
                         on_unwrap=lambda key_id, scope, why: self.unwraps.append((key_id, scope, why)))
        store._db.set_trace_callback(self._traced)
        return store

    def _traced(self, sql: str) -> None:
        self.commits += sql.startswith("COMMIT")

    def restart(self) -> None:
        self.store.close()
        self.store = self._open()

    def request(self, wanted: list[Want], *, prepare: bool) -> list[dict[str, str] | str]:
        """Each event's keys (raw key ids) or "erased", as intake would ask for them."""
        if prepare:
            self.store.prepare_keys(wanted)
        out: list[dict[str, str] | str] = []
        for scope, classifications, event_id in wanted:
            try:
                keys = self.store.encryption_keys(scope, classifications, event_id=event_id)
            except ErasedData:
                out.append("erased")
                continue
            out.append({c: k.key_id for c, k in keys.items()})
        return out

    def named(self, outcomes: list[dict[str, str] | str]) -> list[dict[str, tuple[str, str, int]] | str]:
        names = _names(self.path)
        return [o if isinstance(o, str) else {c: names[k] for c, k in o.items()} for o in outcomes]

    def audit(self) -> Counter[tuple[tuple[str, str, int], str, str]]:
        names = _names(self.path)
        return Counter((names[key_id], scope, why) for key_id, scope, why in self.unwraps)


def _script(rng: random.Random, children: list[str], steps: int) -> Iterator[tuple[str, Any]]:
    """A random run: requests (new events and resends of old ones), shreds with the child's events, rotations,
    restarts and the clock moving, in the proportions intake and an operator would make them, only faster."""
    sent: dict[str, list[str]] = {c: [] for c in children}
    number = 0
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.7:
            wanted: list[Want] = []
            for _ in range(rng.randint(1, 12)):
                child = rng.choice(children)
                classes = tuple(sorted(rng.sample(ENCRYPTING, rng.randint(0, 4))))
                if sent[child] and rng.random() < 0.25:
                    event_id = rng.choice(sent[child])  # a resend
                else:
                    number += 1
                    event_id = f"00000000-0000-4000-8000-{number:012d}"
                    sent[child].append(event_id)
                wanted.append((child, classes, event_id))
            yield "request", wanted
        elif roll < 0.8:
            child = rng.choice(children)
            yield "shred", (child, list(sent[child]))
        elif roll < 0.85:
            yield "rotate", rng.choice([None, rng.choice(children)])
        elif roll < 0.92:
            yield "restart", None
        else:
            yield "clock", rng.choice([1.0, MAX_AGE / 2, MAX_AGE])


@pytest.mark.parametrize("seed", SEEDS)
def test_prepared_keys_are_the_keys_each_event_would_get_alone(tmp_path: Path, master_key: bytes, seed: int) -> None:
    rng = random.Random(seed)
    cache_size = rng.choice([2, 3, 6, 16, 4096])
    max_uses = rng.choice([2, 3, 1_000_000])
    children = [f"lt1_FictitiousPrepare{seed:03d}{i:05d}" for i in range(rng.randint(2, 7))]
    clock_new, clock_old = Clock(), Clock()
    new = Side(tmp_path / "new.sqlite", LocalKms(tmp_path / "kms-new.sqlite", master_key), clock_new, cache_size,
               max_uses)
    old = Side(tmp_path / "old.sqlite", LocalKms(tmp_path / "kms-old.sqlite", master_key), clock_old, cache_size,
               max_uses)
    assert isinstance(new.store, KeyPreparer)
    handed = 0
    try:
        for step, arg in _script(rng, children, 40):
            if step == "request":
                got_new, got_old = new.request(arg, prepare=True), old.request(arg, prepare=False)
                assert new.named(got_new) == old.named(got_old)  # the same keys, and the same refusals
                for outcome in got_new:
                    if isinstance(outcome, str):
                        continue
                    handed += len(outcome)
                    assert all(_live(new.path, k) for k in outcome.values())  # never a shredded key
            elif step == "shred":
                child, events = arg
                assert new.store.shred_with_report(child, events).data_keys == \
                    old.store.shred_with_report(child, events).data_keys
            elif step == "rotate":
                assert new.store.rotate_data_keys(arg) == old.store.rotate_data_keys(arg)
            elif step == "restart":
                new.restart()
                old.restart()
                assert _rows(new.path, use_counts=True) == _rows(old.path, use_counts=True)
            else:
                clock_new.now += arg
                clock_old.now += arg
            assert _rows(new.path, use_counts=False) == _rows(old.path, use_counts=False)
            assert len(new.store._current) <= max(cache_size, 4)  # bounded (beyond it only by one event's 4 pairs)
        if cache_size == 4096:  # no eviction: a key is unwrapped only after a restart, the same ones either way
            assert new.audit() == old.audit()
            assert new.commits <= old.commits  # one transaction a request for its new keys, not one an event
    finally:
        new.store.close()
        old.store.close()
    assert _rows(new.path, use_counts=True) == _rows(old.path, use_counts=True)  # every use counted, none twice
    assert handed > 0


def test_over_the_seeds_the_script_reaches_every_case(tmp_path: Path, master_key: bytes) -> None:
    """The differential above is only as good as its script: over its seeds it must refuse resends of shredded
    children, give a shredded child's new events new keys, rotate by use and by age, and prepare in one transaction
    what events one by one made in several."""
    seen: Counter[str] = Counter()
    for seed in SEEDS:
        rng = random.Random(seed)
        cache_size = rng.choice([2, 3, 6, 16, 4096])
        max_uses = rng.choice([2, 3, 1_000_000])
        children = [f"lt1_FictitiousPrepare{seed:03d}{i:05d}" for i in range(rng.randint(2, 7))]
        seen["small cache"] += cache_size < 16
        seen["small max_uses"] += max_uses < 10
        sent: set[str] = set()
        shredded: dict[str, set[str]] = {}
        for step, arg in _script(rng, children, 40):
            seen[step] += 1
            if step == "shred":
                shredded.setdefault(arg[0], set()).update(arg[1])
            elif step == "request":
                for child, _, event_id in arg:
                    if event_id in shredded.get(child, ()):
                        seen["resend of a shredded child's event"] += 1
                    elif child in shredded and event_id not in sent:
                        seen["new event of a shredded child"] += 1
                    sent.add(event_id)
    assert min(seen.values()) >= 5, seen
    store = KeyStore(tmp_path / "count.sqlite", LocalKms(tmp_path / "kms.sqlite", master_key))
    commits: list[str] = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql.startswith("COMMIT") else None)
    try:
        wanted = [(f"lt1_FictitiousCount{i:05d}", ("contact", "identity"), f"e{i}") for i in range(7)]
        store.prepare_keys(wanted)
        assert len(commits) == 1  # seven new children: one transaction
        for scope, classes, event_id in wanted:
            store.encryption_keys(scope, classes, event_id=event_id)
        assert len(commits) == 1  # and every event then found its keys in memory
    finally:
        store.close()


def test_a_shredded_childs_key_never_comes_back_from_memory(tmp_path: Path, master_key: bytes) -> None:
    """Keys prepared for a child, then the child shredded by another process (as `mash-broker keys shred` beside
    the service): the old events are refused and get no key, prepared or not; a new event gets a new key."""
    kms = LocalKms(tmp_path / "kms.sqlite", master_key)
    path = tmp_path / "dk.sqlite"
    store = KeyStore(path, kms, revalidate_after=0.0)
    operator = KeyStore(path, kms)
    child = "lt1_FictitiousShredded000000001"
    try:
        store.prepare_keys([(child, ("identity", "health"), "old-1")])
        first = store.encryption_keys(child, ["identity", "health"], event_id="old-1")
        assert operator.shred_with_report(child, ["old-1"]).data_keys == 2
        before = _rows(path, use_counts=False)
        store.prepare_keys([(child, ("identity", "health"), "old-1")])
        assert _rows(path, use_counts=False) == before  # nothing made for the refused resend
        with pytest.raises(ErasedData):
            store.encryption_keys(child, ["identity", "health"], event_id="old-1")
        store.prepare_keys([(child, ("identity", "health"), "new-1")])
        again = store.encryption_keys(child, ["identity", "health"], event_id="new-1")
        assert {k.key_id for k in again.values()}.isdisjoint(k.key_id for k in first.values())
        assert all(_live(path, k.key_id) for k in again.values())
    finally:
        operator.close()
        store.close()


# --- fail closed -----------------------------------------------------------------------------------------------------
class FailingKms:
    """The real KMS, unreachable while `down` (as a KMS outage or a revoked credential makes it)."""

    def __init__(self, inner: LocalKms) -> None:
        self.inner = inner
        self.down = True

    def wrap(self, kek_name: str, plaintext: bytes) -> bytes:
        if self.down:
            raise KmsError("KMS unreachable")
        return self.inner.wrap(kek_name, plaintext)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_kms_failure_while_preparing_fails_closed(tmp_path: Path, master_key: bytes) -> None:
    kms = FailingKms(LocalKms(tmp_path / "kms.sqlite", master_key))
    path = tmp_path / "dk.sqlite"
    store = KeyStore(path, kms)  # the real Kms's other methods, through __getattr__
    wanted = [(f"lt1_FictitiousOutage{i:05d}", ("identity",), f"e{i}") for i in range(3)]
    try:
        with pytest.raises(KmsError):
            store.prepare_keys(wanted)
        assert _rows(path, use_counts=True) == ([], [])  # nothing stored, so nothing can be handed out
        assert not store._current
        kms.down = False
        store.prepare_keys(wanted)
        keys = [store.encryption_keys(s, c, event_id=e)["identity"].key_id for s, c, e in wanted]
        assert len(set(keys)) == 3 and all(_live(path, k) for k in keys)
    finally:
        store.close()


# --- eviction --------------------------------------------------------------------------------------------------------
pair_names = st.tuples(st.sampled_from("abcdef"), st.sampled_from(ENCRYPTING[:3]))


@settings(max_examples=300, deadline=None)
@given(st.lists(pair_names, unique=True, max_size=12), st.sets(pair_names), st.integers(-3, 14))
def test_least_recent_is_the_scan_it_replaced(order: list[tuple[str, str]], keep: set[tuple[str, str]],
                                              count: int) -> None:
    entries: OrderedDict[tuple[str, str], Any] = OrderedDict((p, None) for p in order)
    assert _least_recent(entries, keep, count) == [k for k in entries if k not in keep][:max(0, count)]


class ReferenceLru:
    """What the store's memory of current keys must be: an LRU of `capacity` pairs, touched by every use and every
    prepared pair; a request's missing pairs come in together, after the least recently used others leave."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.transactions = 0
        self.evicted: list[tuple[str, str]] = []

    def use(self, pairs: list[tuple[str, str]], *, prepare: bool = False) -> None:
        missing = []
        for pair in pairs:
            if pair in self.held:
                self.held.move_to_end(pair)
            else:
                missing.append(pair)
        if not missing or (prepare and len(pairs) > self.capacity // 2):
            return
        self.transactions += 1
        for _ in range(max(0, len(self.held) + len(missing) - self.capacity)):
            self.evicted.append(self.held.popitem(last=False)[0])
        self.held.update((p, None) for p in missing)


@pytest.mark.parametrize("seed", range(16))
def test_current_keys_are_an_lru_with_reservations_given_back_on_eviction(tmp_path: Path, kms: LocalKms,
                                                                         seed: int) -> None:
    rng = random.Random(seed)
    capacity = rng.choice([1, 2, 3, 4, 6])
    scopes = [f"lt1_FictitiousLru{seed:03d}{i:05d}" for i in range(max(rng.randint(2, 5), capacity // 3 + 2))]
    classes = ENCRYPTING[:3]
    path = tmp_path / "dk.sqlite"
    store = KeyStore(path, kms, cache_size=capacity)
    commits: list[str] = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql.startswith("COMMIT") else None)
    reference = ReferenceLru(capacity)
    uses: Counter[tuple[str, str]] = Counter()
    key_of: dict[tuple[str, str], str] = {}
    try:
        for _ in range(80):
            scope = rng.choice(scopes)
            wanted = sorted(rng.sample(classes, rng.randint(1, min(capacity, len(classes)))))
            pairs = [(scope, c) for c in wanted]
            if rng.random() < 0.25:
                store.prepare_keys([(scope, wanted, None)])
                reference.use(pairs, prepare=True)
            else:
                got = store.encryption_keys(scope, wanted)
                reference.use(pairs)
                for c, key in got.items():
                    uses[(scope, c)] += 1
                    assert key_of.setdefault((scope, c), key.key_id) == key.key_id  # reloaded, never remade
            assert list(store._current) == list(reference.held)  # the same pairs, least recently used first
            assert len(commits) == reference.transactions
            with closing(sqlite3.connect(path)) as db:
                for pair in reference.evicted:  # out of memory: its stored count is its real uses, no more
                    if pair in key_of and pair not in reference.held:
                        stored = db.execute("SELECT use_count FROM data_keys WHERE key_id = ?",
                                            (key_of[pair],)).fetchone()[0]
                        assert stored == uses[pair]
                for pair in reference.held:  # in memory: its real uses and what is reserved, within one block
                    if pair in key_of:
                        stored = db.execute("SELECT use_count FROM data_keys WHERE key_id = ?",
                                            (key_of[pair],)).fetchone()[0]
                        assert stored == uses[pair] + store._current[pair].remaining
        assert reference.evicted  # the run was long enough to evict
    finally:
        store.close()


def _pairs(wanted: Iterable[Want]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((s, c) for s, cs, _ in wanted for c in cs))


def test_prepared_pairs_are_not_evicted_by_the_request_that_prepared_them(tmp_path: Path, kms: LocalKms) -> None:
    """A full memory, a request naming one child already held (the oldest) and new ones: preparing makes the new
    children's keys and keeps the held one, so no event of the request needs a transaction of its own."""
    store = KeyStore(tmp_path / "dk.sqlite", kms, cache_size=8)
    commits: list[str] = []
    try:
        held = [(f"lt1_FictitiousHeld{i:05d}", ("identity",), f"h{i}") for i in range(8)]
        for scope, classes, event_id in held:
            store.encryption_keys(scope, classes, event_id=event_id)
        store._db.set_trace_callback(lambda sql: commits.append(sql) if sql.startswith("COMMIT") else None)
        wanted = [held[0], *[(f"lt1_FictitiousNew{i:05d}", ("identity",), f"n{i}") for i in range(3)]]
        store.prepare_keys(wanted)
        assert set(_pairs(wanted)) <= set(store._current) and len(commits) == 1
        for scope, classes, event_id in wanted:
            store.encryption_keys(scope, classes, event_id=event_id)
        assert len(commits) == 1
    finally:
        store.close()
