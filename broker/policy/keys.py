"""Subscriber public keys: inline base64 checked at load, key files read only when a delivery is sealed.

A key file may hold base64 text of the raw key, the raw bytes, or (x25519) a PEM SubjectPublicKeyInfo. An absent
file is not a load error, so a protocol can be checked and tested before keys are issued; sealing fails instead.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from broker.policy.codes import KEY_SUITES
from broker.policy.errors import PolicyError
from broker.policy.model import Subscriber


class SubscriberKeyError(PolicyError):
    """No usable public key for a subscriber: never deliver in plaintext instead."""


def decode_key(data: bytes, suite: str) -> bytes | None:
    """Raw public key from base64 text, raw bytes or PEM; None if it is none of these or has the wrong length."""
    want = KEY_SUITES[suite]
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text)
        except ValueError:
            return None
        if not isinstance(key, X25519PublicKey) or suite != "x25519":
            return None
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raw = data
    return raw if len(raw) == want else (data if len(data) == want else None)


def read_public_key(sub: Subscriber) -> bytes:
    if sub.public_key_b64 is not None:
        key = decode_key(sub.public_key_b64.encode(), sub.key_suite)
        source = "inline public_key"
    else:
        assert sub.key_file is not None
        source = f"key file {sub.key_file}"
        try:
            key = decode_key(sub.key_file.read_bytes(), sub.key_suite)
        except FileNotFoundError:
            raise SubscriberKeyError(f"subscriber {sub.name}: {source} not found") from None
        except OSError as exc:
            raise SubscriberKeyError(f"subscriber {sub.name}: {source} unreadable ({exc.strerror})") from None
    if key is None:
        raise SubscriberKeyError(f"subscriber {sub.name}: {source} is not a {sub.key_suite} public key "
                                 f"({KEY_SUITES[sub.key_suite]} bytes, base64 or PEM)")
    return key


def key_problems(subscribers: list[Subscriber]) -> list[str]:
    """Why each subscriber could not be sealed to now (empty when all keys are usable): for doctor and start-up."""
    problems = []
    for sub in subscribers:
        try:
            read_public_key(sub)
        except SubscriberKeyError as exc:
            problems.append(str(exc))
    return problems
