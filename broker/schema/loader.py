"""Locate and load the JSON documents in schemas/ (a source checkout or an installed wheel)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

EVENT_SCHEMA = "safeguarding-event.schema.json"
SCHEMA_VERSION = "1.5.0"


@cache
def schema_dir() -> Path:
    """schemas/ beside the packages in a checkout; broker/_schemas inside a wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "schemas", here / "_schemas"):
        if (candidate / EVENT_SCHEMA).is_file():
            return candidate
    raise FileNotFoundError(f"{EVENT_SCHEMA} not found beside the broker package")


@cache
def load_schema(name: str = EVENT_SCHEMA) -> dict[str, Any]:
    return json.loads((schema_dir() / name).read_text(encoding="utf-8"))
