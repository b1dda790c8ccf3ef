"""Crypto errors. Messages name key ids, field paths and reasons only: never a value, never key material."""

from __future__ import annotations

from broker.errors import BrokerError, Refused, Unavailable


class CryptoError(BrokerError):
    """Base of every error this package raises."""


class KeyUnavailable(CryptoError, Unavailable):
    """A key exists (or should) but cannot be had now: unknown id, KMS down, bad master key. Fail closed."""


class KeyShredded(KeyUnavailable):
    """The data key was deliberately destroyed (crypto-shredding): what it protected is gone for good."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"data key {key_id} was shredded")
        self.key_id = key_id


class KmsError(KeyUnavailable):
    """The key-encryption-key service refused or failed (network, permissions, unknown key, bad blob)."""


class DecryptionFailed(CryptoError):
    """A ciphertext did not authenticate: tampered, truncated, or moved to another field or event."""

    def __init__(self, path: str, reason: str = "authentication failed") -> None:
        super().__init__(f"cannot decrypt {path}: {reason}")
        self.path = path
        self.reason = reason


class SealError(CryptoError):
    """A delivery could not be sealed or opened."""


class NotForThisSubscriber(SealError):
    """The delivery was sealed to another subscriber's key."""


class ErasedData(CryptoError, Refused):
    """Data about a crypto-shredded child that was received before its erasure: the keystore mints no new data key
    for it (see broker/pipeline/erasure.py), so a resend cannot bring the child's old records back."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id} is about an erased child and was received before the erasure")
        self.event_id = event_id
