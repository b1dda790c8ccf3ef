"""Sealing to subscribers: one sealer per subscriber, made on first use, and which subscribers cannot be sealed to.

A subscriber whose key is unusable has its deliveries held (broker/service/held.py); /readyz names it as degraded.
"""

from __future__ import annotations

from typing import Any

from broker.crypto.seal import DeliverySealer
from broker.logging import get_logger
from broker.policy import Protocol, key_problems

log = get_logger("mash.sealers")


class Sealers:
    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol
        self._sealers: dict[str, DeliverySealer] = {}
        self.faults: dict[str, str] = {}  # subscriber -> why it cannot be sealed to now (check_keys refreshes it)

    def seal_for(self, subscriber: str, released: dict[str, Any]) -> bytes:
        """The released view sealed to the subscriber's public key (fails, never plaintext, without one)."""
        sealer = self._sealers.get(subscriber)
        if sealer is None:
            sub = self._protocol.subscribers[subscriber]
            sealer = self._sealers[subscriber] = DeliverySealer(subscriber, sub.public_key(), sub.key_suite)
        return sealer.seal(released)

    def check_keys(self, *, warn: bool = False) -> dict[str, str]:
        """Which subscribers cannot be sealed to now, and why (one plain warning line each with `warn`)."""
        faults: dict[str, str] = {}
        for sub in self._protocol.subscribers.values():
            if problems := key_problems([sub]):
                faults[sub.name] = problems[0]
                if warn:
                    log.warning("subscriber_key_unusable", subscriber=sub.name, detail=problems[0] +
                                ": its deliveries are held until the key loads; the other subscribers are unaffected")
        self.faults = faults
        return faults
