"""The audit record builder: one pure function from a kind and fields to a schema-valid record.

Producers (intake, share workers, the API) build records with `audit_record` and emit them, unchained, to the audit
topic; the audit store gives each its sequence number and hash. The schema (schemas/audit-record.schema.json) has no
field for a name or an identifier, so personal data cannot enter the log through this door. An `event_published`
record's `insight` (1.4.0) holds the codes the performance framework counts by (broker/insight/facts.py), each
pattern-checked here: a postcode district, never a postcode.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from typing import Any

import jsonschema_rs

from broker.errors import InputRejected
from broker.schema.loader import load_schema
from broker.schema.validate import safe_key

AUDIT_SCHEMA = "audit-record.schema.json"

KINDS: tuple[str, ...] = (
    "record_received", "record_adapted", "record_rejected", "deadlettered", "event_published", "decision",
    "delivered", "delivery_read", "delivery_read_up_to", "key_unwrap", "key_shred", "protocol_change", "admin_action",
    "identity_linked", "human_decision", "determination",
    "hub_clock",  # a timeliness clock met or breached (issue 16, broker/service/hub_watch.py): action met|breached
    "insight_read",  # a read or export of /insight (issue 17, broker/web/insight.py): action says what, target which
    # one event's plain withholds, on the audit topic only: the store chains the decisions it stands for (withheld.py)
    "decisions_withheld",
)


class AuditRecordError(InputRejected, ValueError):
    """A record the schema refuses. The message names fields and rules, never a value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid audit record: " + "; ".join(problems))


@cache
def _validator() -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(load_schema(AUDIT_SCHEMA), validate_formats=True)


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error.instance_path) or "(record)"
    kind = error.kind
    d = kind.as_dict()
    match kind.name:
        case "required":
            return f"{where}: required field '{safe_key(d.get('property'))}' is missing"
        case "additionalProperties":
            keys = ", ".join(f"'{safe_key(k)}'" for k in d.get("unexpected", []))
            return f"{where}: unknown field(s) {keys} (the audit schema has no such field)"
        case "enum" | "const":
            return f"{where}: not one of the allowed codes"
        case "type":
            return f"{where}: wrong type, expected {'/'.join(d.get('types', []))}"
        case "pattern":
            return f"{where}: does not match the required pattern (ids, codes and value-free text only)"
        case name:
            return f"{where}: violates {name}"


def validate_record(record: Mapping[str, Any]) -> list[str]:
    """Value-free problems of one audit record; empty when valid."""
    v = _validator()
    if v.is_valid(record):
        return []
    return sorted({_problem(e) for e in v.iter_errors(record)})


@cache
def _batch_validator() -> jsonschema_rs.Draft202012Validator:
    # the record schema itself as `items` (it keeps its $id, so its own $defs resolve): valid exactly when every
    # record is valid under the schema `validate_record` uses
    schema = load_schema(AUDIT_SCHEMA)
    return jsonschema_rs.Draft202012Validator({"$schema": schema["$schema"], "type": "array", "items": schema},
                                              validate_formats=True)


def all_valid(records: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every record is valid, in one call for a batch (the audit store's common case, about 10% cheaper than
    a call per record); `validate_record` names the problems of one that is not."""
    return _batch_validator().is_valid(list(records))


@lru_cache(maxsize=1024)  # a batch's records share one time: parse it once (was 3% of a share worker's CPU)
def normalise_time(value: str) -> str:
    """Any ISO 8601 date-time with a zone -> UTC with milliseconds and 'Z', so times sort as text."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise AuditRecordError(["time: not an ISO 8601 date-time"]) from None
    if parsed.tzinfo is None:
        raise AuditRecordError(["time: has no time zone"])
    return parsed.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


_AS_IS = frozenset({str, int, bool, list, dict})  # what JSON takes as it is: no _plain call (most of a record's fields)


def built_record(kind: str, *, time: str, actor: str, record_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """`audit_record` without the schema check, for a hot path whose records the code builds from fixed kinds and
    fields (the share plan: schema checks were 7% of a share worker's CPU). Safe because the check still happens
    where a record is read from outside: the audit store validates every record before chaining it, and the
    indexer skips (and reports) one it refuses; tests validate every record such a path builds
    (tests/pipeline/test_share_plan_audit.py)."""
    record: dict[str, Any] = {"record_id": record_id or str(uuid.uuid4()), "kind": kind,
                              "time": normalise_time(time), "actor": actor}
    record.update({k: v if v.__class__ in _AS_IS else _plain(v) for k, v in fields.items() if v is not None})
    return record


def audit_record(kind: str, *, time: str, actor: str, record_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A validated audit record. `time` is the caller's (the clock lives at the edge); fields set to None are left
    out; `record_id` defaults to a fresh UUID, and a producer that resends keeps the id so the store drops the copy."""
    record = built_record(kind, time=time, actor=actor, record_id=record_id, **fields)
    problems = validate_record(record)
    if problems:
        raise AuditRecordError(problems)
    return record
