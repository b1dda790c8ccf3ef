"""The soak's judgement, as plain functions over what a run recorded: is memory flat, did anything stall.

A soak sends at a steady rate for a long time (`mash-broker bench --soak 1h --rate 100`) while every process's RSS
is sampled; these functions turn the samples and the moments of progress into the verdicts the report prints. They
take numbers, not processes, so each rule is tested on made-up series (tests/bench/test_soak.py).

- Memory is judged after a warm-up: caches (SQLite page caches, the JVM's heap growing to its working size) fill
  early, so the first quarter of the run is left out and the rest must not grow by more than FLAT_MB or FLAT_SHARE of
  its level, whichever is larger. The least-squares slope over that part is reported too, per hour, so a slow leak
  that a short run hides still shows as a number.
- A stall is a stretch of at least STALL_S seconds with no progress: no 202 from intake while a POST was waiting
  for its answer, or no event decided while some accepted event was still waiting for its decisions.
"""

from __future__ import annotations

import bisect
import itertools
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

FLAT_MB = 10.0
FLAT_SHARE = 0.05
STALL_S = 10.0
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """'1h', '90m', '45s', '1h30m', '600' (seconds) -> seconds; ValueError naming the text's shape otherwise."""
    value = text.strip().lower()
    m = _DURATION.fullmatch(value)
    if not value or m is None or not any(m.groups()):
        raise ValueError("a duration is a number of seconds or like 1h, 30m, 90s, 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError("a duration must be more than 0 seconds")
    return total


@dataclass(frozen=True, slots=True)
class MemoryTrend:
    start_mb: float
    warm_mb: float  # at the end of the first quarter, once caches have filled
    peak_mb: float
    end_mb: float
    growth_after_warmup_mb: float
    slope_mb_per_hour: float
    flat: bool

    def to_dict(self) -> dict[str, float | bool]:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in
                {"start": self.start_mb, "warm": self.warm_mb, "peak": self.peak_mb, "end": self.end_mb,
                 "growth_after_warmup": self.growth_after_warmup_mb, "slope_mb_per_hour": self.slope_mb_per_hour,
                 "flat": self.flat}.items()}


def memory_trend(samples: Sequence[tuple[float, float]]) -> MemoryTrend:
    """Samples are (seconds since the start, RSS MB), in time order; at least one."""
    if not samples:
        raise ValueError("no memory samples")
    times = [t for t, _ in samples]
    values = [mb for _, mb in samples]
    quarter = bisect.bisect_left(times, times[0] + (times[-1] - times[0]) / 4)
    warm = values[quarter:]
    growth = max(warm) - warm[0]  # a peak mid-run that fell back still counts: memory that grows and is given back
    slope = 0.0
    if len(warm) >= 2 and len(set(times[quarter:])) >= 2:
        slope = statistics.linear_regression(times[quarter:], warm).slope * 3600
    allowed = max(FLAT_MB, FLAT_SHARE * warm[0])
    return MemoryTrend(values[0], warm[0], max(values), values[-1], growth, slope, growth <= allowed)


@dataclass(frozen=True, slots=True)
class Stall:
    what: str  # "intake" (no 202 while sending) or "pipeline" (no decision while events waited)
    at_s: float  # seconds since the run's start
    seconds: float

    def to_dict(self) -> dict[str, float | str]:
        return {"what": self.what, "at_s": round(self.at_s, 1), "seconds": round(self.seconds, 1)}


def gaps(moments: Sequence[float], start: float, end: float, threshold: float = STALL_S) -> list[tuple[float, float]]:
    """(from, seconds) of every stretch of at least `threshold` between start, each moment and end (sorted)."""
    points = [start, *sorted(m for m in moments if start <= m <= end), end]
    return [(a, b - a) for a, b in itertools.pairwise(points) if b - a >= threshold]


def find_stalls(*, start: float, sending_ended: float, end: float, sent_at: Sequence[float],
                accepted_at: Sequence[float], decided_at: Sequence[float], threshold: float = STALL_S) -> list[Stall]:
    """Stalls of intake (gaps between 202s while a POST waited) and of the pipeline (gaps between decisions while an
    accepted event waited). Per accepted event: `sent_at` its POST's time, `accepted_at` its 202's; `decided_at`
    when each decided event's last decision was seen. All on one clock, `start` the first POST."""
    sent = sorted(sent_at)
    accepted = sorted(accepted_at)
    decided = sorted(decided_at)
    stalls = []
    for a, seconds in gaps(accepted, start, sending_ended, threshold):
        # Intake was stuck only if a POST went out in the gap and its answer came only at the gap's end: a load
        # generator that sent nothing (between bursts) is idle, not stalled.
        first = bisect.bisect_right(sent, a)
        if first < len(sent) and sent[first] < a + seconds and a + seconds - sent[first] >= threshold:
            stalls.append(Stall("intake", sent[first] - start, a + seconds - sent[first]))
    for a, seconds in gaps(decided, start, end, threshold):
        # Waiting means an event accepted before the gap's end was still undecided at its start; the gap counts
        # from when the first such event was accepted (FIFO by count: the k decided are the k accepted first).
        done = bisect.bisect_right(decided, a)
        owed = bisect.bisect_left(accepted, a + seconds)
        if owed > done:
            since = max(a, accepted[done])
            if a + seconds - since >= threshold:
                stalls.append(Stall("pipeline", since - start, a + seconds - since))
    return sorted(stalls, key=lambda s: s.at_s)
