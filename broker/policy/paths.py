"""The distinct leaf paths present in an event: what a decision partitions into released, masked and withheld."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SCALARS = frozenset({str, int, float, bool, type(None)})  # JSON leaves: never a dict or a list


def present_paths(event: Mapping[str, Any]) -> list[str]:
    """The distinct leaf paths present in an event, in document order (`[]` for list items), as
    `broker.schema.classification.iter_leaves` names them. Empty lists and objects have no leaves."""
    out: dict[str, None] = {}  # an ordered set

    # dict/list rather than the Mapping ABC: an ABC isinstance check costs several times more on this hot path; JSON
    # scalars (most values) are told by exact type first, and dict or list subclasses still count as containers.
    def walk(value: Mapping[str, Any], prefix: str) -> None:
        for key, sub in value.items():
            t = type(sub)
            if t in _SCALARS:
                out[f"{prefix}{key}"] = None
            elif t is dict or (t is not list and isinstance(sub, dict)):
                walk(sub, f"{prefix}{key}.")
            elif t is list or isinstance(sub, list):
                walk_list(sub, f"{prefix}{key}[]")
            else:
                out[f"{prefix}{key}"] = None

    def walk_list(items: list[Any], path: str) -> None:
        for sub in items:
            t = type(sub)
            if t in _SCALARS:
                out[path] = None
            elif t is dict or (t is not list and isinstance(sub, dict)):
                walk(sub, path + ".")
            elif t is list or isinstance(sub, list):
                walk_list(sub, path + "[]")
            else:
                out[path] = None

    walk(event if isinstance(event, dict) else dict(event), "")
    return list(out)
