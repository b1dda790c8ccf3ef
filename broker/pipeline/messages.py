"""Kafka record encoding: compact JSON values, linkage-token keys, operational headers.

Pure, so the planners (broker/pipeline/*_plan.py) can build and measure every message before the shell sends one;
broker/service/messages.py re-exports it for the shell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One Kafka record a plan puts on a topic: the shell sends it as it is."""

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


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
            text: str = value.decode()  # aiokafka's headers: (str, bytes) pairs
            return text
    return None
