"""The hash chain, as pure functions.

Each stored entry is {seq, prev_hash, record_sha256, hash, record}:
  record_sha256 = SHA-256(canonical(record))
  hash          = SHA-256(canonical({"seq": seq, "prev_hash": prev_hash, "record_sha256": record_sha256}))
The chain covers the record through its digest, so retention can drop a record's body (a tombstone keeps seq,
prev_hash, record_sha256 and hash) and every link still verifies.

canonical() is JSON with sorted keys, no whitespace, UTF-8. For audit records (ASCII keys, integers, no floats) it is
byte-for-byte RFC 8785 (JCS), so an auditor can recompute hashes with any JCS library.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

GENESIS = "0" * 64


def canonical(value: Any) -> bytes:
    """Sorted-key compact UTF-8 JSON. orjson gives the very bytes of json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False) for the records' types (checked by a property test) at a fraction of the cost."""
    out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if b"null" in out:  # orjson writes NaN and infinity as null: only then is the (slow) walk needed
        _refuse_non_finite(value)
    return out


def _refuse_non_finite(value: Any) -> None:
    """JSON has no NaN or infinity (orjson would write null): refuse them, as json.dumps(allow_nan=False) does."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and infinity have no canonical JSON form")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_non_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_non_finite(item)


def record_digest(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def link_hash(seq: int, prev_hash: str, record_sha256: str) -> str:
    return hashlib.sha256(canonical({"seq": seq, "prev_hash": prev_hash, "record_sha256": record_sha256})).hexdigest()


_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def _hex_link_hash(seq: int, prev_hash: str, record_sha256: str) -> str:
    """`link_hash` for an int seq and two lowercase hex digests: their canonical JSON needs no escaping, and its keys
    sort as written here (tests/audit/test_store_differential.py checks it against `link_hash`)."""
    return hashlib.sha256(b'{"prev_hash":"%s","record_sha256":"%s","seq":%d}'
                          % (prev_hash.encode(), record_sha256.encode(), seq)).hexdigest()


def chain_entry(seq: int, prev_hash: str, record: Mapping[str, Any]) -> dict[str, Any]:
    return extend(seq - 1, prev_hash, [record])[0]


def extend(head_seq: int, head_hash: str, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Entries for `records` appended after the head (seq 0 and GENESIS for an empty chain)."""
    return [entry for entry, _ in extend_canonical(head_seq, head_hash, records)]


def extend_canonical(head_seq: int, head_hash: str,
                     records: Iterable[Mapping[str, Any]]) -> list[tuple[dict[str, Any], bytes]]:
    """As `extend`, each entry with its record's canonical bytes (what a store keeps: serialised once, not twice)."""
    out = []
    # past the head, every prev_hash and digest is a hex SHA-256 this loop made: link bytes formatted straight (an
    # odd head, or a seq past orjson's 64-bit integers, takes the general way and fails or escapes as it did)
    plain = head_seq.__class__ is int and 0 <= head_seq < 2**62 and head_hash.__class__ is str
    link = _hex_link_hash if plain and _HEX_SHA256.fullmatch(head_hash) else link_hash
    for record in records:
        body = canonical(record)
        digest = hashlib.sha256(body).hexdigest()
        head_seq, prev_hash = head_seq + 1, head_hash
        head_hash = link(head_seq, prev_hash, digest)
        out.append(({"seq": head_seq, "prev_hash": prev_hash, "record_sha256": digest, "hash": head_hash,
                     "record": dict(record)}, body))
    return out


def tombstone(entry: Mapping[str, Any], pruned_at: str) -> dict[str, Any]:
    """The entry without its record body: still a verifiable link. Kind and time stay for reporting only."""
    record = entry.get("record") or {}
    return {"seq": entry["seq"], "prev_hash": entry["prev_hash"], "record_sha256": entry["record_sha256"],
            "hash": entry["hash"], "pruned": {"at": pruned_at, "kind": record.get("kind", entry.get("kind")),
                                              "time": record.get("time", entry.get("time"))}}


# The query columns a store copies out of each record to index it. They are a copy of the chained body, not part of
# the chain, so a verifier compares them with the body (broker/audit/verify.py): an edited column is tampering.
INDEX_COLUMNS = ("kind", "time", "subject", "agency", "subscriber", "event_id", "event_type", "rule_id", "decision_id",
                 "outcome", "deadletter_id")
TOMBSTONE_COLUMNS = ("kind", "time")  # what a tombstone keeps of its index (for reporting and retention only)


def index_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The index columns a store derives from a record (with its record_id, the store's repeat filter)."""
    return {"record_id": record.get("record_id"), **{c: record.get(c) for c in INDEX_COLUMNS}}
