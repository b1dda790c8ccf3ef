"""Benchmarks: `.venv/bin/pytest tests/adapters/police --benchmark-enable -k bench`; disabled, each body runs once."""

from __future__ import annotations

from adapters.kit.interface import AdaptContext
from adapters.police.pole import ADAPTER
from tests.adapters.police.builders import as_json, as_jsonl, record, submission

RECORDS = [record(reference=f"INC-{i:05d}", vulnerability={"concerns": ["child_concern"], "grading": "medium"})
           for i in range(500)]
CTX = AdaptContext(source="bench.json", received_at="2024-03-02T08:00:00Z")


def test_bench_submission_of_500_records(benchmark) -> None:
    data = as_json(submission(*RECORDS))
    out = benchmark(ADAPTER.adapt, data, CTX)
    assert len(out.events) == 1000 and out.rejections == []


def test_bench_json_lines_of_500_records(benchmark) -> None:
    data = as_jsonl(*RECORDS)
    out = benchmark(ADAPTER.adapt, data, CTX)
    assert len(out.events) == 1000 and out.rejections == []
