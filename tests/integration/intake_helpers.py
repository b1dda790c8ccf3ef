"""Helpers for the intake edge tests: bodies, and what the broker put on Kafka and in its audit store."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from broker.bench.records import BY_NAME
from broker.service.messages import decode
from tests.integration.topics import read_topic

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def patient(n: int) -> dict[str, Any]:
    """The n-th fictitious benchmark Patient (valid), as a dict."""
    return orjson.loads(BY_NAME["health.fhir"].make(n))


def bundle(*resources: dict[str, Any]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "collection",
                         "entry": [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": r}
                                   for i, r in enumerate(resources)]})


def bad_patient(n: int) -> dict[str, Any]:
    """A Patient the adapter rejects (an impossible birth date), otherwise like patient(n)."""
    return {**patient(n), "birthDate": "2015-02-31"}


async def topic_values(bootstrap: str, topic: str) -> list[Any]:
    return [decode(m.value) for m in await read_topic(bootstrap, topic)]


async def topic_bytes(bootstrap: str, topic: str) -> bytes:
    return b"".join((m.key or b"") + (m.value or b"") for m in await read_topic(bootstrap, topic))


async def audit_entries(svc: Any, content_sha256: str | None = None, *, want: int = 1,
                        attempts: int = 80) -> list[dict[str, Any]]:
    """Every audit record the store holds (newest first), once at least `want` are about this input (by hash)."""
    entries: list[dict[str, Any]] = []
    for _ in range(attempts):
        entries = svc.runtime.audit_store.search(limit=10000)
        mine = [e for e in entries if content_sha256 is None
                or e.get("record", {}).get("content_sha256") == content_sha256]
        if len(mine) >= want:
            return entries
        await asyncio.sleep(0.1)
    return entries
