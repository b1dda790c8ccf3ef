"""Bytes -> the records of a police submission: one JSON object {force_code, system, records} or JSON Lines.

Whatever makes the input as a whole unusable raises AdapterInputError; a JSON Lines line that does not parse only
costs that line. Size, record count and nesting depth are bounded before anything else looks at the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.kit.interface import AdapterInputError, Rejection

MAX_BYTES = 20 * 1024 * 1024
MAX_RECORDS = 10_000
MAX_DEPTH = 16  # a valid submission nests 7 deep (records, persons, address, address_lines); 16 leaves room
TOO_DEEP = f"JSON nested deeper than {MAX_DEPTH} levels"
_BOM = b"\xef\xbb\xbf"


@dataclass
class Input:
    """The parsed input: the submission envelope (empty for JSON Lines) and (position, value) per record."""

    envelope: dict[str, Any]
    records: list[tuple[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)  # JSON Lines lines that are not JSON


_CONTAINERS = (dict, list)  # a tuple: isinstance with it is quicker than with the union dict | list


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when containers nest deeper than `limit`; iterative, so hostile input cannot exhaust the stack."""
    if not isinstance(value, _CONTAINERS):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        below = depth + 1
        stack.extend((c, below) for c in (node.values() if isinstance(node, dict) else node)
                     if isinstance(c, _CONTAINERS))
    return False


def _refuse(source: str, reason: str, record: str = "", field: str = "") -> AdapterInputError:
    return AdapterInputError(Rejection(source, record, field, reason))


class _Unparsed(Exception):
    def __init__(self, pos: int, too_deep: bool) -> None:
        super().__init__(pos)
        self.pos, self.too_deep = pos, too_deep


def _parse(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _Unparsed(exc.pos, "depth" in str(exc)) from None


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield number, line


def _json_lines(data: bytes, source: str, whole: _Unparsed) -> Input:
    out = Input(envelope={})
    for number, line in _lines(data):
        if len(out.records) + len(out.rejections) >= MAX_RECORDS:
            raise _refuse(source, f"more than {MAX_RECORDS} records")
        position = f"line {number}"
        try:
            value = _parse(line)
        except _Unparsed as bad:
            if bad.too_deep:
                raise _refuse(source, TOO_DEEP, position) from None
            out.rejections.append(Rejection(source, position, "", f"not valid JSON (at column {bad.pos + 1})"))
            continue
        if _too_deep(value):
            raise _refuse(source, TOO_DEEP, position)
        out.records.append((position, value))
    if not any(isinstance(value, dict) for _, value in out.records):
        # Not JSON Lines after all: report the document as the single JSON value it was meant to be.
        raise _refuse(source, f"not valid JSON (at byte {whole.pos})")
    return out


def read(data: bytes, source: str) -> Input:
    """The records of a submission, each with its position ("record N" 1-based, or "line N")."""
    if len(data) > MAX_BYTES:
        raise _refuse(source, f"input larger than {MAX_BYTES} bytes")
    data = data.removeprefix(_BOM)
    if not data.strip():
        raise _refuse(source, "empty input")
    try:
        value = _parse(data)
    except _Unparsed as bad:
        if bad.too_deep:
            raise _refuse(source, TOO_DEEP) from None
        return _json_lines(data, source, bad)
    if _too_deep(value):
        raise _refuse(source, TOO_DEEP)
    if not isinstance(value, dict):
        raise _refuse(source, "top-level JSON value must be an object (a submission or a single record)")
    if "records" in value:
        records = value["records"]
        items = [(f"record {i}", r) for i, r in enumerate(records, start=1)] if isinstance(records, list) else []
        return Input(envelope=value, records=items)
    if "reference" in value or "event_type" in value:
        return Input(envelope={}, records=[("line 1", value)])  # JSON Lines of one line
    raise _refuse(source, "JSON object is neither a submission (no 'records') nor a record (no 'reference')")
