"""Secrets the broker holds itself: the linkage HMAC key. Files are created 0600 and refused if others can read them."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from broker.errors import Unavailable
from broker.pipeline.identify import LinkageKey


class SecretError(Unavailable, RuntimeError):
    pass


class InvalidSecret(SecretError):
    """A secret is configured but unreadable (not base64): never replaced by another key, since tokens made with a
    different key would silently fail to link. The message names where the secret came from, never its text."""


def decode_secret(text: bytes | str, where: str) -> bytes:
    """Strict base64 (RFC 4648 alphabet, padding checked); InvalidSecret naming `where` otherwise."""
    try:
        secret = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret(f"{where} is not valid base64") from None
    if not secret:
        raise InvalidSecret(f"{where} is empty")
    return secret


def read_secret_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{path} is readable by group or others (chmod 600 it)")
    return decode_secret(path.read_bytes().strip(), str(path))


def write_secret_file(path: Path, secret: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(secret) + b"\n")


def named_secret(data_dir: Path, name: str, version: int, *, create: bool) -> bytes:
    """A 32-byte secret from MASH_<NAME>_KEY (base64) or <data_dir>/keys/<name>-v<N>.key; created if asked."""
    env = os.environ.get(f"MASH_{name.upper()}_KEY")
    if env:
        return decode_secret(env.strip(), f"MASH_{name.upper()}_KEY")
    path = data_dir / "keys" / f"{name}-v{version}.key"
    if not path.exists():
        if not create:
            raise SecretError(f"no {name} key: set MASH_{name.upper()}_KEY or provide {path}")
        write_secret_file(path, secrets.token_bytes(32))
    return read_secret_file(path)


def linkage_key(data_dir: Path, version: int, *, create: bool) -> LinkageKey:
    """The HMAC key behind linkage tokens."""
    return LinkageKey(version, named_secret(data_dir, "linkage", version, create=create))


def mask_key(data_dir: Path, *, create: bool) -> bytes:
    """The key behind the protocol's keyed-hash mask (distinct from the linkage key: a masked id must not link)."""
    return named_secret(data_dir, "mask", 1, create=create)
