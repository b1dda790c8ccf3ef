"""A small subscriber client: opens deliveries sealed to this subscriber's key (see broker/crypto/seal.py).

    client = SubscriberClient.from_file("hub.key")          # base64 text, as `mash-broker keys generate-subscriber-key`
    event = client.open(delivery_bytes)                      # -> dict
    event = client.open_new(delivery_bytes)                  # -> dict, or None for an event id already opened
    token = client.current_token(event["subject"]["linkage"]["token"])  # after person.linked notices

On Apache Kafka each share worker's batch is one Kafka transaction: a Kafka consumer of `sg.deliver.<subscriber>`
that reads with `isolation_level="read_committed"` (as the broker's own readers do) sees each delivery once, and
never one from a batch that was aborted. On a Kafka without transactions (the embedded Tansu) delivery is
at-least-once: a share worker killed between Kafka's acknowledgement and its own bookkeeping sends those deliveries
again. Event ids are deterministic, so `open_new` drops the repeat in either case (it remembers recent ids; repeats
only ever follow closely).

When the broker's identity register finds that two tokens are one child, it says so with a `person.linked` event
(`payload.superseded_token` -> the subject's token). The client remembers the links it has opened, and
`current_token` follows them; it holds them in memory, so an application keeps them with its own case records.

When the broker erases a child (crypto-shredding), every subscriber that was sent anything about it gets a
`person.erased` notice: `payload.erased_tokens` (every token the child carried) and `payload.erased_at`. It opens
like any delivery; the client also remembers it, so `erased_tokens()` lists what to delete and `is_erased(token)`
answers for a token (following person.linked). Sealed copies of earlier deliveries on the Kafka delivery topic can
no longer be opened by anyone without this subscriber's key, but the subscriber's own copies are its to delete.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.errors import NotForThisSubscriber, SealError
from broker.crypto.hpke_keys import PRIVATE_SIZES, SUITES, content_key_info, delivery_aad, load_private_key
from broker.crypto.seal import FORMAT_VERSION

_CACHE = 64
_RECENT_IDS = 100_000


class SubscriberClient:
    """Opens deliveries; caches content keys so HPKE runs once per content key, not per message."""

    def __init__(self, private_key: bytes, subscriber: str | None = None) -> None:
        if len(private_key) not in PRIVATE_SIZES.values():
            try:
                private_key = base64.b64decode(private_key, validate=True)
            except (binascii.Error, ValueError):
                raise SealError("private key is neither raw bytes nor base64 of them") from None
        self.suite, self._private = load_private_key(private_key)
        self.subscriber = subscriber
        self._keys: OrderedDict[tuple[str, str], tuple[str, AESGCM]] = OrderedDict()
        self.content_keys_opened = 0  # HPKE opens so far: once per content key, not per message
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.duplicates_dropped = 0
        self.superseded: dict[str, str] = {}  # token -> the token it was folded into, from person.linked
        self.erased: dict[str, str] = {}  # token -> when the broker erased its child, from person.erased

    @classmethod
    def from_file(cls, path: str | Path, subscriber: str | None = None) -> SubscriberClient:
        return cls(Path(path).read_bytes().strip(), subscriber)

    def open(self, delivery: bytes) -> dict[str, Any]:
        try:
            msg = orjson.loads(delivery)
            fields = (msg["suite"], msg["subscriber"], msg["event_id"], msg["content_key_id"], msg["content_key"],
                      msg["ciphertext"])
            ok = msg.get("mash_delivery") == FORMAT_VERSION and all(isinstance(f, str) for f in fields)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ok = False
        if not ok:
            raise SealError("not a mash-broker delivery (version 1)")
        suite, subscriber, event_id, ck_id, sealed_ck, ciphertext = fields
        if self.subscriber is not None and subscriber != self.subscriber:
            raise NotForThisSubscriber(f"delivery is for subscriber {subscriber}, not {self.subscriber}")
        if suite not in SUITES or suite != self.suite:
            raise NotForThisSubscriber(f"delivery is sealed with suite {suite}; this key is {self.suite}")
        aead = self._content_key(suite, subscriber, ck_id, sealed_ck)
        try:
            raw = base64.b64decode(ciphertext, validate=True)
            plain = aead.decrypt(raw[:12], raw[12:], delivery_aad(subscriber, event_id, ck_id))
        except (binascii.Error, ValueError, InvalidTag):
            raise SealError(f"delivery of event {event_id} failed authentication") from None
        event: dict[str, Any] = orjson.loads(plain)  # authenticated: the broker sealed a canonical event
        if event.get("event_type") == "person.linked":
            old = (event.get("payload") or {}).get("superseded_token")
            new = ((event.get("subject") or {}).get("linkage") or {}).get("token")
            if isinstance(old, str) and isinstance(new, str) and old != new:
                self.superseded[old] = new
        elif event.get("event_type") == "person.erased":
            payload = event.get("payload") or {}
            at, tokens = payload.get("erased_at"), payload.get("erased_tokens")
            if isinstance(at, str) and isinstance(tokens, list):
                for token in tokens:
                    if isinstance(token, str):
                        self.erased.setdefault(token, at)
        return event

    def erased_tokens(self) -> set[str]:
        """Every token named by the person.erased notices opened so far: delete what you hold under them."""
        return set(self.erased)

    def is_erased(self, token: str) -> bool:
        """Whether the child of `token` was erased, as far as the notices opened so far tell."""
        return token in self.erased or self.current_token(token) in self.erased

    def current_token(self, token: str) -> str:
        """The token the child of `token` carries now, following the person.linked notices opened so far."""
        seen = {token}
        while token in self.superseded:
            token = self.superseded[token]
            if token in seen:  # a cycle cannot come from the broker; never loop on one
                break
            seen.add(token)
        return token

    def open_new(self, delivery: bytes) -> dict[str, Any] | None:
        """Like `open`, but None when this event id was already opened (a redelivery): exactly-once for the reader."""
        event = self.open(delivery)
        event_id = str(event.get("event_id"))
        if event_id in self._recent:
            self._recent.move_to_end(event_id)
            self.duplicates_dropped += 1
            return None
        self._recent[event_id] = None
        if len(self._recent) > _RECENT_IDS:
            self._recent.popitem(last=False)
        return event

    def _content_key(self, suite: str, subscriber: str, ck_id: str, sealed_ck: str) -> AESGCM:
        cached = self._keys.get((subscriber, ck_id))
        if cached is not None and cached[0] == sealed_ck:
            self._keys.move_to_end((subscriber, ck_id))
            return cached[1]
        try:
            key = SUITES[suite].decrypt(base64.b64decode(sealed_ck, validate=True), self._private,
                                        content_key_info(subscriber, ck_id, suite))
        except (InvalidTag, binascii.Error, ValueError):  # wrong key, or bound to another subscriber or key id
            raise NotForThisSubscriber("delivery is not sealed to this subscriber's key") from None
        self.content_keys_opened += 1
        aead = AESGCM(key)
        self._keys[(subscriber, ck_id)] = (sealed_ck, aead)
        while len(self._keys) > _CACHE:
            self._keys.popitem(last=False)
        return aead
