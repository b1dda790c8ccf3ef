"""The distinct leaf paths present in an event: what a decision partitions into released, masked and withheld."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def present_paths(event: Mapping[str, Any]) -> list[str]:
    """The distinct leaf paths present in an event, in document order (`[]` for list items), as
    `broker.schema.classification.iter_leaves` names them. Empty lists and objects have no leaves."""
    out: dict[str, None] = {}  # an ordered set

    # dict/list rather than the Mapping ABC: an ABC isinstance check costs several times more on this hot path
    def walk(value: Mapping[str, Any], prefix: str) -> None:
        for key, sub in value.items():
            if isinstance(sub, dict):
                walk(sub, f"{prefix}{key}.")
            elif isinstance(sub, list):
                walk_list(sub, f"{prefix}{key}[]")
            else:
                out[f"{prefix}{key}"] = None

    def walk_list(items: list[Any], path: str) -> None:
        for sub in items:
            if isinstance(sub, dict):
                walk(sub, path + ".")
            elif isinstance(sub, list):
                walk_list(sub, path + "[]")
            else:
                out[path] = None

    walk(event if isinstance(event, dict) else dict(event), "")
    return list(out)
