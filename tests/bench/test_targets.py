"""Issue 24's targets judged on a bench report: each by the shape of run that can judge it, never by another."""

from __future__ import annotations

from typing import Any

from broker.bench.targets import verdicts


def report(*, batch: int = 20, rate: float | str = "max", events_per_s: float = 615.0, p99: float = 6280.0,
           ratio: float | None = 0.073, peaks: dict[str, float] | None = None, flat: bool = True,
           soak: bool = False) -> dict[str, Any]:
    peaks = peaks or {"service": 187.4, "worker-0": 160.0, "audit indexer": 171.6, "kafka (JVM)": 240.0}
    out: dict[str, Any] = {
        "batch": batch, "offered_rate": rate,  # as the bench writes it: events/s, or "max"
        "pipeline": {"events_per_s": events_per_s, "latency_ms": {"p99": p99},
                     "memory_mb": {name: {"peak": mb, "flat": flat} for name, mb in peaks.items()}}}
    if ratio is not None:
        out["ratio_to_traffic_baseline"] = ratio
    if soak:
        out["soak"] = {}
    return out


def test_files_of_20_offered_at_once_judge_throughput_and_not_latency() -> None:
    v = verdicts(report())
    assert v["throughput"]["met"] is False and v["throughput"]["measured"] == 615.0
    assert v["latency"]["met"] is None and "one record per request" in v["latency"]["not_judged"]
    assert verdicts(report(events_per_s=2000.0))["throughput"]["met"] is True
    assert verdicts(report(events_per_s=1999.9))["throughput"]["met"] is False


def test_a_paced_run_of_files_of_20_judges_no_throughput() -> None:
    assert verdicts(report(rate=100))["throughput"]["met"] is None


def test_latency_is_judged_at_500_a_second_of_single_records_and_only_if_the_pipeline_kept_up() -> None:
    fast = verdicts(report(batch=1, rate=500, events_per_s=499.0, p99=49.0))["latency"]
    assert fast["met"] is True and fast["measured"] == 49.0
    assert verdicts(report(batch=1, rate=500, events_per_s=499.0, p99=50.0))["latency"]["met"] is False
    behind = verdicts(report(batch=1, rate=500, events_per_s=289.0, p99=20.0))["latency"]
    assert behind["met"] is False and behind["saturated_at_events_per_s"] == 289.0  # a queue's p99 is no verdict
    assert verdicts(report(batch=1, rate=400, p99=10.0))["latency"]["met"] is None
    assert verdicts(report(batch=1, p99=10.0))["throughput"]["met"] is None


def test_the_traffic_ratio_needs_the_baseline() -> None:
    assert verdicts(report(ratio=0.5))["traffic"]["met"] is True
    assert verdicts(report(ratio=0.499))["traffic"]["met"] is False
    none = verdicts(report(ratio=None))["traffic"]
    assert none["met"] is None and "baseline" in none["not_judged"]


def test_memory_counts_every_process_the_jvm_too_and_flatness_only_in_a_soak() -> None:
    assert verdicts(report())["memory"]["met"] is True
    over = report(peaks={"service": 190.0, "kafka (JVM)": 591.5})
    assert verdicts(over)["memory"]["met"] is False and verdicts(over)["memory"]["measured"]["kafka (JVM)"] == 591.5
    assert verdicts(report(flat=False))["memory"]["met"] is True  # a short run's growth is warm-up, not a verdict
    assert verdicts(report(flat=False, soak=True))["memory"]["met"] is False
    assert "flat" in verdicts(report(soak=True))["memory"]["target"]
