"""The local KMS: master key handling (permissions refused), KEK versions, wrap binding."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import pytest

from broker.crypto.errors import KmsError
from broker.crypto.kms import blob_version
from broker.crypto.kms_local import LocalKms, MasterKeyError, load_master_key, read_master_key_file


def _key_file(path: Path, mode: int, key: bytes | None = None) -> bytes:
    key = key or secrets.token_bytes(32)
    path.write_bytes(base64.b64encode(key) + b"\n")
    path.chmod(mode)
    return key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o602])
def test_master_key_file_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    _key_file(path, mode)
    with pytest.raises(MasterKeyError, match="group or others"):
        read_master_key_file(path)
    with pytest.raises(MasterKeyError, match="group or others"):
        load_master_key(tmp_path, master_key_file=path)


def test_master_key_file_0600_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = _key_file(path, 0o600)
    assert read_master_key_file(path) == key


def test_master_key_from_environment_and_its_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = secrets.token_bytes(32)
    monkeypatch.setenv("MASH_MASTER_KEY", base64.b64encode(key).decode())
    assert load_master_key(tmp_path) == key
    monkeypatch.setenv("MASH_MASTER_KEY", base64.b64encode(key[:16]).decode())
    with pytest.raises(MasterKeyError, match="not 32 bytes"):
        load_master_key(tmp_path)
    monkeypatch.setenv("MASH_MASTER_KEY", "not base64!")
    with pytest.raises(MasterKeyError, match="not base64"):
        load_master_key(tmp_path)


def test_master_key_created_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MASH_MASTER_KEY", raising=False)
    with pytest.raises(MasterKeyError, match="no master key"):
        load_master_key(tmp_path)
    key = load_master_key(tmp_path, create=True)
    path = tmp_path / "keys" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_master_key(tmp_path) == key


def test_wrap_unwrap_rotate_rewrap(kms: LocalKms) -> None:
    secret = os.urandom(40)
    blob = kms.wrap("mash-health", secret)
    assert blob.startswith(b"local:v1:") and secret not in blob
    assert kms.unwrap("mash-health", blob) == secret
    assert kms.rotate("mash-health") == 2
    newer = kms.wrap("mash-health", secret)
    assert blob_version(newer) == 2
    assert kms.unwrap("mash-health", blob) == secret  # old version kept for unwrap
    moved = kms.rewrap("mash-health", blob)
    assert blob_version(moved) == 2 and kms.unwrap("mash-health", moved) == secret
    assert kms.rewrap("mash-health", moved) == moved
    assert kms.describe() == {"kms": "local", "keks": {"mash-health": [1, 2]}}


def test_kek_files_are_private_and_keks_are_not_stored_in_clear(tmp_path: Path, kms: LocalKms) -> None:
    kms.wrap("mash-identity", b"x" * 32)
    path = tmp_path / "keys" / "local-kms.sqlite"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_blob_is_bound_to_its_kek_name_and_tampering_is_caught(kms: LocalKms) -> None:
    blob = kms.wrap("mash-identity", b"k" * 32)
    kms.wrap("mash-health", b"k" * 32)
    with pytest.raises(KmsError):
        kms.unwrap("mash-health", blob)
    tampered = blob[:-6] + (b"AAAA==" if not blob.endswith(b"AAAA==") else b"BBBB==")
    with pytest.raises(KmsError):
        kms.unwrap("mash-identity", tampered)
    with pytest.raises(KmsError, match="version 9"):
        kms.unwrap("mash-identity", blob.replace(b":v1:", b":v9:"))
    with pytest.raises(KmsError):
        kms.unwrap("mash-identity", b"vault:v1:abc")
    with pytest.raises(KmsError):
        kms.wrap("Bad Name", b"k")


def test_another_master_key_opens_nothing(tmp_path: Path, kms: LocalKms) -> None:
    blob = kms.wrap("mash-identity", b"k" * 32)
    other = LocalKms(tmp_path / "keys" / "local-kms.sqlite", secrets.token_bytes(32))
    try:
        with pytest.raises(KmsError, match="master key does not open"):
            other.unwrap("mash-identity", blob)
    finally:
        other.close()
