"""The rise detector (pure): flags an area, school or GP practice whose rate in the tested period rises beyond its
own history. The caller names the period (`until`); the watch and the page test the last complete one
(broker/insight/hotspots.py `rises`), never the one still under way.

Method: an exact conditional test of two Poisson rates (Przyborowski and Wilenski, 1940), one-sided, for each unit
(a row of a hotspot table: a postcode district, a school's URN, a practice's ODS code), with Holm's step-down
procedure across every unit and measure tested in one run.

- Model: the unit's count in a period is Poisson with mean rate x exposure. The exposure is the period's denominator
  for a rate measure (referrals, for conversion to s47), and 1 for a count measure (so the unit's population is
  taken as steady over the window; the count measures are by unit and period, not per head).
- History: the `baseline_periods` periods before the tested one (fewer, down to `min_baseline_periods`, when the
  records start later). Observed X in the tested period with exposure e1; Y in the baseline with exposure e0.
- Under "no rise" (the same rate throughout), X given X + Y = n is Binomial(n, e1 / (e1 + e0)): the nuisance rate
  drops out, so the baseline's own uncertainty is accounted for, exactly, with no normal approximation (which
  fails at the small counts safeguarding has). The p-value is P(Binomial(n, e1 / (e1 + e0)) >= X).
- Multiple testing: every unit tested is one hypothesis; Holm's procedure keeps the probability of flagging any
  steady unit in a run at or below `alpha` (family-wise), whatever the dependence between units.
- Guards: a unit whose population (the table's `populations`) is below `min_population` is never tested, so a
  hotspot never names a place too small to be safe to name (the same minimum as disclosure control); nor the rows
  "unknown" and sdc.OTHER_ROW; nor a unit with fewer than `min_observed` in the tested period (a rise from 0 to 2 is
  not a hotspot, however improbable).

`expected` in a `Rise` is Y x e1 / e0: what the unit's own history predicts for the tested period.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from broker.insight.sdc import DEFAULT_MIN_POPULATION, OTHER_ROW
from broker.insight.table import Table

METHOD = "poisson-conditional-exact-holm"  # the method's name on a mash.hotspot_rise
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """The detector's parameters (settings: MASH_INSIGHT_*; README, Hotspots)."""

    baseline_periods: int = 8  # the unit's own history: this many periods before the tested one
    min_baseline_periods: int = 4  # less history than this: the unit is not tested
    alpha: float = 0.01  # family-wise error rate over one run (Holm)
    min_observed: int = 3  # a rise needs at least this many in the tested period
    min_population: int = DEFAULT_MIN_POPULATION  # units smaller than this are never tested (nor shown: sdc.py)

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 1):
            raise ValueError("alpha: must lie strictly between 0 and 1")
        if not (1 <= self.min_baseline_periods <= self.baseline_periods):
            raise ValueError("min_baseline_periods: must be at least 1 and at most baseline_periods")
        if self.min_observed < 1 or self.min_population < 0:
            raise ValueError("min_observed must be at least 1, min_population at least 0")


@dataclass(frozen=True, slots=True)
class Rise:
    """One unit whose rate rose beyond its own history: codes and counts, never a child."""

    measure: str
    unit_kind: str  # the table's rows_by: area, school_urn or gp_ods
    unit: str  # a postcode district, a URN, an ODS code
    period: str  # the tested period's label (2026-W48, 2026-11, 2026-Q4)
    period_kind: str  # week, month, quarter
    observed: int
    expected: float
    baseline: int  # the count over the baseline periods
    baseline_periods: int
    p_value: float
    alpha: float
    method: str = METHOD


@dataclass(frozen=True, slots=True)
class _Test:
    table: Table
    unit: str
    observed: int
    exposure: float
    baseline: int
    baseline_exposure: float
    periods: int
    p_value: float


def detect(tables: Iterable[Table], config: DetectorConfig, until: str) -> list[Rise]:
    """The rises in period `until` (a label of each table's period kind) across every table: one Holm family."""
    tests = [t for table in tables for t in _tests(table, config, until)]
    rises = []
    for t in holm(tests, config.alpha):
        rises.append(Rise(measure=t.table.measure, unit_kind=t.table.rows_by, unit=t.unit, period=until,
                          period_kind=t.table.columns_by, observed=t.observed,
                          expected=round(t.baseline * t.exposure / t.baseline_exposure, 3), baseline=t.baseline,
                          baseline_periods=t.periods, p_value=t.p_value, alpha=config.alpha))
    return sorted(rises, key=lambda r: (r.measure, r.unit_kind, r.unit))


def holm(tests: Sequence[_Test], alpha: float) -> list[_Test]:
    """Holm's step-down: the k-th smallest p-value (from 0) is rejected while it is at most alpha / (m - k)."""
    ordered = sorted(tests, key=lambda t: (t.p_value, t.table.measure, t.unit))
    out = []
    for k, t in enumerate(ordered):
        if t.p_value > alpha / (len(ordered) - k):
            break
        out.append(t)
    return out


def _tests(table: Table, config: DetectorConfig, until: str) -> list[_Test]:
    known = [c for c in table.columns if c != UNKNOWN]
    if not known:
        return []
    history = [p for p in previous_periods(until, table.columns_by, config.baseline_periods) if p >= min(known)]
    if len(history) < config.min_baseline_periods:
        return []
    out = []
    for unit in table.rows:
        if unit in (UNKNOWN, OTHER_ROW) or table.populations.get(unit, 0) < config.min_population:
            continue
        x = table.count(unit, until)
        if x < config.min_observed:
            continue
        e1 = _exposure(table, unit, until)
        e0 = sum(_exposure(table, unit, p) for p in history)
        y = sum(table.count(unit, p) for p in history)
        if e1 <= 0 or e0 <= 0:
            continue  # no exposure, no rate to compare
        out.append(_Test(table, unit, x, e1, y, e0, len(history), binomial_upper_tail(x, x + y, e1 / (e1 + e0))))
    return out


def _exposure(table: Table, unit: str, period: str) -> float:
    return 1.0 if table.denominators is None else float(table.denominators.get((unit, period), 0))


def binomial_upper_tail(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), summed exactly in log space (no normal approximation)."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    if p >= 1.0:
        return 1.0
    if p <= 0.0:
        return 0.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq
             for k in range(x, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def previous_periods(label: str, kind: str, n: int) -> list[str]:
    """The `n` period labels before `label` (oldest first), in compute.period_label's spelling."""
    if kind == "week":
        iso_year, iso_week = label.split("-W")
        monday = dt.date.fromisocalendar(int(iso_year), int(iso_week), 1)
        out = []
        for i in range(n, 0, -1):
            y, w, _ = (monday - dt.timedelta(weeks=i)).isocalendar()
            out.append(f"{y}-W{w:02d}")
        return out
    if kind == "month":
        y, m = (int(p) for p in label.split("-"))
        index = y * 12 + m - 1
        return [f"{(index - i) // 12}-{(index - i) % 12 + 1:02d}" for i in range(n, 0, -1)]
    if kind == "quarter":
        q_year, quarter = label.split("-Q")
        index = int(q_year) * 4 + int(quarter) - 1
        return [f"{(index - i) // 4}-Q{(index - i) % 4 + 1}" for i in range(n, 0, -1)]
    raise ValueError(f"period kind '{kind}' is not week, month or quarter" if kind.isidentifier()
                     else "period kind: not week, month or quarter")
