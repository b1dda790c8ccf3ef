"""Kafka record encoding: compact JSON values, linkage-token keys, operational headers."""

from __future__ import annotations

from typing import Any

import orjson


def encode(value: Any) -> bytes:
    return orjson.dumps(value)


def decode(data: bytes | None) -> Any:
    return orjson.loads(data or b"null")


def event_headers(event: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [("event_id", event["event_id"].encode()), ("event_type", event["event_type"].encode()),
            ("schema_version", event["schema_version"].encode())]


def header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode()
    return None
