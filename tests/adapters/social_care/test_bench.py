"""Benchmarks: `.venv/bin/pytest tests/adapters/social_care --benchmark-enable -k bench`; disabled, each body runs
once. Measured on the 2-core development machine: about 110 us per CIN event, 130 us per SSDA903 episode row."""

from __future__ import annotations

from pathlib import Path

from adapters.social_care.cin import ADAPTER as CIN
from adapters.social_care.ssda903 import ADAPTER as SSDA903
from tests.adapters.social_care.builders import CSV_CTX, CTX, child, identifiers, message


def test_bench_cin_census_of_200_children(benchmark) -> None:
    data = message(*[child(identifiers(la_id=f"TESTCHILD{n:04d}")) for n in range(200)])
    out = benchmark(CIN.adapt, data, CTX)
    assert len(out.events) == 1800 and out.rejections == []


def test_bench_real_ssda903_episodes_file(benchmark, external_cases: Path) -> None:
    data = (external_cases / "social_care" / "903-episodes.csv").read_bytes()
    out = benchmark(SSDA903.adapt, data, CSV_CTX)
    assert len(out.events) == 8687 and out.rejections == []
