"""The cumulative-concern rule, cut from a scan of the whole history per window end to bisects and running totals
over the entries near the event (issue 24's soak), must decide exactly what the scan decided. The scan is kept
here as the reference, as it was written before the cut; random histories (fictitious: no one is named) with
crowded quarters, ties, dates alone and times with offsets, merges of two histories, and the sample protocol's
rule varied in window, count and agencies."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from broker.pipeline.hub.calendar import parse_instant
from broker.pipeline.hub.history import Entry, by_time, derived_id
from broker.pipeline.hub.rules import crossed
from broker.policy import load_protocol
from broker.policy.hub import CumulativeRule

ROOT = Path(__file__).resolve().parents[2]
AGENCIES = {"education.attendance_concern": "education", "health.safeguarding_flag": "health",
            "police.incident_child_present": "police", "social_care.referral": "social_care",
            "education.exclusion": "education"}


# --- the reference: the rule as a scan of the whole history (before issue 24's cut) ---------------------------------

def _in_window(rule: CumulativeRule, history: Sequence[Entry], at: str) -> list[Entry]:
    end = parse_instant(at)
    start = end - dt.timedelta(days=rule.window_days)
    return [e for e in history if rule.counts(e.event_type, e.level) and start <= parse_instant(e.occurred_at) <= end]


def _holds(rule: CumulativeRule, concerns: Sequence[Entry]) -> bool:
    return len(concerns) >= rule.at_least and len({e.agency for e in concerns}) >= rule.agencies_at_least


def _ends(rule: CumulativeRule, history: Sequence[Entry], at: str) -> list[str]:
    start = parse_instant(at)
    later = [e for e in history if rule.counts(e.event_type, e.level)
             and start < parse_instant(e.occurred_at) <= start + dt.timedelta(days=rule.window_days)]
    return [at, *(e.occurred_at for e in sorted(later, key=lambda e: parse_instant(e.occurred_at)))]


def reference_crossed(rule: CumulativeRule, parts: Sequence[Sequence[Entry]], after: Sequence[Entry],
                      at: str) -> list[Entry] | None:
    for end in _ends(rule, after, at):
        now = _in_window(rule, after, end)
        if _holds(rule, now) and not any(_holds(rule, _in_window(rule, part, end)) for part in parts):
            return now
    return None


# --- random histories ---------------------------------------------------------------------------------------------

def _time(rng: random.Random, base: dt.date) -> str:
    day = base + dt.timedelta(days=rng.randrange(400) if rng.random() < 0.7 else rng.randrange(20))
    if rng.random() < 0.3:
        return day.isoformat()
    offset = rng.choice(["Z", "+01:00", "-11:00", "+13:45"])
    return f"{day.isoformat()}T{rng.choice([0, 9, 23]):02d}:{rng.choice([0, 30]):02d}:00{offset}"


def _entry(rng: random.Random, key: str, base: dt.date) -> Entry:
    event_type = rng.choice(sorted(AGENCIES))
    return Entry(derived_id("rules-test", key), event_type, AGENCIES[event_type], _time(rng, base),
                 rng.choice(["low", "low", "medium", "high", "unknown"]))


@pytest.fixture(scope="module")
def rule() -> CumulativeRule:
    return load_protocol(ROOT / "deploy/protocols/sample-partnership.yaml").hub.cumulative[0]


@pytest.mark.parametrize("seed", range(3))
def test_the_cut_rule_decides_what_the_whole_scan_decided(rule: CumulativeRule, seed: int) -> None:
    rng = random.Random(seed)
    base = dt.date(2024, 1, 1)
    compared = raised = 0
    for case in range(120):
        varied = replace(rule, window_days=rng.choice([1, 30, 90]), at_least=rng.choice([1, 2, 3, 5]),
                         agencies_at_least=rng.choice([1, 2, 3]))
        history = by_time(_entry(rng, f"{seed}:{case}:{i}", base) for i in range(rng.randrange(0, 60)))
        if rng.random() < 0.3:  # a merge: two children's histories tested as one
            other = by_time(_entry(rng, f"{seed}:{case}:o{i}", base) for i in range(rng.randrange(0, 30)))
            parts, after = [history, other], by_time([*history, *other])
            at = rng.choice(after).occurred_at if after else base.isoformat()
        else:  # a new event joins the history, at any time in it (records arrive late)
            new = _entry(rng, f"{seed}:{case}:new", base)
            parts, after, at = [history], by_time([*history, new]), new.occurred_at
        expected = reference_crossed(varied, parts, after, at)
        assert crossed(varied, parts, after, at) == expected, f"seed {seed}, case {case}"
        compared += 1
        raised += expected is not None
    assert compared == 120 and 0 < raised < compared  # both outcomes were compared, not one
