"""Validate canonical events against the schema, with messages that never repeat a value from the event.

jsonschema-rs's own messages quote the offending value (which may be a name or an NHS number), so messages are
rebuilt here from the error kind alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema_rs

from broker.schema.loader import load_schema

_SAFE_KEY = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # JSON path into the event, e.g. payload.setting
    reason: str  # value-free

    def __str__(self) -> str:
        return f"{self.field or '(event)'}: {self.reason}"


def safe_key(key: object) -> str:
    """A key from input, fit to quote in an error: printable, short."""
    return _SAFE_KEY.sub("?", str(key))[:64]


def _reason(kind: Any) -> str:
    name = kind.name
    d = kind.as_dict()
    match name:
        case "required":
            return f"required property '{safe_key(d.get('property'))}' is missing"
        case "additionalProperties" | "unevaluatedProperties":
            keys = ", ".join(f"'{safe_key(k)}'" for k in d.get("unexpected", []))
            return f"unknown field(s) {keys} (not in the schema)"
        case "enum" | "const":
            return "value is not one of the allowed codes"
        case "type":
            return f"wrong type, expected {'/'.join(d.get('types', []))}"
        case "format":
            return f"not a valid {d.get('format')}"
        case "pattern":
            return "value does not match the required pattern"
        case "maxLength" | "minLength" | "maxItems" | "minItems" | "maximum" | "minimum":
            return f"violates {name} {d.get('limit', '')}".rstrip()
        case _:
            return f"violates {name}"


def _path(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@cache
def _validator() -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(load_schema(), validate_formats=True)


def validate_event(event: Mapping[str, Any]) -> list[FieldError]:
    """All schema violations of one event; empty when valid."""
    v = _validator()
    if v.is_valid(event):
        return []
    return [FieldError(_path(list(e.instance_path)), _reason(e.kind)) for e in v.iter_errors(event)]
