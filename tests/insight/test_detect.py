"""The rise detector (broker/insight/detect.py): a synthetic rise in one fictitious district is flagged, steady
districts with Poisson noise are not, and the false-alarm rate over many fixed seeds stays within the family-wise
alpha the method promises."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from broker.insight.detect import DetectorConfig, binomial_upper_tail, detect, previous_periods
from broker.insight.sdc import OTHER_ROW
from broker.insight.table import Table

WEEKS = (*previous_periods("2026-W48", "week", 8), "2026-W48")
DISTRICTS = tuple(f"ZZ{i}" for i in range(1, 21))  # fictitious outward codes
CONFIG = DetectorConfig(alpha=0.05, min_population=20)


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's sampler: exact, fine for the small means used here."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def weekly(seed: int, rise: dict[str, float] | None = None, means: dict[str, float] | None = None,
           populations: dict[str, int] | None = None) -> Table:
    rng = random.Random(seed)
    means = means or {d: (2.0, 6.0, 15.0)[i % 3] for i, d in enumerate(DISTRICTS)}
    counts = {}
    for d in DISTRICTS:
        for w in WEEKS:
            mean = means[d] * (rise or {}).get(d, 1.0) if w == WEEKS[-1] else means[d]
            counts[d, w] = poisson(rng, mean)
    pops = populations or {d: 1000 for d in DISTRICTS}
    return Table(measure="contacts", title="Contacts", rows_by="area", columns_by="week", rows=DISTRICTS,
                 columns=WEEKS, counts=counts, populations=pops)


def test_a_synthetic_rise_in_one_district_is_flagged_and_no_other() -> None:
    table = weekly(seed=7, rise={"ZZ5": 4.0})  # ZZ5's mean 6 a week, quadrupled in the last
    found = detect([table], CONFIG, "2026-W48")
    assert [(r.unit, r.unit_kind, r.period, r.measure) for r in found] == [("ZZ5", "area", "2026-W48", "contacts")]
    rise = found[0]
    assert rise.observed == table.count("ZZ5", "2026-W48") and rise.observed > 2 * rise.expected
    assert rise.expected == pytest.approx(sum(table.count("ZZ5", w) for w in WEEKS[:-1]) / 8, abs=1e-3)
    assert rise.p_value < CONFIG.alpha / len(DISTRICTS) and rise.method == "poisson-conditional-exact-holm"


def test_the_rise_is_found_under_most_seeds() -> None:
    hits = sum(any(r.unit == "ZZ5" for r in detect([weekly(s, rise={"ZZ5": 4.0})], CONFIG, "2026-W48"))
               for s in range(100))
    assert hits >= 90, f"power {hits}/100"


def test_steady_districts_with_noise_raise_no_alarm_beyond_alpha_over_many_seeds() -> None:
    runs = 300
    alarms = sum(bool(detect([weekly(s)], CONFIG, "2026-W48")) for s in range(1000, 1000 + runs))
    # Holm keeps P(any false alarm in a run) <= alpha = 0.05; the conditional test is conservative with discrete
    # counts. 0.08 is over two standard errors above 0.05 for 300 runs.
    assert alarms / runs <= 0.08, f"false-alarm rate {alarms}/{runs}"  # measured: 10/300 (0.033)
    assert detect([weekly(1000)], CONFIG, "2026-W48") == []  # and one steady run, seen whole: nothing


def test_a_unit_below_the_minimum_population_is_never_flagged_however_steep_the_rise() -> None:
    pops = {d: 1000 for d in DISTRICTS} | {"ZZ5": 19}
    table = weekly(seed=7, rise={"ZZ5": 10.0}, populations=pops)
    assert all(r.unit != "ZZ5" for r in detect([table], CONFIG, "2026-W48"))
    merged = Table(measure="contacts", title="Contacts", rows_by="area", columns_by="week", rows=(OTHER_ROW,),
                   columns=WEEKS, counts={(OTHER_ROW, w): (1 if w != WEEKS[-1] else 40) for w in WEEKS},
                   populations={OTHER_ROW: 5000})
    assert detect([merged], CONFIG, "2026-W48") == []  # the folded small units are no place to name


def test_a_rate_is_compared_not_a_count_more_contacts_with_proportionally_more_referrals_is_no_rise() -> None:
    counts = {("ZZ5", w): 6 for w in WEEKS[:-1]} | {("ZZ5", WEEKS[-1]): 24}
    dens = {("ZZ5", w): 20 for w in WEEKS[:-1]} | {("ZZ5", WEEKS[-1]): 80}
    table = Table(measure="referral_to_section47", title="t", rows_by="area", columns_by="week", rows=("ZZ5",),
                  columns=WEEKS, counts=counts, denominators=dens, populations={"ZZ5": 240})
    assert detect([table], CONFIG, "2026-W48") == []
    risen = Table(measure="referral_to_section47", title="t", rows_by="area", columns_by="week", rows=("ZZ5",),
                  columns=WEEKS, counts=counts, denominators={**dens, ("ZZ5", WEEKS[-1]): 20},
                  populations={"ZZ5": 240})
    assert [r.unit for r in detect([risen], CONFIG, "2026-W48")] == ["ZZ5"]


def test_too_little_history_or_too_few_events_is_not_tested() -> None:
    short = Table(measure="contacts", title="t", rows_by="area", columns_by="week", rows=("ZZ5",),
                  columns=WEEKS[-3:], counts={("ZZ5", WEEKS[-3]): 1, ("ZZ5", WEEKS[-1]): 30},
                  populations={"ZZ5": 500})
    assert detect([short], CONFIG, "2026-W48") == []  # two weeks of history, four needed
    few = Table(measure="contacts", title="t", rows_by="area", columns_by="week", rows=("ZZ5",), columns=WEEKS,
                counts={("ZZ5", WEEKS[0]): 0, ("ZZ5", WEEKS[-1]): 2}, populations={"ZZ5": 500})
    assert detect([few], CONFIG, "2026-W48") == []  # 0 to 2: improbable, but no hotspot


@pytest.mark.parametrize(("x", "n", "p"), [(0, 5, Fraction(1, 3)), (3, 5, Fraction(1, 9)), (9, 9, Fraction(1, 2)),
                                            (7, 30, Fraction(1, 9)), (40, 41, Fraction(1, 9))])
def test_the_binomial_tail_is_exact(x: int, n: int, p: Fraction) -> None:
    exact = sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(x, n + 1))
    assert binomial_upper_tail(x, n, float(p)) == pytest.approx(float(exact), rel=1e-9)


def test_periods_step_back_over_year_ends_in_compute_s_spelling() -> None:
    assert previous_periods("2027-W01", "week", 2) == ["2026-W52", "2026-W53"]  # 2026 has 53 ISO weeks
    assert previous_periods("2027-01", "month", 2) == ["2026-11", "2026-12"]
    assert previous_periods("2027-Q1", "quarter", 2) == ["2026-Q3", "2026-Q4"]
    with pytest.raises(ValueError, match="week, month or quarter"):
        previous_periods("all", "all", 1)


def test_bad_parameters_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="alpha"):
        DetectorConfig(alpha=1.5)
    with pytest.raises(ValueError, match="min_baseline_periods"):
        DetectorConfig(baseline_periods=3, min_baseline_periods=4)
