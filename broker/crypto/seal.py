"""Sealed delivery: a released event encrypted so only the subscriber's private key opens it.

HPKE costs ~150-200 us, so it is not run per event. A per-subscriber content key (AES-256-GCM, rotated by age and
message count) is sealed once with HPKE; that sealed blob rides along (cached) in every delivery so each message is
self-contained. A delivery is UTF-8 JSON, so clients in any language with HPKE and AES-GCM can open it:

    {"mash_delivery": 1, "suite": "x25519" | "mlkem768-x25519", "subscriber": name, "event_id": uuid,
     "content_key_id": id, "content_key": base64(HPKE base-mode seal of the 32-byte content key,
                                                 info = content_key_info(subscriber, content_key_id, suite)),
     "ciphertext": base64(nonce[12] || AES-256-GCM(content key, event JSON,
                                                  aad = delivery_aad(subscriber, event_id, content_key_id)))}
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.errors import SealError
from broker.crypto.hpke_keys import (
    HYBRID,
    SUITES,
    X25519,
    content_key_info,
    delivery_aad,
    generate_subscriber_keypair,
    load_public_key,
)

__all__ = ["HYBRID", "X25519", "DeliverySealer", "generate_subscriber_keypair"]

DEFAULT_CONTENT_KEY_MAX_AGE = 3600.0
DEFAULT_CONTENT_KEY_MAX_MESSAGES = 100_000
FORMAT_VERSION = 1


class DeliverySealer:
    """Seals released events for one subscriber. Not shared between threads (one per share worker)."""

    def __init__(self, subscriber: str, public_key: bytes | str, suite: str | None = None, *,
                 max_age_seconds: float = DEFAULT_CONTENT_KEY_MAX_AGE,
                 max_messages: int = DEFAULT_CONTENT_KEY_MAX_MESSAGES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        raw = base64.b64decode(public_key, validate=True) if isinstance(public_key, str) else public_key
        if not subscriber:
            raise SealError("empty subscriber name")
        if suite is not None and suite not in SUITES:
            raise SealError(f"unknown suite {suite!r} ({', '.join(SUITES)})")
        self.subscriber = subscriber
        self.suite, self._public = load_public_key(raw, suite)
        self.max_age = max_age_seconds
        self.max_messages = max_messages
        self._clock = clock
        self._aead: AESGCM | None = None
        self._created = 0.0
        self._used = 0
        self._header = b""
        self.content_key_id = ""
        self.hpke_seals = 0  # content keys sealed so far: a metric

    def _rotate(self) -> None:
        key = secrets.token_bytes(32)
        self.content_key_id = "ck_" + secrets.token_urlsafe(12)
        sealed = SUITES[self.suite].encrypt(key, self._public,
                                            content_key_info(self.subscriber, self.content_key_id, self.suite))
        self.hpke_seals += 1
        self._aead, self._created, self._used = AESGCM(key), self._clock(), 0
        # The JSON before the per-event part, built once per content key.
        head = orjson.dumps({"mash_delivery": FORMAT_VERSION, "suite": self.suite, "subscriber": self.subscriber,
                             "content_key_id": self.content_key_id,
                             "content_key": base64.b64encode(sealed).decode()})
        self._header = head[:-1]

    def seal(self, released_event: Mapping[str, Any]) -> bytes:
        event_id = released_event.get("event_id")
        if not isinstance(event_id, str) or not event_id:
            raise SealError("released event has no event_id")
        if self._aead is None or self._used >= self.max_messages or self._clock() - self._created >= self.max_age:
            self._rotate()
        assert self._aead is not None
        self._used += 1
        nonce = os.urandom(12)
        body = self._aead.encrypt(nonce, orjson.dumps(released_event),
                                  delivery_aad(self.subscriber, event_id, self.content_key_id))
        tail = orjson.dumps({"event_id": event_id, "ciphertext": base64.b64encode(nonce + body).decode()})
        return self._header + b"," + tail[1:]
