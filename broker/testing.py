"""Test helpers shipped in the wheel, for adapter authors outside this repository (adapters/README.md, "Test it").

`assert_canonical` completes an adapter's events as the pipeline does (linkage token, receipt time) and asserts each
one valid against the canonical schema. It lives here, not in `adapters.kit`, because it needs the pipeline's identify
stage, and the adapters layer sits below the pipeline (the layer contract in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from broker.pipeline.identify import LinkageKey, complete
from broker.schema.validate import validate_event

# A fictitious key: tokens made with it are for tests only and link nothing real.
TEST_LINKAGE_SECRET = b"test-linkage-key-fictitious-0001"
TEST_RECEIVED_AT = "2026-01-01T00:00:00Z"

__all__ = ["TEST_LINKAGE_SECRET", "assert_canonical"]


def assert_canonical(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete adapter output as the pipeline would and assert every event is schema-valid; returns them.

    The assertion message names each failing event by id and each problem by path and reason (no values)."""
    done = [complete(e, LinkageKey(1, TEST_LINKAGE_SECRET), TEST_RECEIVED_AT) for e in events]
    problems = {d["event_id"]: [str(p) for p in validate_event(d)] for d in done}
    assert not any(problems.values()), problems
    return done
