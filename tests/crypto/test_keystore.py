"""The data-key store: rotation by use count and age, KEK rotation and rewrap, bounded cache, status."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from broker.crypto import KeyShredded, KeyStore, KeyUnavailable, protect_event, reveal_event
from broker.crypto.kms_local import LocalKms
from tests.crypto.conftest import Clock

TOKEN = "lt1_FictitiousChildToken0000000001"


def _uses(path: Path, key_id: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT use_count FROM data_keys WHERE key_id = ?", (key_id,)).fetchone()[0]


def test_rotation_by_use_count_keeps_old_keys_for_decryption(tmp_path: Path, kms: LocalKms) -> None:
    path = tmp_path / "dk.sqlite"
    store = KeyStore(path, kms, max_uses=3)
    try:
        ids = [store.encryption_key(TOKEN, "identity").key_id for _ in range(7)]
        assert ids[0] == ids[1] == ids[2] != ids[3]
        assert ids[3] == ids[4] == ids[5] != ids[6]
        assert _uses(path, ids[0]) == 3
        assert len(store.decryption_key(ids[0])) == 32  # the retired key still decrypts
    finally:
        store.close()
    assert _uses(path, ids[6]) == 1  # the unused reservation was given back on close


def test_use_count_limit_holds_across_reservation_blocks_and_processes(tmp_path: Path, kms: LocalKms) -> None:
    path = tmp_path / "dk.sqlite"
    a = KeyStore(path, kms, max_uses=2500)
    ids = {a.encryption_key(TOKEN, "health").key_id for _ in range(2000)}
    assert len(ids) == 1
    a.close()  # gives back the unused part of its reservation
    b = KeyStore(path, kms, max_uses=2500)
    try:
        ids_b = [b.encryption_key(TOKEN, "health").key_id for _ in range(501)]
        assert ids_b[:500] == [next(iter(ids))] * 500  # the same key, picked up by another process
        assert ids_b[500] not in ids
        assert _uses(path, ids_b[0]) == 2500
    finally:
        b.close()


def test_rotation_by_age(store: KeyStore, clock: Clock) -> None:
    old = store.encryption_key(TOKEN, "location")
    clock.now += store.max_age - 1
    assert store.encryption_key(TOKEN, "location").key_id == old.key_id
    clock.now += 2
    new = store.encryption_key(TOKEN, "location")
    assert new.key_id != old.key_id
    assert store.decryption_key(old.key_id) == old.key
    assert store.status()["data_keys"] == {"active": 1, "retired": 1, "shredded": 0}


def test_forced_data_key_rotation(store: KeyStore, patient_event: dict[str, Any]) -> None:
    before = protect_event(patient_event, store)
    retired = store.rotate_data_keys()
    assert retired == 6  # one per classification present
    after = protect_event(patient_event, store)
    path = ("subject", "child", "family_name")
    key_of = lambda e: e[path[0]][path[1]][path[2]].split(":")[2]  # noqa: E731
    assert key_of(before) != key_of(after)
    assert reveal_event(before, store).event == reveal_event(after, store).event == patient_event


def test_kek_rotation_keeps_old_data_readable_and_rewrap_retires_old_versions(
        tmp_path: Path, kms: LocalKms, store: KeyStore, patient_event: dict[str, Any],
        other_child_event: dict[str, Any]) -> None:
    old = protect_event(patient_event, store)
    versions = store.rotate_keks()
    assert versions["mash-identity"] == 2 and versions["mash-narrative"] == 1  # created where absent
    new = protect_event(other_child_event, store)
    status = store.status()
    assert status["kek_versions_in_use"]["mash-identity"] == {"latest": 2, "wrapping": {1: 1, 2: 1}}
    assert status["needing_rewrap"] == 6

    cold = KeyStore(tmp_path / "keys" / "datakeys.sqlite", kms)  # no cached keys: must unwrap under v1 and v2
    assert reveal_event(old, cold).event == patient_event
    assert reveal_event(new, cold).event == other_child_event
    cold.close()

    assert store.rewrap() == 6
    assert store.rewrap() == 0
    assert store.status()["needing_rewrap"] == 0


def test_after_rewrap_old_kek_versions_can_be_dropped(tmp_path: Path, master_key: bytes,
                                                     patient_event: dict[str, Any]) -> None:
    kms_path, dk_path = tmp_path / "kms.sqlite", tmp_path / "dk.sqlite"
    kms = LocalKms(kms_path, master_key)
    store = KeyStore(dk_path, kms)
    protected = protect_event(patient_event, store)
    store.rotate_keks()
    assert store.rewrap() == 6
    store.close()
    kms.close()
    with sqlite3.connect(kms_path) as db:
        db.execute("DELETE FROM keks WHERE version = 1")
    kms = LocalKms(kms_path, master_key)
    cold = KeyStore(dk_path, kms)
    try:
        assert reveal_event(protected, cold).event == patient_event
    finally:
        cold.close()
        kms.close()


def test_rewrap_never_brings_back_a_shredded_key(store: KeyStore, patient_event: dict[str, Any]) -> None:
    protected = protect_event(patient_event, store)
    store.rotate_keks()
    store.shred(patient_event["subject"]["linkage"]["token"])
    assert store.rewrap() == 0
    assert reveal_event(protected, store).shredded


def test_unwrapped_key_cache_is_bounded(tmp_path: Path, kms: LocalKms) -> None:
    writer = KeyStore(tmp_path / "dk.sqlite", kms)
    ids = [writer.encryption_key(f"lt1_FictitiousChild{i:016d}", "identity").key_id for i in range(3)]
    writer.close()
    reader = KeyStore(tmp_path / "dk.sqlite", kms, cache_size=2)
    try:
        for key_id in ids:
            reader.decryption_key(key_id)
        assert reader.status()["cache"] == {"size": 2, "capacity": 2}
        reader.decryption_key(ids[2])  # still cached
        assert reader.unwrap_count() == 3
        reader.decryption_key(ids[0])  # evicted: unwrapped again
        assert reader.unwrap_count() == 4
    finally:
        reader.close()


def test_current_encryption_keys_are_bounded_and_an_evicted_one_gives_back_its_reservation(
        tmp_path: Path, kms: LocalKms) -> None:
    path = tmp_path / "dk.sqlite"
    store = KeyStore(path, kms, cache_size=2)
    try:
        children = [f"lt1_FictitiousChild{i:016d}" for i in range(3)]
        first = store.encryption_key(children[0], "identity").key_id
        for child in children[1:]:
            store.encryption_key(child, "identity")
        assert len(store._current) == 2  # one (child, classification) per entry: never more than cache_size
        assert _uses(path, first) == 1  # evicted: its unused reserved uses were given back at once
        assert store.encryption_key(children[0], "identity").key_id == first  # reloaded from the store
    finally:
        store.close()


def test_keys_for_several_classifications_are_made_in_one_transaction(tmp_path: Path, kms: LocalKms) -> None:
    path = tmp_path / "dk.sqlite"
    store = KeyStore(path, kms)
    commits: list[str] = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql.startswith("COMMIT") else None)
    try:
        keys = store.encryption_keys(TOKEN, ["identity", "health", "identity", "contact"])
        assert set(keys) == {"identity", "health", "contact"} and len(commits) == 1  # three new keys, one commit
        again = store.encryption_keys(TOKEN, ["health", "contact"])
        assert {c: k.key_id for c, k in again.items()} == {c: keys[c].key_id for c in ("health", "contact")}
        assert len(commits) == 1  # reserved uses left: no database write at all
        assert store.encryption_key(TOKEN, "identity").key_id == keys["identity"].key_id
    finally:
        store.close()
    assert _uses(path, keys["health"].key_id) == 2 and _uses(path, keys["identity"].key_id) == 2


def test_a_failed_batch_leaves_no_unstored_key_in_use(tmp_path: Path, kms: LocalKms) -> None:
    path = tmp_path / "dk.sqlite"
    store = KeyStore(path, kms)
    try:
        with pytest.raises(ValueError, match="no data keys for classification"):
            store.encryption_keys(TOKEN, ["identity", "operational"])  # the second fails: the first is rolled back
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT COUNT(*) FROM data_keys").fetchone()[0] == 0
        made = store.encryption_key(TOKEN, "identity")  # a fresh key, and a stored one
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT key_id FROM data_keys").fetchall() == [(made.key_id,)]
    finally:
        store.close()


def test_unknown_and_shredded_keys_are_told_apart(store: KeyStore) -> None:
    key = store.encryption_key(TOKEN, "criminal")
    with pytest.raises(KeyUnavailable, match="not in this keystore") as err:
        store.decryption_key("dk_doesnotexist0000")
    assert not isinstance(err.value, KeyShredded)
    assert store.shred(TOKEN) == 1
    with pytest.raises(KeyShredded):
        store.decryption_key(key.key_id)
    # a new event for a shredded child gets a new key: shredding erases what exists, it does not block intake
    assert store.encryption_key(TOKEN, "criminal").key_id != key.key_id


def test_wrapped_key_is_bound_to_its_key_id(tmp_path: Path, kms: LocalKms) -> None:
    path = tmp_path / "dk.sqlite"
    store = KeyStore(path, kms)
    a = store.encryption_key("lt1_FictitiousChildA00000000000000", "health")
    b = store.encryption_key("lt1_FictitiousChildB00000000000000", "health")
    store.close()
    with sqlite3.connect(path) as db:  # someone with write access copies B's wrapped key onto A's row
        db.execute("UPDATE data_keys SET wrapped = (SELECT wrapped FROM data_keys WHERE key_id = ?) "
                   "WHERE key_id = ?", (b.key_id, a.key_id))
    cold = KeyStore(path, kms)
    try:
        with pytest.raises(KeyUnavailable, match="does not belong"):
            cold.decryption_key(a.key_id)
    finally:
        cold.close()


def test_status_reports_what_an_operator_needs(store: KeyStore, patient_event: dict[str, Any],
                                               other_child_event: dict[str, Any]) -> None:
    protect_event(patient_event, store)
    protect_event(other_child_event, store)
    store.shred(other_child_event["subject"]["linkage"]["token"])
    s = store.status()
    assert s["kms"]["kms"] == "local"
    assert s["scopes_with_keys"] == 1 and s["shredded_scopes"] == 1
    assert s["by_classification"]["identity"] == {"active": 1, "retired": 0, "shredded": 1}
    assert s["rotation"]["active_due"] == 0
    assert patient_event["subject"]["child"]["family_name"] not in str(s)


def test_classification_and_scope_are_checked(store: KeyStore) -> None:
    with pytest.raises(ValueError):
        store.encryption_key(TOKEN, "operational")
    with pytest.raises(ValueError):
        store.encryption_key(TOKEN, "made_up")
    with pytest.raises(ValueError):
        store.encryption_key("", "identity")
