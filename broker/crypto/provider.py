"""The key-provider contract between the envelope functions (pure) and a keystore (the edge that holds keys)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


@dataclass(frozen=True, slots=True)
class DataKey:
    """A 256-bit data-encryption key (DEK) and its id. `aead` is built once so the hot path does not rebuild it."""

    key_id: str
    key: bytes = field(repr=False)
    aead: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise ValueError("a data key is 32 bytes (AES-256)")
        object.__setattr__(self, "aead", AESGCM(self.key))


@runtime_checkable
class KeyProvider(Protocol):
    """Data keys scoped to (scope, classification); the scope of a child's fields is its linkage token."""

    def encryption_key(self, scope: str, classification: str) -> DataKey:
        """The current key for new encryptions. Each call counts one use towards rotation by count: callers ask
        once per protected event (or blob) and classification, and use the key for all its fields in that event."""
        ...

    def encryption_keys(self, scope: str, classifications: Iterable[str], *,
                        event_id: str | None = None) -> dict[str, DataKey]:
        """`encryption_key` for several classifications at once (one use each), so that keys to be made are made
        together. `event_id` names the event to be protected: a provider refuses (ErasedData) an event of a shredded
        scope that was received before the shred."""
        ...

    def decryption_key(self, key_id: str, reason: str = "") -> bytes:
        """The key with this id. Raises KeyShredded if it was shredded, KeyUnavailable if it cannot be had.

        `reason` names the event or decision that needs it, for the unwrap audit hook.
        """
        ...


@runtime_checkable
class KeyPreparer(Protocol):
    """A provider that can make ready, in one transaction, the keys several events are about to ask for."""

    def prepare_keys(self, wanted: Iterable[tuple[str, Iterable[str], str | None]]) -> None:
        """Have in memory, ready for `encryption_keys`, a key for each (scope, classifications, event id) given,
        counting no use: the calls that follow count them, and each still makes its own refusal (an erased child's
        old event gets no key here either). Raises what making them raised (CryptoError)."""
        ...
