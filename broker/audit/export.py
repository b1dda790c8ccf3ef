"""Exports of the audit log: verifiable JSON Lines, CSV for spreadsheets, and a FHIR R4B AuditEvent Bundle (the
subject access report is broker/audit/sar.py).

JSON Lines layout (one JSON object per line):
  1. header      {"type": "mash-broker-audit-export", "version": 2, "exported_at", "public_key", "key_id",
                  "checkpoint_every", "head": {"seq", "hash"}, "hash_rule"}
  2. entries     {"type": "entry", "seq", "prev_hash", "record_sha256", "hash", "record" | "pruned"}
  3. checkpoints {"type": "checkpoint", "seq", "hash", "time", "purpose", "key_id", "signature"}
`mash-broker audit verify EXPORT` (or broker.audit.verify.verify on the parsed lines, with the header's
checkpoint_every and head) checks it standalone. Version 1 files (no checkpoint_every, no head) still read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit.checkpoint import key_id, parse_public_key, public_key_b64
from broker.errors import InputRejected

EXPORT_TYPE = "mash-broker-audit-export"
EXPORT_VERSION = 2
READABLE_VERSIONS = (1, 2)
HASH_RULE = ("entry.hash = SHA-256(canonical({seq, prev_hash, record_sha256})); record_sha256 = "
             "SHA-256(canonical(record)); canonical = JSON, sorted keys, no whitespace, UTF-8 (RFC 8785 for these "
             "records); the first entry's prev_hash is 64 zeros, or the hash in a signed prune checkpoint")


class ExportFormatError(InputRejected, ValueError):
    """An export file that cannot be read: names the line and the problem, never its content."""


# --- JSON Lines --------------------------------------------------------------------------------------------------
def write_jsonl(out: TextIO, entries: Iterable[Mapping[str, Any]], checkpoints: Sequence[Mapping[str, Any]],
                public_key: Ed25519PublicKey, exported_at: str, *, checkpoint_every: int = 0,
                head: tuple[int, str] | None = None) -> int:
    """`head`: the last entry written (the export ends there); `checkpoint_every`: the store's periodic interval,
    so the verifier expects a checkpoint at each of its multiples."""
    header = {"type": EXPORT_TYPE, "version": EXPORT_VERSION, "exported_at": exported_at,
              "public_key": public_key_b64(public_key), "key_id": key_id(public_key), "hash_rule": HASH_RULE,
              "checkpoint_every": checkpoint_every}
    if head is not None:
        header["head"] = {"seq": head[0], "hash": head[1]}
    out.write(json.dumps(header, sort_keys=True) + "\n")
    count = 0
    for entry in entries:
        out.write(json.dumps({"type": "entry", **entry}, sort_keys=True, ensure_ascii=False) + "\n")
        count += 1
    for cp in checkpoints:
        out.write(json.dumps({"type": "checkpoint", **cp}, sort_keys=True) + "\n")
    return count


def read_jsonl(lines: Iterable[str]) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(header, entries, checkpoints) in file order. Raises ExportFormatError for a file that is not an export."""
    header: dict[str, Any] | None = None
    entries: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise ExportFormatError(f"line {number}: not JSON") from None
        if not isinstance(item, dict):
            raise ExportFormatError(f"line {number}: not a JSON object")
        kind = item.pop("type", None)
        if header is None:
            if kind != EXPORT_TYPE or item.get("version") not in READABLE_VERSIONS:
                raise ExportFormatError(f"line {number}: not a {EXPORT_TYPE} version "
                                        f"{' or '.join(map(str, READABLE_VERSIONS))} header")
            header = item
        elif kind == "entry":
            entries.append(item)
        elif kind == "checkpoint":
            checkpoints.append(item)
        else:
            raise ExportFormatError(f"line {number}: unknown line type")
    if header is None:
        raise ExportFormatError("empty file: no export header")
    return header, entries, checkpoints


def embedded_public_key(header: Mapping[str, Any]) -> Ed25519PublicKey:
    return parse_public_key(str(header.get("public_key", "")))


def header_checks(header: Mapping[str, Any]) -> dict[str, Any]:
    """verify()'s keyword arguments from an export header: checkpoint_every and head (absent in version 1).
    Raises ExportFormatError for values of the wrong type (never echoing them)."""
    every = header.get("checkpoint_every", 0)
    if not isinstance(every, int) or isinstance(every, bool) or every < 0:
        raise ExportFormatError("header: checkpoint_every is not a whole number")
    head = header.get("head")
    if head is None:
        return {"checkpoint_every": every}
    if not (isinstance(head, Mapping) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str)):
        raise ExportFormatError("header: head is not {seq, hash}")
    return {"checkpoint_every": every, "head": (head["seq"], head["hash"])}


# --- CSV ---------------------------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "seq", "time", "kind", "actor", "subject", "agency", "system", "subscriber", "event_id", "event_type",
    "decision_id", "outcome", "rule_id", "purpose", "lawful_basis", "protocol_id", "protocol_version",
    "fields_released", "fields_masked", "fields_withheld", "deadletter_id", "reason", "key_id", "action", "target",
    "count", "size", "content_sha256", "record_id", "record_sha256", "hash", "prev_hash", "pruned_at",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        value = "; ".join(f"{k} ({v})" for k, v in value.items())
    elif isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    text = str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: quote it so it stays text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(out: TextIO, entries: Iterable[Mapping[str, Any]]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for entry in entries:
        record = dict(entry.get("record") or {})
        pruned = entry.get("pruned") or {}
        row = {**record, "seq": entry["seq"], "record_sha256": entry["record_sha256"], "hash": entry["hash"],
               "prev_hash": entry["prev_hash"], "kind": record.get("kind", pruned.get("kind")),
               "time": record.get("time", pruned.get("time")), "pruned_at": pruned.get("at")}
        writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
        count += 1
    return count

