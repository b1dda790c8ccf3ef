"""Reading files of canonical events: one JSON object, a JSON array of them, or JSON Lines (by content, not name).

One reader for `mash-broker validate` and `mash-broker policy explain/diff`; each decides what a bad item means.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

NOT_JSON = object()  # stands for a line that does not parse


def read_documents(data: bytes) -> Iterator[tuple[str, Any]]:
    """(position, value): position is "" for a single object, "item N" in an array, "line N" in JSON Lines; value is
    NOT_JSON for a line that does not parse. Items are not checked to be objects: that is the caller's rule."""
    if data.lstrip()[:1] in (b"[", b"{"):
        try:
            whole = orjson.loads(data)
        except orjson.JSONDecodeError:
            whole = None  # perhaps JSON Lines whose first line is an object
        if isinstance(whole, dict):
            yield "", whole
            return
        if isinstance(whole, list):
            yield from ((f"item {i}", item) for i, item in enumerate(whole))
            return
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", orjson.loads(line)
        except orjson.JSONDecodeError:
            yield f"line {number}", NOT_JSON
