"""The audit signing key at the edge: a PKCS#8 PEM file (0600) in the data directory, its public half beside it.

The public key (audit-signing.pub, base64 of the raw 32 bytes) is what an outside auditor is given, out of band,
to check an export's checkpoints; its key id is printed by `mash-broker audit checkpoint` and `verify`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit.checkpoint import public_key_b64
from broker.errors import Unavailable

SIGNING_KEY_FILE = "audit-signing.key"
PUBLIC_KEY_FILE = "audit-signing.pub"


class SigningKeyMissing(Unavailable, FileNotFoundError):
    pass


def load_signing_key(data_dir: Path, *, create: bool = False) -> Ed25519PrivateKey:
    path = data_dir / SIGNING_KEY_FILE
    if not path.exists():
        if not create:
            raise SigningKeyMissing(f"audit signing key not found: {path}")
        return _create(data_dir)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def _create(data_dir: Path) -> Ed25519PrivateKey:
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(data_dir / SIGNING_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    (data_dir / PUBLIC_KEY_FILE).write_text(public_key_b64(key.public_key()) + "\n")
    return key


def actor_hash_key(signing_key: Ed25519PrivateKey | None) -> bytes:
    """The key of the short hash that stands in the audit actor for an identity provider subject that cannot go there
    as it is (broker/access/principal.py): derived from the audit signing key, so it needs no file of its own, stays
    the same across restarts and is unknown to whoever reads the log."""
    if signing_key is None:
        return b""
    raw = signing_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
    return hashlib.sha256(b"mash-broker audit actor v1\0" + raw).digest()
