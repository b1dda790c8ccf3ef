"""Lines of the records in a JSON document, found on demand: a rejection names its record's input line.

JSON parsers (orjson here) keep no positions, so the line map is a second reading of the text with the standard
library's decoder, element by element (`raw_decode` returns where each value ends). It costs about one more parse, so
adapters build it lazily (`locator`): only an input with a rejection pays for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _array_starts(text: str, at: int) -> list[int]:
    """Offsets where the elements of the array at `at` start."""
    if text[at] != "[":
        return []
    starts: list[int] = []
    at = _skip(text, at + 1)
    if text[at] == "]":
        return starts
    while True:
        starts.append(at)
        _, at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if text[at] == ",":
            at = _skip(text, at + 1)
        else:
            return starts


def _member_starts(text: str, at: int, key: str) -> list[int]:
    """Element offsets of the array under `key` in the object at `at` (the last such key, as parsers keep it)."""
    if text[at] != "{":
        return []
    found: list[int] = []
    at = _skip(text, at + 1)
    while text[at] == '"':
        name, at = _DECODER.raw_decode(text, at)  # the key: a JSON string
        at = _skip(text, at)
        if text[at] != ":":
            return found
        at = _skip(text, at + 1)
        if name == key:
            found = _array_starts(text, at)
        _, at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if text[at] != ",":
            break
        at = _skip(text, at + 1)
    return found


def element_lines(data: bytes, key: str | None) -> list[int]:
    """The 1-based line each element starts on: of the top-level object's `key` array, or (key None) of the
    top-level array. [] when the text is not that shape (the caller then names no line)."""
    text = data.decode("utf-8-sig", errors="replace")
    try:
        at = _skip(text, 0)
        starts = _array_starts(text, at) if key is None else _member_starts(text, at, key)
    except (ValueError, IndexError, RecursionError):
        return []
    lines, line, done = [], 1, 0
    for start in starts:
        line += text.count("\n", done, start)
        done = start
        lines.append(line)
    return lines


def locator(data: bytes, key: str | None, position: str, first: int = 0) -> Callable[[str], int | None]:
    """record position -> line, for positions like `position` (a regex with one group: the element's index, counted
    from `first`), e.g. r"Bundle\\.entry\\[(\\d+)\\]" from 0 or r"record (\\d+)" from 1. The map is built on the first
    call. A position "line N" (JSON Lines) is its own line."""
    pattern = re.compile(position)
    found: list[list[int]] = []

    def locate(record: str) -> int | None:
        if record.startswith("line ") and record[5:].isdigit():
            return int(record[5:])
        match = pattern.fullmatch(record)
        if match is None:
            return None
        if not found:
            found.append(element_lines(data, key))
        index = int(match.group(1)) - first
        return found[0][index] if 0 <= index < len(found[0]) else None

    return locate
