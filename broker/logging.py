"""Structured JSON logs (structlog) with a processor that keeps classified values out of every line.

Redaction works on three levels: a canonical event anywhere in a log call is replaced by its operational summary;
any key that the schema classifies as personal (family_name, nhs_number, postcode, ...) is masked wherever it
appears; and free strings are scrubbed of NHS-number-like and postcode-like tokens as a last line of defence.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from functools import cache
from typing import Any

import structlog

from broker.schema.classification import field_classes, leaf_markers
from broker.schema.loader import load_schema

# Generic words the broker's own log calls use as keys, with value-free content (their values are still scrubbed).
_LOG_VOCABULARY = {"reason", "kind", "name", "category", "categories", "setting", "role", "year", "start", "end"}
# Keys the logging pipeline itself puts on every line (log level, time, message, logger): never redacted, though the
# schema has a leaf of the same name (risk.level, sensitive_operational since 1.2.0), or no line would say its level.
_LOG_STRUCTURE = {"level", "timestamp", "event", "logger"}
_NHS_LIKE = re.compile(r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b")
_POSTCODE_LIKE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", re.IGNORECASE)


@cache
def personal_keys() -> frozenset[str]:
    """Property names that are non-operational in every event type where they occur. sensitive_operational counts
    as personal: a log line must not say a child's risk level, consent or objection, or the clinic's system.
    Names of fields the schema marks as able to hold special category or criminal offence data (risk `categories`,
    a related person's `role`, `factors`) are personal whatever the log vocabulary says."""
    labels: dict[str, set[str]] = {}
    marked: set[str] = set()
    for event_type in load_schema()["$defs"]["event_type"]["enum"]:
        for path, label in field_classes(event_type).items():
            labels.setdefault(_name(path), set()).add(label)
        marked |= {_name(path) for path in leaf_markers(event_type)}
    containers = {"child", "person", "related_people", "addresses", "superseded", "local_ids"}
    return frozenset({k for k, ls in labels.items() if "operational" not in ls} - _LOG_VOCABULARY - _LOG_STRUCTURE
                     | containers | marked)


def _name(path: str) -> str:
    return path.replace("[]", "").rsplit(".", 1)[-1]


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _POSTCODE_LIKE.sub("[postcode]", _NHS_LIKE.sub("[number]", value))
    if isinstance(value, Mapping):
        if "event_type" in value and "subject" in value:
            linkage = value.get("subject", {}).get("linkage", {}) if isinstance(value.get("subject"), Mapping) else {}
            return {"event_id": value.get("event_id"), "event_type": value.get("event_type"),
                    "subject": linkage.get("token") if isinstance(linkage, Mapping) else None}
        return {k: "[redacted]" if k in personal_keys() else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_personal_data(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: the last word before rendering."""
    return {k: "[redacted]" if k in personal_keys() else _scrub(v) for k, v in event_dict.items()}


def configure(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
