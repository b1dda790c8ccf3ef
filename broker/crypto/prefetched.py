"""Encryption keys fetched ahead of a pure plan: the key store's calls made off the event loop, the plan on it.

The intake shell (broker/service/intake.py) reads its registers in one worker-thread call. Protecting an event asks
the key store for its data keys (`KeyProvider.encryption_keys`), which may reserve uses or make keys (a synced
SQLite write), so it is blocking I/O too; the encryption itself is CPU work that is cheaper on the event loop than
in a thread contending for the GIL with it. `fetch_protection_keys` makes, in the thread, exactly the calls
`protect_event` would make for each event (`protection_request`: same scope, classifications and event id, so the
same keys and the same counted uses); `PrefetchedKeys` then answers `protect_event` from memory.

Anything not fetched fails closed: a call the plan makes that was not made ahead (another scope, other
classifications, a decryption: a dead letter to seal) raises NotFetched, a KeyUnavailable, never plaintext and
never a key store call on the loop; the intake shell then plans again in a thread with the key store itself. An
event the key store refused (ErasedData: an erased child's old record) is refused again, the same way, when the
plan asks for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from broker.crypto.envelope import protection_request
from broker.crypto.errors import ErasedData, KeyUnavailable
from broker.crypto.provider import DataKey, KeyProvider

_Request = tuple[str, tuple[str, ...], str]  # (scope, classifications, event id)


class NotFetched(KeyUnavailable):
    """The plan asked for a key that was not fetched ahead (see the module docstring)."""


class PrefetchedKeys:
    """A KeyProvider holding the answers to the `encryption_keys` calls made ahead (see the module docstring)."""

    def __init__(self, answers: Mapping[_Request, dict[str, DataKey] | ErasedData]) -> None:
        self._answers = dict(answers)

    def encryption_key(self, scope: str, classification: str) -> DataKey:
        return self.encryption_keys(scope, [classification])[classification]

    def encryption_keys(self, scope: str, classifications: Iterable[str], *,
                        event_id: str | None = None) -> dict[str, DataKey]:
        answer = self._answers.get((scope, tuple(classifications), event_id or ""))
        if answer is None:
            raise NotFetched("a data key the plan needs was not fetched ahead")
        if isinstance(answer, ErasedData):
            raise ErasedData(event_id or "")
        return dict(answer)

    def decryption_key(self, key_id: str, reason: str = "") -> bytes:
        raise NotFetched("no decryption keys are fetched ahead")


def fetch_protection_keys(keys: KeyProvider, events: Iterable[Mapping[str, Any]]) -> PrefetchedKeys:
    """The key store's answers for protecting each of `events` once (blocking: call it off the event loop). Raises
    CryptoError (a key that cannot be had) as `protect_event` would; an erased child's old event is kept as refused."""
    answers: dict[_Request, dict[str, DataKey] | ErasedData] = {}
    for event in events:
        scope, classifications, event_id = protection_request(event)
        try:
            answer: dict[str, DataKey] | ErasedData = keys.encryption_keys(scope, classifications, event_id=event_id)
        except ErasedData as refused:
            answer = refused
        answers[(scope, tuple(classifications), event_id)] = answer
    return PrefetchedKeys(answers)
