"""The soak's verdicts (broker/bench/soak.py) on made-up series: flat memory, leaks, stalls of intake and pipeline."""

from __future__ import annotations

import pytest

from broker.bench.soak import FLAT_MB, STALL_S, find_stalls, gaps, memory_trend, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("1h", 3600), ("30m", 1800), ("90s", 90), ("600", 600),
                                               ("1h30m", 5400), ("0.5h", 1800), (" 2M ", 120), ("1m30s", 90)])
def test_durations_people_write(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1d", "-5m", "0", "0s", "ten minutes", "1h 30m", "5mm"])
def test_a_duration_that_is_not_one_is_refused_with_its_shape(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def minutes(values: list[float]) -> list[tuple[float, float]]:
    return [(60.0 * i, v) for i, v in enumerate(values)]


def test_memory_that_fills_its_caches_early_then_holds_is_flat():
    # 60 minutes: the page cache fills in the first ten, then the level holds within a few MB
    series = minutes([100 + 3 * i for i in range(10)] + [130 + (i % 3) for i in range(51)])
    trend = memory_trend(series)
    assert trend.flat
    assert trend.start_mb == 100 and trend.peak_mb == 132
    assert abs(trend.slope_mb_per_hour) < FLAT_MB


def test_a_slow_leak_after_the_warm_up_is_not_flat():
    # half a MB a minute after the first quarter: 22 MB over the last three quarters of an hour
    series = minutes([120 + 0.5 * i for i in range(61)])
    trend = memory_trend(series)
    assert not trend.flat
    assert trend.growth_after_warmup_mb == pytest.approx(22.5)
    assert trend.slope_mb_per_hour == pytest.approx(30, rel=0.01)


def test_growth_that_is_given_back_before_the_end_still_counts():
    # a 60 MB bulge in the middle of the run, freed by the end: the end equals the start, but it was not flat
    series = minutes([200.0] * 20 + [260.0] * 20 + [200.0] * 21)
    assert not memory_trend(series).flat


def test_flatness_scales_with_the_level_for_a_large_process():
    # a 1 GB JVM wandering by 40 MB (4%) is flat; a 120 MB process wandering by 40 MB is not
    assert memory_trend(minutes([1000.0] * 20 + [1040.0] * 41)).flat
    assert not memory_trend(minutes([120.0] * 20 + [160.0] * 41)).flat


def test_one_sample_is_flat_and_no_sample_is_an_error():
    assert memory_trend([(0.0, 50.0)]).flat
    with pytest.raises(ValueError):
        memory_trend([])


def test_gaps_include_the_stretch_before_the_first_and_after_the_last_moment():
    assert gaps([20.0, 21.0, 50.0], start=0.0, end=70.0, threshold=15) == [(0.0, 20.0), (21.0, 29.0), (50.0, 20.0)]
    assert gaps([], start=0.0, end=5.0, threshold=15) == []


def steady(start: float, end: float, per_s: float) -> list[float]:
    return [start + i / per_s for i in range(int((end - start) * per_s))]


def test_a_steady_run_has_no_stall():
    sent = steady(0, 600, 100)
    decided = [t + 0.05 for t in sent]
    stalls = find_stalls(start=0, sending_ended=600, end=600.05, accepted_at=[t + 0.01 for t in sent],
                         sent_at=sent, decided_at=decided)
    assert stalls == []


def test_a_pipeline_that_stops_deciding_while_events_wait_has_stalled():
    sent = steady(0, 600, 100)
    # nothing decided from minute 5 to minute 5:30, then the backlog is worked off
    decided = sorted(t + 0.05 if not 300 <= t + 0.05 < 330 else 330.5 for t in sent)
    stalls = find_stalls(start=0, sending_ended=600, end=600.05, accepted_at=sent, sent_at=sent, decided_at=decided)
    assert [s.what for s in stalls] == ["pipeline"]
    assert stalls[0].at_s == pytest.approx(300, abs=0.1) and stalls[0].seconds == pytest.approx(30, abs=0.1)


def test_a_quiet_stretch_with_nothing_owed_is_no_stall():
    # two bursts a minute apart, each decided at once: the pipeline was idle, not stalled
    sent = steady(0, 10, 100) + steady(70, 80, 100)
    decided = [t + 0.05 for t in sent]
    assert find_stalls(start=0, sending_ended=80, end=80.05, accepted_at=sent, sent_at=sent,
                       decided_at=decided, threshold=STALL_S) == []


def test_intake_that_stops_answering_while_sending_has_stalled():
    sent = steady(0, 120, 100)
    answered = sorted(75.0 if 60 <= t < 75 else t + 0.01 for t in sent)  # POSTs from 60 s on answered only at 75 s
    stalls = find_stalls(start=0, sending_ended=120, end=120.05, accepted_at=answered,
                         sent_at=sent, decided_at=[t + 0.05 for t in answered])
    assert [s.what for s in stalls] == ["intake"]
    assert stalls[0].seconds == pytest.approx(15, abs=0.1)


def test_events_never_decided_stall_the_pipeline_until_the_end():
    sent = steady(0, 100, 10)
    decided = [t + 0.05 for t in sent if t < 50]  # the second half never decided; the wait gave up at 200 s
    stalls = find_stalls(start=0, sending_ended=100, end=200, accepted_at=sent, sent_at=sent, decided_at=decided)
    assert [s.what for s in stalls] == ["pipeline"]
    assert stalls[0].at_s == pytest.approx(50, abs=0.2) and stalls[0].seconds == pytest.approx(150, abs=0.2)
