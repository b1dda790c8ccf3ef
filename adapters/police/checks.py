"""Validation against schemas/police-pole-input.schema.json with value-free messages.

Messages are built from the error kind (broker.schema.validate's rules), never from jsonschema-rs's own text, which
quotes the offending value. The envelope is checked apart from the records so that one bad record costs only itself.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from typing import Any

import jsonschema_rs

from adapters.kit.interface import FieldProblem
from broker.schema.loader import load_schema
from broker.schema.validate import _path, _reason

INPUT_SCHEMA = "police-pole-input.schema.json"


@cache
def input_schema() -> dict[str, Any]:
    return load_schema(INPUT_SCHEMA)


@cache
def _validators() -> tuple[jsonschema_rs.Draft202012Validator, jsonschema_rs.Draft202012Validator]:
    """(envelope, record): the envelope with records left opaque, and one record by itself."""
    root = input_schema()
    envelope = copy.deepcopy(root)
    envelope["properties"]["records"]["items"] = {}
    record = {"$schema": root["$schema"], "$defs": root["$defs"], "$ref": "#/$defs/record"}
    return (jsonschema_rs.Draft202012Validator(envelope, validate_formats=True),
            jsonschema_rs.Draft202012Validator(record, validate_formats=True))


def _reason_for(kind: Any) -> str:
    if kind.name == "falseSchema":  # the only false schemas forbid incident fields on a public protection notice
        return "not allowed for this event_type"
    if kind.name in ("additionalProperties", "unevaluatedProperties"):
        # the names are the sender's, and may be anything (a name, an NHS number): counted, never quoted
        count = len(kind.as_dict().get("unexpected", []) or [])
        return f"{count or 'an'} unknown field(s) here (not in the POLE input schema)"
    return _reason(kind)


def _first_problem(validator: jsonschema_rs.Draft202012Validator, value: Any) -> FieldProblem | None:
    if validator.is_valid(value):
        return None
    error = next(iter(validator.iter_errors(value)))
    return FieldProblem(_path(list(error.instance_path)), _reason_for(error.kind))


def envelope_problem(envelope: Mapping[str, Any]) -> FieldProblem | None:
    """The first schema violation outside the records, or None."""
    return _first_problem(_validators()[0], envelope)


def record_problem(record: Any) -> FieldProblem | None:
    """The first schema violation of one record (field path like 'persons[2].date_of_birth'), or None."""
    return _first_problem(_validators()[1], record)
