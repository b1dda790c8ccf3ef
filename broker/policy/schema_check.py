"""Validate protocol data against schemas/protocol.schema.json with jsonschema-rs; reasons never quote a value."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jsonschema_rs
import yaml

from broker.policy.errors import ProtocolError
from broker.policy.source import line_of, yaml_path
from broker.schema.loader import load_schema

PROTOCOL_SCHEMA = "protocol.schema.json"
_SAFE_KEY = re.compile(r"[^A-Za-z0-9_.\-]")

# What a pattern wants, by the $defs name or property the pattern sits under.
_PATTERN_HINTS = {
    "slug": "lower-case letters, digits and hyphens, starting with a letter or digit",
    "code": "lower-case letters, digits and underscores, starting with a letter",
    "date": "a date YYYY-MM-DD",
    "version": "a version such as 3, 3.1 or 3.1.0",
    "name": "2-49 lower-case letters, digits, '_' or '-', starting with a letter (it names a Kafka topic)",
    "subscribers": "a subscriber name or role",
    "event_types": "an event type, a family wildcard such as social_care.*, or *",
    "paths": "a field path such as subject.child.given_names[] or payload.summary",
    "public_key": "base64 text",
    "ods_code": "an ODS code (upper-case letters and digits)",
    "urn": "a school URN (6 or 7 digits)",
}
_ONE_OF_HINTS = {
    "subscribers": "give exactly one of public_key or key_file",
    "fields": "give exactly one of classifications or paths",
}


def _key(key: object) -> str:
    return _SAFE_KEY.sub("?", str(key))[:64]


def _hint(schema_path: list[Any]) -> str:
    names = [p for p in schema_path if isinstance(p, str) and p not in ("properties", "items", "$defs", "pattern")]
    for name in reversed(names):
        if name in _PATTERN_HINTS:
            return _PATTERN_HINTS[name]
    return "the required pattern"


def _reason(error: Any) -> str:
    kind, schema_path = error.kind, list(error.schema_path)
    d = kind.as_dict()
    match kind.name:
        case "required":
            return f"required key '{_key(d.get('property'))}' is missing"
        case "additionalProperties":
            return "unknown key(s) " + ", ".join(f"'{_key(k)}'" for k in d.get("unexpected", []))
        case "enum":
            return "must be one of: " + ", ".join(str(o) for o in d.get("options", []))
        case "const":
            return f"must be {str(d.get('expected_value')).lower()}"
        case "type":
            types = d.get("types") or [d.get("expected")]
            return f"wrong type, expected {'/'.join(str(t) for t in types)}"
        case "format":
            return f"not a valid {d.get('format')}"
        case "pattern":
            return f"must be {_hint(schema_path)}"
        case "oneOf" | "oneOfNotValid" | "oneOfMultipleValid":
            owner = next((p for p in reversed(schema_path) if p in _ONE_OF_HINTS), None)
            return _ONE_OF_HINTS.get(owner or "", "matches none or several of the allowed shapes")
        case "not":
            return "'mask' is allowed only with action: mask"
        case "minItems":
            return f"needs at least {d.get('limit')} item(s)"
        case "maxItems":
            return f"has more than {d.get('limit')} items"
        case "minLength":
            return "must not be empty"
        case "maxLength":
            return f"longer than {d.get('limit')} characters"
        case "uniqueItems":
            return "items must be unique"
        case "minProperties":
            return "must not be empty"
        case "propertyNames":
            return f"key must be {_PATTERN_HINTS['code']}"
        case name:
            return f"violates {name}"


@cache
def _validator() -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(load_schema(PROTOCOL_SCHEMA), validate_formats=True)


def check_schema(data: Any, origin: str, node: yaml.Node | None = None) -> None:
    """Raise ProtocolError (first problem, all of them in `.problems`) unless data fits the protocol schema."""
    validator = _validator()
    if validator.is_valid(data):
        return
    problems = []
    for error in validator.iter_errors(data):
        parts = list(error.instance_path)
        problems.append(ProtocolError(origin, yaml_path(parts), _reason(error), line_of(node, parts)))
    problems.sort(key=lambda p: (p.line or 0, p.path))
    first = problems[0]
    first.problems = problems
    raise first
