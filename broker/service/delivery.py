"""Reading a subscriber's delivery topic by cursor, for HTTP pull and server-sent events."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from broker.errors import InputRejected
from broker.kafka.clients import reader
from broker.kafka.scan import EMPTY_POLL_MS

MAX_OFFSET = 2**63 - 1  # Kafka offsets are signed 64-bit: anything larger is no position at all
MAX_PARTITION = 2**31 - 1
MAX_PARTITIONS = 1024  # a cursor names each partition of one delivery topic once; delivery topics have one
CURSOR_PREFIX = "c2."  # signed cursors; an unprefixed cursor is the unsigned base64 JSON of earlier versions
CURSOR_MAC_BYTES = 16
_CURSOR_KEY_LABEL = b"mash-broker delivery cursor signing key v1"


class BadCursor(InputRejected, ValueError):
    """Not a cursor this API issued (undecodable, forged, out of range, or another subscriber's): HTTP 400."""


class StaleCursor(BadCursor):
    """A cursor this API issued, but for positions Kafka no longer holds (before a topic loss, or from an earlier,
    unsigned version): HTTP 410, resume without `after` from the acknowledged cursor."""


def cursor_key(secret: bytes) -> bytes:
    """The cursor signing key, derived from a data-directory secret under its own label (never the secret itself)."""
    return hmac.new(secret, _CURSOR_KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict: only the canonical unpadded encoding decodes (the decoder would skip stray characters and ignore the
    unused low bits of the last one, so other strings would open as the same cursor)."""
    data = base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def _positions(raw: object) -> dict[int, int]:
    """{partition: offset} from decoded JSON, every integer bounded; BadCursor otherwise."""
    if not isinstance(raw, dict) or len(raw) > MAX_PARTITIONS:
        raise BadCursor("cursor is not one this API issued")
    positions: dict[int, int] = {}
    for p, o in raw.items():
        if not isinstance(p, str) or not p.isdigit() or len(p) > 10 or type(o) is not int:
            raise BadCursor("cursor is not one this API issued")
        partition = int(p)
        if partition > MAX_PARTITION or not 0 <= o <= MAX_OFFSET:
            raise BadCursor("cursor is not one this API issued")
        positions[partition] = o
    return positions


def decode_legacy_cursor(cursor: str) -> dict[int, int]:
    """An unsigned cursor of an earlier version (base64 of {"partition": offset}), bounded like a signed one. Used
    only for a cursor the register acknowledged before signing existed; a client presenting one gets StaleCursor."""
    try:  # earlier versions issued padded base64: decoded leniently, it is only ever read from the register
        raw = orjson.loads(base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4)))
    except (binascii.Error, orjson.JSONDecodeError, UnicodeEncodeError, ValueError):
        raise BadCursor("cursor is not one this API issued") from None
    return _positions(raw)


@dataclass(frozen=True, slots=True)
class CursorCodec:
    """Cursors as opaque strings: `c2.<payload>.<mac>`, the payload naming the Kafka epoch and the positions, the
    MAC (HMAC-SHA256, truncated to 128 bits) binding both to the subscriber. Only what this API issued opens, so a
    subscriber cannot ack a position it was never served, and a cursor from before a topic loss is recognised."""

    key: bytes
    epoch: str

    def _mac(self, subscriber: str, payload: str) -> bytes:
        return hmac.new(self.key, f"{subscriber}\n{payload}".encode(), hashlib.sha256).digest()[:CURSOR_MAC_BYTES]

    def issue(self, subscriber: str, positions: Mapping[int, int]) -> str:
        payload = _b64(orjson.dumps({"e": self.epoch, "p": {str(p): o for p, o in sorted(positions.items())}}))
        return f"{CURSOR_PREFIX}{payload}.{_b64(self._mac(subscriber, payload))}"

    def open(self, subscriber: str, cursor: str | None) -> dict[int, int]:
        """The positions of a cursor this API issued to `subscriber` in this epoch ({} for none)."""
        if not cursor:
            return {}
        if not cursor.startswith(CURSOR_PREFIX):
            decode_legacy_cursor(cursor)  # garbage is a 400; a well-formed unsigned cursor is merely stale
            raise StaleCursor("cursor from an earlier version of this API: pull without `after` to resume from the "
                              "acknowledged cursor")
        payload, _, mac = cursor[len(CURSOR_PREFIX):].partition(".")
        try:
            given = _unb64(mac)
            body = orjson.loads(_unb64(payload))
        except (binascii.Error, orjson.JSONDecodeError, UnicodeEncodeError, ValueError):
            raise BadCursor("cursor is not one this API issued") from None
        if not hmac.compare_digest(given, self._mac(subscriber, payload)):
            raise BadCursor("cursor is not one this API issued")
        if not isinstance(body, dict) or not isinstance(body.get("e"), str):
            raise BadCursor("cursor is not one this API issued")
        if body["e"] != self.epoch:
            raise StaleCursor("cursor from before Kafka lost its topics: its positions no longer exist; pull "
                              "without `after` to resume from the acknowledged cursor")
        return _positions(body.get("p"))


def behind(cursor: Mapping[int, int], acknowledged: Mapping[int, int]) -> list[int]:
    """The partitions where `cursor` is behind `acknowledged` (an absent partition counts as offset 0)."""
    return sorted(p for p, o in acknowledged.items() if cursor.get(p, 0) < o)


PULL_EMPTY_RETRIES = 5  # at most 2 s more of a pull spent waiting for records the end offsets say are there


async def _behind(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    """Is any partition's fetch position short of its end offset?"""
    ends = await consumer.end_offsets(tps)
    positions = [await consumer.position(tp) for tp in tps]
    return any(at < ends.get(tp, 0) for at, tp in zip(positions, tps, strict=True))


class DeliveryReader:
    """One assigned (group-less) consumer per delivery topic, reused across requests under a lock."""

    def __init__(self, bootstrap: str, security: dict[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self.security = security or {}
        self._consumers: dict[str, tuple[AIOKafkaConsumer, asyncio.Lock, list[TopicPartition]]] = {}

    async def _consumer(self, topic: str) -> tuple[AIOKafkaConsumer, asyncio.Lock, list[TopicPartition]]:
        if topic not in self._consumers:
            # read_committed (clients.reader): a share worker's aborted or still-open batch is never served
            consumer = reader(self.bootstrap, **self.security)
            await consumer.start()
            # a group-less consumer knows a topic's partitions only once it has asked for its metadata (scan.py)
            partitions = sorted(await consumer._client._wait_on_metadata(topic) or {0})
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            self._consumers[topic] = (consumer, asyncio.Lock(), tps)
        return self._consumers[topic]

    async def read(self, topic: str, cursor: dict[int, int], limit: int) -> tuple[list[ConsumerRecord], dict[int, int]]:
        """Up to `limit` records after `cursor`, and the cursor after them (unchanged when nothing is new).

        Reads until a poll comes back empty rather than up to the end offsets: the embedded broker's ListOffsets
        counts record batches, not records, so its end offsets cannot be trusted.
        """
        consumer, lock, tps = await self._consumer(topic)
        async with lock:
            position = {tp.partition: cursor.get(tp.partition, 0) for tp in tps}
            for tp in tps:
                consumer.seek(tp, position[tp.partition])
            out: list[ConsumerRecord] = []
            retries = 0
            while len(out) < limit:
                batch = await consumer.getmany(*tps, timeout_ms=EMPTY_POLL_MS, max_records=limit - len(out))
                if not batch:
                    # Apache Kafka's first fetches after a seek can come back empty on a busy host, so an empty
                    # poll ends the read only at the end offsets (read_committed: the last stable offset), or after
                    # a few tries: the embedded broker's end offsets can lie below its true end (scan.py)
                    if retries >= PULL_EMPTY_RETRIES or not await _behind(consumer, tps):
                        break
                    retries += 1
                    continue
                for records in batch.values():
                    for record in records[: limit - len(out)]:
                        out.append(record)
                        position[record.partition] = record.offset + 1
            return out, position

    async def close(self) -> None:
        for consumer, _, _ in self._consumers.values():
            await consumer.stop()
        self._consumers.clear()
