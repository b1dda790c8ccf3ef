"""Signed checkpoints over the chain head, as pure functions over Ed25519 keys.

A checkpoint says "the entry with this seq has this hash", signed by the audit signing key. Checkpoints catch what
a chain alone cannot: a chain rewritten from some record onwards, and a chain cut short (truncation).

Signed bytes: canonical({"type": "mash-broker-audit-checkpoint", "v": 1, "seq", "hash", "time", "purpose",
"key_id"}); the signature is base64 Ed25519 over them. Purposes: periodic (every N records), on_demand (before an
export, from the CLI) and prune (the anchor a compacted chain starts from).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.audit.chain import canonical
from broker.errors import InputRejected

CHECKPOINT_TYPE = "mash-broker-audit-checkpoint"
PURPOSES = ("periodic", "on_demand", "prune")


class PublicKeyError(InputRejected, ValueError):
    """A public key that cannot be read (named by source, never by content)."""


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public(public_key)).decode()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint to compare by eye with the published key: 'ed25519:' + 16 hex of SHA-256(raw key)."""
    return "ed25519:" + hashlib.sha256(raw_public(public_key)).hexdigest()[:16]


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Base64 of the raw 32-byte key, or a PEM SubjectPublicKeyInfo."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise PublicKeyError("not an Ed25519 public key")
            return key
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, TypeError) as exc:
        if isinstance(exc, PublicKeyError):
            raise
        raise PublicKeyError("not a base64 raw Ed25519 key or a PEM public key") from None


def _signed_bytes(seq: int, head_hash: str, time: str, purpose: str, kid: str) -> bytes:
    return canonical({"type": CHECKPOINT_TYPE, "v": 1, "seq": seq, "hash": head_hash, "time": time,
                      "purpose": purpose, "key_id": kid})


def sign_checkpoint(private_key: Ed25519PrivateKey, seq: int, head_hash: str, time: str,
                    purpose: str = "periodic") -> dict[str, Any]:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown checkpoint purpose (expected one of {', '.join(PURPOSES)})")
    kid = key_id(private_key.public_key())
    signature = private_key.sign(_signed_bytes(seq, head_hash, time, purpose, kid))
    return {"seq": seq, "hash": head_hash, "time": time, "purpose": purpose, "key_id": kid,
            "signature": base64.b64encode(signature).decode()}


def checkpoint_signature_ok(checkpoint: Mapping[str, Any], public_key: Ed25519PublicKey) -> bool:
    """True only for a well-formed checkpoint signed by this key."""
    try:
        if checkpoint["key_id"] != key_id(public_key) or checkpoint["purpose"] not in PURPOSES:
            return False
        signed = _signed_bytes(int(checkpoint["seq"]), str(checkpoint["hash"]), str(checkpoint["time"]),
                               checkpoint["purpose"], checkpoint["key_id"])
        public_key.verify(base64.b64decode(checkpoint["signature"], validate=True), signed)
    except (KeyError, TypeError, ValueError, binascii.Error, InvalidSignature):
        return False
    return True
