"""The hotspot tables counted record by record (pure): each audit record folded into the cells it counts in as it
streams by, and let go, so what is held is bounded by the cells (unit x measure x period), not by the events
(issue 24: the insight watch held every record its measures read, and over months a partnership's watch would hold
every contact and referral ever made).

Exactly `hotspots.hotspot_tables` (tests/insight/test_watch_cells.py compares them cell for cell), for the
measures that count `event_published` records by their own codes (the watch's default, contacts and referrals):
such a record's item needs no other record (compute.lone_item). A measure that joins records (a clock or a delivery
takes its event's codes, a hub decision its referrer's, a derived rule follows a child) cannot be counted so; the
caller computes those from the whole index (`streamable` says which), and a record met here that concerns another
event raises `NeedsJoin`, so the caller can do the same rather than count it wrongly.

With `keep` (the detector's periods: `detector_periods`), only the cells of those periods are kept; every unit's
population (the detector's guard looks at a unit's whole history) and the earliest period (which bounds the
history it compares against) are still counted over every record. `detect` over these tables finds what it finds
over the whole ones, and what is held grows with the units, not with the events nor the weeks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.errors import BrokerError
from broker.insight.compute import UNKNOWN, lone_item, period_label, selects, table_of
from broker.insight.detect import DetectorConfig, previous_periods
from broker.insight.measures import Measure
from broker.insight.sdc import HOTSPOT_BREAKDOWNS
from broker.insight.table import Table

HOTSPOT_BY = tuple(sorted(HOTSPOT_BREAKDOWNS))  # area, gp_ods, school_urn: hotspots.BY


class NeedsJoin(BrokerError):
    """A record whose count depends on another record (it concerns another event): count from the whole index.

    Control flow inside the insight watch, never an answer to a caller, so it takes the root and no family."""


# The hub's records, whose insight names the events they concern (broker/insight/facts.py `_hub`): a decision takes
# its referrer's codes (compute._codes_of_event), so it is never counted alone.
CONCERNING = frozenset({"mash.decision", "mash.enquiry", "mash.cumulative_concern"})


def streamable(measure: Measure) -> bool:
    """Whether every record the measure counts is counted by its own codes: `event_published` selected by kind, of
    event types that concern no other event (a derived rule, a record of another kind or a hub record takes codes
    or facts from other records). A record that concerns another all the same raises NeedsJoin when counted."""
    counts = [c for c in (measure.numerator, measure.denominator) if c is not None]
    return bool(counts) and all(c.select.get("kind") == "event_published" and "derived" not in c.select
                                and c.select.get("event_types")
                                and not CONCERNING & set(c.select["event_types"]) for c in counts)


def detector_periods(until: str, across: str, config: DetectorConfig) -> frozenset[str]:
    """The periods whose cells the detector reads: the tested one and its baseline before it."""
    return frozenset((*previous_periods(until, across, config.baseline_periods), until))


@dataclass(frozen=True, slots=True)
class PeriodsFrom:
    """The periods from `first` on, as a `keep`: the watch that counts on between runs (broker/service/
    insight_watch.py `Tally`) keeps the periods after the tested one too, since the records it reads today fall in
    the periods it tests in the weeks to come. Labels of one kind sort in time order (compute.period_label pads)."""

    first: str

    def __contains__(self, label: object) -> bool:
        return isinstance(label, str) and label != UNKNOWN and label >= self.first


@dataclass(slots=True)
class _Cells:
    """One (measure, breakdown) table as it is counted."""

    by: str
    counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    denominators: dict[tuple[str, str], int] | None = None
    populations: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(slots=True)
class _Measure:
    """One measure's tables, one a breakdown, and the first known period of its items (the detector's history
    starts no earlier: detect._tests)."""

    measure: Measure
    tables: list[_Cells]
    earliest: str | None = None


class HotspotCells:
    """The hotspot tables of `measures` by `across` (week, month, quarter), counted one record at a time."""

    def __init__(self, measures: Sequence[Measure], across: str, keep: Container[str] | None = None) -> None:
        unstreamable = [m.id for m in measures if m.available and not streamable(m)]
        if unstreamable:
            raise ValueError(f"not countable record by record: {', '.join(unstreamable)}")
        self._across, self._keep = across, keep
        self._measures = [_Measure(m, [_Cells(by, denominators=defaultdict(int) if m.is_rate else None)
                                       for by in HOTSPOT_BY if by in m.breakdowns])
                          for m in measures if m.available and across in m.periods]

    def add(self, record: Any) -> None:
        """Fold one audit record into its cells. Raises NeedsJoin for a counted record that concerns another
        event (its codes are its referrer's). A tombstone or a record of another shape is passed over."""
        if not isinstance(record, Mapping) or "kind" not in record:
            return
        for counting in self._measures:
            numerator, denominator = counting.measure.numerator, counting.measure.denominator
            assert numerator is not None  # an available measure has one (measures.py)
            counted = selects(numerator.select, record)
            denominated = denominator is not None and selects(denominator.select, record)
            if counted or denominated:
                self._fold(counting, record, counted, denominated)

    def _fold(self, counting: _Measure, record: Mapping[str, Any], counted: bool, denominated: bool) -> None:
        if (record.get("insight") or {}).get("concerns"):
            raise NeedsJoin(counting.measure.id)
        item = lone_item(record)
        column = period_label(item.when, self._across)
        if column != UNKNOWN and (counting.earliest is None or column < counting.earliest):
            counting.earliest = column
        kept = self._keep is None or column in self._keep
        for cells in counting.tables:
            row = item.codes.get(cells.by, UNKNOWN)
            if counted and kept:
                cells.counts[(row, column)] += 1
            if denominated and kept and cells.denominators is not None:
                cells.denominators[(row, column)] += 1
            if denominated if cells.denominators is not None else counted:
                cells.populations[row] += 1

    def keep_from(self, first: str) -> None:
        """Keep the periods from `first` on, and let the cells before it go (the tested period moved on). Forward
        only: a cell let go cannot be counted again, so a window that moves back needs a recount."""
        if not isinstance(self._keep, PeriodsFrom) or first < self._keep.first:
            raise ValueError("keep_from: only cells kept from a first period, and only forward")
        self._keep = PeriodsFrom(first)
        for counting in self._measures:
            for cells in counting.tables:
                for kept in (cells.counts, cells.denominators or {}):
                    for key in [k for k in kept if k[1] < first]:
                        del kept[key]

    def tables(self) -> list[Table]:
        """The tables, in hotspot_tables' order. Kept to `keep`, a table's columns are the kept periods and its
        measure's earliest period (the one `detect` bounds the history by), its rows the units of the kept cells."""
        out = []
        for counting in self._measures:
            earliest = () if self._keep is None or counting.earliest is None else (counting.earliest,)
            out += [table_of(counting.measure, cells.by, self._across, dict(cells.counts),
                             None if cells.denominators is None else dict(cells.denominators),
                             dict(cells.populations), columns=earliest) for cells in counting.tables]
        return out
