"""The default KMS: KEKs in a local SQLite file, each version wrapped under a master key.

The master key (32 bytes, base64) comes from `--master-key-file`, else MASH_MASTER_KEY, else <data_dir>/keys/master.key.
A key file readable by group or others is refused. KEK rotation adds a version; old versions stay for unwrap until
every data key has been re-wrapped (`KeyStore.rewrap`), so rotation needs no downtime.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.errors import KmsError
from broker.crypto.kms import blob_version
from broker.crypto.sqlite import open_key_db

MASTER_KEY_ENV = "MASH_MASTER_KEY"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keks (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    wrapped TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version)
)
"""


class MasterKeyError(KmsError):
    """No usable master key: absent, malformed, or in a file others can read."""


def _decode_master(text: bytes, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"master key in {where} is not base64") from None
    if len(key) != 32:
        raise MasterKeyError(f"master key in {where} is not 32 bytes")
    return key


def read_master_key_file(path: Path) -> bytes:
    """Refuses a file with any group or other permission bit: the master key opens every KEK."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MasterKeyError(f"master key file {path} not found") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MasterKeyError(f"master key file {path} is accessible by group or others (chmod 600 it)")
    return _decode_master(path.read_bytes(), str(path))


def write_master_key_file(path: Path) -> bytes:
    """A new random master key, written 0600 (never overwriting)."""
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(key) + b"\n")
    return key


def load_master_key(data_dir: Path, *, master_key_file: Path | None = None, create: bool = False) -> bytes:
    """The master key: explicit file, else MASH_MASTER_KEY, else <data_dir>/keys/master.key (created if asked)."""
    if master_key_file is not None:
        return read_master_key_file(master_key_file)
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        return _decode_master(env.encode(), MASTER_KEY_ENV)
    default = data_dir / "keys" / "master.key"
    if not default.exists():
        if not create:
            raise MasterKeyError(f"no master key: set {MASTER_KEY_ENV}, pass --master-key-file or provide {default}")
        return write_master_key_file(default)
    return read_master_key_file(default)


class LocalKms:
    """KEKs stored wrapped under the master key. Blobs: `local:v<version>:<base64url(nonce || ciphertext)>`."""

    name = "local"

    def __init__(self, path: Path, master_key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        if len(master_key) != 32:
            raise MasterKeyError("master key must be 32 bytes")
        self._master = AESGCM(master_key)
        self._clock = clock
        self._db = open_key_db(path)
        self._db.execute(_SCHEMA)
        self._keks: dict[tuple[str, int], AESGCM] = {}  # unwrapped KEK versions; a KEK never changes

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _check_name(kek_name: str) -> None:
        if not _NAME.match(kek_name):
            raise KmsError("KEK names are lower-case letters, digits, '-' and '_' (at most 64)")

    def latest_version(self, kek_name: str) -> int:
        row = self._db.execute("SELECT MAX(version) FROM keks WHERE name = ?", (kek_name,)).fetchone()
        return row[0] or 0

    def _kek(self, kek_name: str, version: int) -> AESGCM:
        cached = self._keks.get((kek_name, version))
        if cached is not None:
            return cached
        row = self._db.execute("SELECT wrapped FROM keks WHERE name = ? AND version = ?",
                               (kek_name, version)).fetchone()
        if row is None:
            raise KmsError(f"KEK {kek_name} version {version} is not held by this KMS")
        raw = base64.urlsafe_b64decode(row[0])
        try:
            kek = self._master.decrypt(raw[:12], raw[12:], f"mash-kek\x1f{kek_name}\x1f{version}".encode())
        except InvalidTag:
            raise KmsError(f"the master key does not open KEK {kek_name} version {version}") from None
        self._keks[(kek_name, version)] = cipher = AESGCM(kek)
        return cipher

    def rotate(self, kek_name: str) -> int:
        self._check_name(kek_name)
        kek, nonce = secrets.token_bytes(32), os.urandom(12)
        for _ in range(5):  # another process may add the same version first: take the next one
            version = self.latest_version(kek_name) + 1
            wrapped = self._master.encrypt(nonce, kek, f"mash-kek\x1f{kek_name}\x1f{version}".encode())
            try:
                self._db.execute("INSERT INTO keks (name, version, wrapped, created_at) VALUES (?, ?, ?, ?)",
                                 (kek_name, version, base64.urlsafe_b64encode(nonce + wrapped).decode(),
                                  self._clock()))
            except sqlite3.IntegrityError:
                continue
            return version
        raise KmsError(f"could not add a version to KEK {kek_name}")

    def wrap(self, kek_name: str, plaintext: bytes) -> bytes:
        self._check_name(kek_name)
        version = self.latest_version(kek_name) or self.rotate(kek_name)
        nonce = os.urandom(12)
        sealed = self._kek(kek_name, version).encrypt(nonce, plaintext, f"mash-dek\x1f{kek_name}\x1f{version}".encode())
        return f"local:v{version}:".encode() + base64.urlsafe_b64encode(nonce + sealed)

    def unwrap(self, kek_name: str, blob: bytes) -> bytes:
        version = blob_version(blob)
        if not blob.startswith(b"local:"):
            raise KmsError("wrapped key was not made by the local KMS")
        try:
            raw = base64.urlsafe_b64decode(blob.split(b":", 2)[2])
        except (binascii.Error, ValueError):
            raise KmsError("wrapped key is not base64") from None
        try:
            return self._kek(kek_name, version).decrypt(raw[:12], raw[12:],
                                                        f"mash-dek\x1f{kek_name}\x1f{version}".encode())
        except InvalidTag:
            raise KmsError(f"wrapped key does not open under KEK {kek_name} version {version}") from None

    def rewrap(self, kek_name: str, blob: bytes) -> bytes:
        if blob_version(blob) == self.latest_version(kek_name):
            return blob
        return self.wrap(kek_name, self.unwrap(kek_name, blob))

    def describe(self) -> dict[str, Any]:
        keks: dict[str, list[int]] = {}
        for name, version in self._db.execute("SELECT name, version FROM keks ORDER BY name, version"):
            keks.setdefault(name, []).append(version)
        return {"kms": self.name, "keks": keks}
