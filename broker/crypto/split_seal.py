"""Sealing one blob so that it opens only while every one of several key scopes still has its keys.

A dead letter's input may name several children. It is encrypted once under a fresh content key; that key is split
into XOR shares, one sealed (protect_blob) under the dead-letter scope and one under each child's own scope (its
linkage token). Opening needs every share, so crypto-shredding any one child (or the dead-letter scope, for
retention) makes the whole copy unreadable, with no list of dead letters to find and no coordination with the
keystore beyond what shredding a child already does.

Pure over a KeyProvider, like broker/crypto/envelope.py.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from functools import reduce
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.envelope import DEADLETTER_SCOPE, protect_blob, reveal_blob
from broker.crypto.errors import DecryptionFailed
from broker.crypto.provider import KeyProvider

VERSION = "split-v1"
_KEY_BYTES = 32
_NONCE_BYTES = 12


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _aad(context: str) -> bytes:
    return f"mash-split-v1\x1f{context}".encode()


def _share_context(context: str, scope: str) -> str:
    # binds each share to its blob and its scope, so shares cannot be moved between blobs or scopes
    return f"{context}\x1fshare\x1f{scope}"


def sealed_overhead(scopes: int) -> int:
    """Bytes a split seal adds to base64 of the blob, with room to spare (for size checks before sealing)."""
    return 256 + 320 * (scopes + 1)


def seal_split(data: bytes, context: str, keys: KeyProvider, scopes: Sequence[str]) -> dict[str, Any]:
    """`data` sealed so that it opens only with the keys of DEADLETTER_SCOPE and of every scope in `scopes`."""
    content_key = os.urandom(_KEY_BYTES)
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(content_key).encrypt(nonce, bytes(data), _aad(context))
    all_scopes = [DEADLETTER_SCOPE, *dict.fromkeys(s for s in scopes if s and s != DEADLETTER_SCOPE)]
    shares = [os.urandom(_KEY_BYTES) for _ in all_scopes[1:]]
    shares.insert(0, reduce(_xor, shares, content_key))  # XOR of every share is the content key
    return {
        "seal": VERSION,
        "blob": base64.b64encode(nonce + ciphertext).decode("ascii"),
        "shares": [{"scope": scope, "share": protect_blob(share, _share_context(context, scope), keys, scope=scope)}
                   for scope, share in zip(all_scopes, shares, strict=True)],
    }


def open_split(sealed: dict[str, Any], context: str, keys: KeyProvider) -> bytes:
    """The sealed bytes. Raises KeyShredded when any share's scope was shredded, KeyUnavailable, DecryptionFailed."""
    if sealed.get("seal") != VERSION or not isinstance(sealed.get("shares"), list) or not sealed["shares"]:
        raise DecryptionFailed("split seal")
    content_key = reduce(_xor, (reveal_blob(s["share"], _share_context(context, s["scope"]), keys)
                                for s in sealed["shares"]))
    raw = base64.b64decode(sealed["blob"])
    try:
        return AESGCM(content_key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(context))
    except InvalidTag:
        raise DecryptionFailed("split seal") from None
