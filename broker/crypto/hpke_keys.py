"""Subscriber key pairs for sealed delivery (RFC 9180 HPKE), as raw bytes.

Suites: "x25519" (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) and "mlkem768-x25519" (the hybrid
ML-KEM-768 + X25519 KEM, same KDF and AEAD), post-quantum safe against harvest-now-decrypt-later.
Raw forms: x25519 private 32 / public 32 bytes; hybrid private = ML-KEM-768 seed (64) || X25519 private (32),
public = ML-KEM-768 encapsulation key (1184) || X25519 public (32).
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import (
    AEAD,
    KDF,
    KEM,
    MLKEM768X25519PrivateKey,
    MLKEM768X25519PublicKey,
    Suite,
)

from broker.crypto.errors import SealError

X25519 = "x25519"
HYBRID = "mlkem768-x25519"
SUITES = {
    X25519: Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM),
    HYBRID: Suite(KEM.MLKEM768_X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM),
}
PUBLIC_SIZES = {X25519: 32, HYBRID: 1184 + 32}
PRIVATE_SIZES = {X25519: 32, HYBRID: 64 + 32}


def _suite_by_size(size: int, sizes: dict[str, int], what: str) -> str:
    for suite, n in sizes.items():
        if n == size:
            return suite
    raise SealError(f"{what} of {size} bytes matches no suite ({', '.join(sizes)})")


def generate_subscriber_keypair(suite: str = X25519) -> tuple[bytes, str]:
    """(raw private key, base64 public key) for a new subscriber."""
    x = X25519PrivateKey.generate()
    if suite == X25519:
        return x.private_bytes_raw(), base64.b64encode(x.public_key().public_bytes_raw()).decode()
    if suite == HYBRID:
        m = MLKEM768PrivateKey.generate()
        public = m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
        return m.private_bytes_raw() + x.private_bytes_raw(), base64.b64encode(public).decode()
    raise SealError(f"unknown suite {suite!r} ({', '.join(SUITES)})")


def load_public_key(raw: bytes, suite: str | None = None) -> tuple[str, Any]:
    """(suite, key object) from a raw public key; the suite is inferred from the length when not given."""
    suite = suite or _suite_by_size(len(raw), PUBLIC_SIZES, "public key")
    if len(raw) != PUBLIC_SIZES.get(suite, -1):
        raise SealError(f"public key is not a {suite} key ({PUBLIC_SIZES.get(suite)} bytes)")
    if suite == X25519:
        return suite, X25519PublicKey.from_public_bytes(raw)
    return suite, MLKEM768X25519PublicKey(MLKEM768PublicKey.from_public_bytes(raw[:1184]),
                                          X25519PublicKey.from_public_bytes(raw[1184:]))


def load_private_key(raw: bytes) -> tuple[str, Any]:
    """(suite, key object) from a raw private key (its length tells the suite)."""
    suite = _suite_by_size(len(raw), PRIVATE_SIZES, "private key")
    if suite == X25519:
        return suite, X25519PrivateKey.from_private_bytes(raw)
    return suite, MLKEM768X25519PrivateKey(MLKEM768PrivateKey.from_seed_bytes(raw[:64]),
                                           X25519PrivateKey.from_private_bytes(raw[64:]))


def content_key_info(subscriber: str, content_key_id: str, suite: str) -> bytes:
    """HPKE info: binds a sealed content key to its subscriber, id and suite."""
    return f"mash-broker content key v1\x1f{subscriber}\x1f{content_key_id}\x1f{suite}".encode()


def delivery_aad(subscriber: str, event_id: str, content_key_id: str) -> bytes:
    return f"mash-delivery-v1\x1f{subscriber}\x1f{event_id}\x1f{content_key_id}".encode()
