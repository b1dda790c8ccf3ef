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
