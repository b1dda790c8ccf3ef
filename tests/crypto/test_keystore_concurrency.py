"""The key store under many threads (issue 24): a cached encryption never waits behind another scope's key being
made, keys waiting to be made share one transaction, and no key is used before it is stored, or beyond its limit.

A gated KMS holds one key's making inside its transaction (the real LocalKms does the wrapping once the gate opens),
so each test sees the other threads at that moment instead of hoping a race happens."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from broker.crypto import KeyStore
from broker.crypto.kms_local import LocalKms

WAIT_S = 60.0  # a bound on waiting for a condition (a thread blocked forever fails the test instead of hanging it)
CACHED = "lt1_FictitiousChildCached00000001"
NEW = "lt1_FictitiousChildNew000000000001"


class GatedKms:
    """The real KMS, whose next `wrap` (a new data key, inside the key transaction) waits until `release`."""

    def __init__(self, inner: LocalKms) -> None:
        self.inner = inner
        self.armed = False
        self.entered = threading.Event()
        self.gate = threading.Event()

    def arm(self) -> None:
        self.armed = True

    def wrap(self, kek_name: str, plaintext: bytes) -> bytes:
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.gate.wait(WAIT_S)
        return self.inner.wrap(kek_name, plaintext)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _stored(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key_id, use_count FROM data_keys WHERE wrapped IS NOT NULL").fetchall())


def _until(condition: Any) -> None:
    done = threading.Event()
    for _ in range(int(WAIT_S * 100)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
def gated(tmp_path: Path, kms: LocalKms) -> Any:
    gk = GatedKms(kms)
    store = KeyStore(tmp_path / "dk.sqlite", gk)
    yield store, gk, tmp_path / "dk.sqlite"
    gk.gate.set()
    store.close()


def test_a_cached_encryption_does_not_wait_behind_another_scopes_key_being_made(gated: Any) -> None:
    store, kms, _ = gated
    cached = store.encryption_key(CACHED, "identity")
    kms.arm()
    maker, made = _in_thread(store.encryption_key, NEW, "identity")
    assert kms.entered.wait(WAIT_S)  # the new child's key is being made, its transaction open
    user, used = _in_thread(store.encryption_keys, CACHED, ["identity"])
    user.join(WAIT_S)
    assert not user.is_alive(), "a cached key waited for another scope's key transaction"
    assert used["value"]["identity"].key_id == cached.key_id
    assert store.decryption_key(cached.key_id) == cached.key  # and a cached decryption too
    kms.gate.set()
    maker.join(WAIT_S)
    assert made["value"].key_id != cached.key_id


def test_a_key_being_made_is_not_used_by_another_thread_before_it_is_stored(gated: Any) -> None:
    store, kms, path = gated
    kms.arm()
    maker, made = _in_thread(store.encryption_key, NEW, "health")
    assert kms.entered.wait(WAIT_S)
    waiter, waited = _in_thread(store.encryption_key, NEW, "health")
    _until(lambda: len(store._queue) == 1)  # queued behind the open transaction
    assert "value" not in waited and waiter.is_alive()
    assert _stored(path) == {}  # nothing committed yet, and nothing handed out
    kms.gate.set()
    maker.join(WAIT_S)
    waiter.join(WAIT_S)
    key_id = waited["value"].key_id
    assert key_id == made["value"].key_id and key_id in _stored(path)  # the same key, once stored


def test_threads_waiting_for_new_keys_share_one_commit(gated: Any) -> None:
    store, kms, _ = gated
    commits: list[str] = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql.startswith("COMMIT") else None)
    kms.arm()
    first, _ = _in_thread(store.encryption_keys, NEW, ["identity", "health"])
    assert kms.entered.wait(WAIT_S)
    others = [_in_thread(store.encryption_keys, f"lt1_FictitiousChildQueued{i:09d}", ["identity", "contact"])
              for i in range(3)]
    _until(lambda: len(store._queue) == 3)
    kms.gate.set()
    for thread, _ in [(first, None), *others]:
        thread.join(WAIT_S)
    keys = [out["value"] for _, out in others]
    assert len({k[c].key_id for k in keys for c in k}) == 6  # each child its own keys
    assert len(commits) == 2  # the first's transaction, then one for the three that waited (not three)
    for k in keys:
        assert store.decryption_key(k["identity"].key_id) == k["identity"].key


def test_many_threads_never_use_a_key_beyond_its_limit_and_every_use_is_counted(tmp_path: Path,
                                                                                kms: LocalKms) -> None:
    path = tmp_path / "dk.sqlite"
    store = KeyStore(path, kms, max_uses=7)
    handed: list[str] = []
    lock = threading.Lock()

    def use(n: int) -> None:
        for i in range(60):
            scope = NEW if i % 3 else f"lt1_FictitiousChildMany{(n * 60 + i) % 11:010d}"
            got = store.encryption_keys(scope, ["identity", "health"])
            with lock:
                handed.extend(k.key_id for k in got.values())

    threads = [threading.Thread(target=use, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    store.close()
    uses = Counter(handed)
    stored = _stored(path)
    assert max(uses.values()) <= 7  # no key used beyond max_uses, by any thread
    assert all(stored[key_id] >= n for key_id, n in uses.items())  # the stored count bounds real use


def test_every_key_handed_out_is_stored_when_the_process_is_killed(tmp_path: Path, master_key: bytes) -> None:
    """SIGKILL right after threads were handed keys (no close, no give-back): each of them is in the store."""
    path = tmp_path / "dk.sqlite"
    script = textwrap.dedent(f"""
        import os, signal, sys, threading
        from pathlib import Path
        from broker.crypto import KeyStore
        from broker.crypto.kms_local import LocalKms
        kms = LocalKms(Path({str(tmp_path / "kms.sqlite")!r}), bytes.fromhex({master_key.hex()!r}))
        store = KeyStore(Path({str(path)!r}), kms)
        lock = threading.Lock()
        def run(n):
            for i in range(8):
                keys = store.encryption_keys(f"lt1_FictitiousChildKill{{n:03d}}{{i:04d}}", ["identity", "health"])
                with lock:
                    for k in keys.values():
                        sys.stdout.write(k.key_id + " " + k.key.hex() + "\\n")
                    sys.stdout.flush()
        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2], env={**os.environ})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    handed = [line.split() for line in proc.stdout.splitlines()]
    assert len(handed) == 4 * 8 * 2
    store = KeyStore(path, LocalKms(tmp_path / "kms.sqlite", master_key))
    try:
        for key_id, key in handed:
            assert store.decryption_key(key_id).hex() == key
    finally:
        store.close()
