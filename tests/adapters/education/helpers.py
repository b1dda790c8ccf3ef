"""Shared helpers for the education adapter tests: fixture loading and adapting with the canonical check."""

from __future__ import annotations

from pathlib import Path

from adapters.kit.interface import AdaptContext, AdapterOutput, AdapterSettings
from tests.conftest import assert_canonical

FIXTURES = Path(__file__).parent / "fixtures"
RECEIVED = "2025-08-01T00:00:00Z"

# Fictitious UPNs (LA 380, establishment 9999): the check letter passes, or deliberately fails.
VALID_UPN = "P380999924001"
INVALID_UPN = "A380999924002"  # the right check letter is D


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def adapt(adapter, data: bytes, **ctx) -> AdapterOutput:
    """Adapt, then assert every event is schema-valid once the pipeline completes it."""
    settings = {k: ctx.pop(k) for k in list(ctx) if k in AdapterSettings.__dataclass_fields__}
    context = AdaptContext(source="test.xml", received_at=RECEIVED, settings=AdapterSettings(**settings), **ctx)
    out = adapter.adapt(data, context)
    assert_canonical(out.events)
    return out


def by_type(out: AdapterOutput, event_type: str) -> list[dict]:
    return [e for e in out.events if e["event_type"] == event_type]


def codes(event: dict) -> list[str]:
    return [w["code"] for w in event["data_quality"]]
