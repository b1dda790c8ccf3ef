"""Shared fixtures. Real third-party inputs are read from ../shared/external-cases, never copied here."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL_CASES = ROOT.parent / "shared" / "external-cases"


@pytest.fixture(scope="session")
def external_cases() -> Path:
    if not EXTERNAL_CASES.is_dir():
        pytest.fail(f"external cases not found at {EXTERNAL_CASES} (shared/ must sit beside the project root)")
    return EXTERNAL_CASES


TEST_LINKAGE_SECRET = b"test-linkage-key-fictitious-0001"


def assert_canonical(events: list[dict]) -> list[dict]:
    """Complete adapter output as the pipeline would and assert every event is schema-valid; returns them."""
    from broker.pipeline.identify import LinkageKey, complete
    from broker.schema.validate import validate_event

    done = [complete(e, LinkageKey(1, TEST_LINKAGE_SECRET), "2026-01-01T00:00:00Z") for e in events]
    problems = {d["event_id"]: [str(p) for p in validate_event(d)] for d in done}
    assert not any(problems.values()), problems
    return done
