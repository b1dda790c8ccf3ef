"""The measures, computed from audit records (pure): records + a measure + how to break it down -> a `Table`.

The audit log is the framework's one source. `index_records` reads the records once into what the counting needs:
each event's codes (its `event_published` record's `insight`), the child each token belongs to now (`identity_linked`
folds), deliveries, decisions, clocks. A measure's `select` then picks items, each one counted once in one cell:

- an item is (when, codes): `when` is the day it happened (an event's own day, `insight.occurred_on`; any other
  record's audit time), its codes are the breakdown values (a record about an event takes that event's codes; a hub
  decision takes its first concern's agency and area, so outcomes show by referring agency).
- `kind`/`event_types`/`where` select audit records directly; `derived` names a rule in DERIVED that joins them.

Exact counts only: what may be shown outside the IG role is decided by broker/insight/sdc.py.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from broker.errors import InputRejected
from broker.insight.measures import BEFORE_AFTER, BREAKDOWNS, PERIODS, Measure, Measures
from broker.insight.table import Table

UNKNOWN = "unknown"
_DIGITS = re.compile(r"([0-9]+)")
SOCIAL_CARE_OUTCOMES = ("section_17_assessment", "strategy_discussion_section_47")


class ComputeError(InputRejected, ValueError):
    """A breakdown, period or change date the measure cannot be computed by (names which, never a value)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One thing counted: the day it happened and its codes."""

    when: str  # YYYY-MM-DD
    codes: Mapping[str, str]


@dataclass(slots=True)
class Index:
    """The audit records, read once, as the counting rules need them."""

    records: list[Mapping[str, Any]] = field(default_factory=list)
    published: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # event id -> event_published record
    parent: dict[str, str] = field(default_factory=dict)  # superseded token -> the token it was folded into
    delivered: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # event id -> subscribers
    subscriber_partner: Mapping[str, str] = field(default_factory=dict)

    def child(self, token: str | None) -> str:
        """The token a child's records are under now (identity merges followed to the end)."""
        seen: set[str] = set()
        while token in self.parent and token not in seen:
            seen.add(token)
            token = self.parent[token]
        return token or UNKNOWN


def index_records(records: Iterable[Mapping[str, Any]], subscriber_partner: Mapping[str, str] | None = None) -> Index:
    """Audit records (bodies, any order) -> an Index. A tombstone or a record of another shape is passed over."""
    index = Index(subscriber_partner=dict(subscriber_partner or {}))
    for record in records:
        if not isinstance(record, Mapping) or "kind" not in record:
            continue
        index.records.append(record)
        kind = record["kind"]
        if kind == "event_published" and "event_id" in record:
            index.published.setdefault(record["event_id"], record)
        elif kind == "identity_linked" and record.get("superseded") and record.get("subject"):
            if record["superseded"] != record["subject"]:
                index.parent[record["superseded"]] = record["subject"]
        elif kind == "delivered" and "event_id" in record:
            index.delivered[record["event_id"]].add(record.get("subscriber", ""))
    index.records.sort(key=lambda r: (r.get("time", ""), r.get("record_id", "")))
    return index


# --- items ------------------------------------------------------------------------------------------------------
def _day(record: Mapping[str, Any]) -> str:
    return str(record.get("time", ""))[:10]


def _event_codes(record: Mapping[str, Any]) -> dict[str, str]:
    insight = record.get("insight") or {}
    codes = {"agency": insight.get("source_agency") or record.get("agency"), "source": insight.get("format"),
             "event_type": record.get("event_type"), "outcome": insight.get("outcome"),
             "area": insight.get("district"), "school_urn": insight.get("school_urn"), "gp_ods": insight.get("gp_ods")}
    return {k: v for k, v in codes.items() if v}


def _codes_of_event(index: Index, event_id: str | None) -> dict[str, str]:
    """An event's codes; a hub record fills what it lacks from the first event it concerns (its referrer)."""
    record = index.published.get(event_id or "")
    if record is None:
        return {}
    codes = _event_codes(record)
    concerns = (record.get("insight") or {}).get("concerns") or ()
    first = index.published.get(concerns[0]) if concerns else None
    if first is not None:
        inherited = _event_codes(first)
        for key in ("agency", "source", "area", "school_urn", "gp_ods"):
            if key in inherited and (key not in codes or key == "agency"):
                codes[key] = inherited[key]  # a hub decision's agency is the referring agency's, never mash_hub
    return codes


def _item(index: Index, record: Mapping[str, Any]) -> Item:
    if record["kind"] == "event_published":
        codes = _codes_of_event(index, record.get("event_id"))
        when = (record.get("insight") or {}).get("occurred_on") or _day(record)
    else:
        codes = _codes_of_event(index, record.get("event_id"))
        if record.get("event_type"):
            codes["event_type"] = record["event_type"]
        when = _day(record)
    if record.get("reason") and record["kind"] != "event_published":
        codes["reason"] = record["reason"]
    if record.get("subscriber"):
        codes["subscriber"] = record["subscriber"]
    return Item(when, codes)


def _value(record: Mapping[str, Any], name: str) -> Any:
    if "." in name:
        head, tail = name.split(".", 1)
        inner = record.get(head)
        return inner.get(tail) if isinstance(inner, Mapping) else None
    return record.get(name)


def selects(select: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether a `kind` selection (not a derived rule) picks the record: its kind, one of its event types, and
    every `where` value."""
    if record["kind"] != select["kind"]:
        return False
    types = select.get("event_types", ())
    if types and record.get("event_type") not in types:
        return False
    return all(_value(record, name) in allowed for name, allowed in select.get("where", {}).items())


def _selected(index: Index, select: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    return (record for record in index.records if selects(select, record))


# --- derived counting rules: joins over the records ---------------------------------------------------------------
def _published_of(index: Index, event_type: str) -> Iterator[Mapping[str, Any]]:
    return (r for r in index.records if r["kind"] == "event_published" and r.get("event_type") == event_type)


def _occurred(record: Mapping[str, Any]) -> str:
    return (record.get("insight") or {}).get("occurred_on") or _day(record)


def _referral_followed_by(index: Index, args: Mapping[str, Any]) -> Iterator[Item]:
    """Each referral after which (on or after its day) the same child has an event of one of `event_types`."""
    later: dict[str, list[str]] = defaultdict(list)
    for record in index.records:
        if record["kind"] == "event_published" and record.get("event_type") in set(args["event_types"]):
            later[index.child(record.get("subject"))].append(_occurred(record))
    for referral in _published_of(index, "social_care.referral"):
        day = _occurred(referral)
        if any(d >= day for d in later.get(index.child(referral.get("subject")), ())):
            yield _item(index, referral)


def _decisions_by_child(index: Index) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in _published_of(index, "mash.decision"):
        out[index.child(record.get("subject"))].append(record)
    return out


def _step(index: Index, args: Mapping[str, Any]) -> Iterator[Item]:
    """Each hub decision with an outcome in `to` whose child's previous decision had an outcome in `from`."""
    before, after = set(args["from"]), set(args["to"])
    for decisions in _decisions_by_child(index).values():
        outcomes = [(d, (d.get("insight") or {}).get("outcome")) for d in decisions]
        for (_, previous), (decision, outcome) in pairwise(outcomes):
            if previous in before and outcome in after:
                yield _item(index, decision)


def _naming_referrers(index: Index) -> Iterator[tuple[Mapping[str, Any], set[str]]]:
    for decision in _published_of(index, "mash.decision"):
        insight = decision.get("insight") or {}
        if insight.get("decision_kind") == "initial" and insight.get("referring_partners"):
            yield decision, set(insight["referring_partners"])


def _decisions_naming_referrers(index: Index, _args: Mapping[str, Any]) -> Iterator[Item]:
    """Each initial hub decision that names the partners who referred the child."""
    return (_item(index, decision) for decision, _ in _naming_referrers(index))


def _feedback_sent(index: Index, _args: Mapping[str, Any]) -> Iterator[Item]:
    """Each of those delivered to a subscriber of one of the referring partners (the protocol says whose is whose)."""
    for decision, referrers in _naming_referrers(index):
        reached = {index.subscriber_partner.get(s) for s in index.delivered.get(decision["event_id"], ())}
        if referrers & reached:
            yield _item(index, decision)


def _cumulative_outcome(index: Index, _args: Mapping[str, Any]) -> Iterator[Item]:
    """Each cumulative concern, with the outcome of the child's next hub decision after it (none_yet if none)."""
    decisions = _decisions_by_child(index)
    for concern in _published_of(index, "mash.cumulative_concern"):
        item = _item(index, concern)
        later = [d for d in decisions.get(index.child(concern.get("subject")), ())
                 if d.get("time", "") >= concern.get("time", "")]
        outcome = (later[0].get("insight") or {}).get("outcome") if later else "none_yet"
        rule = (concern.get("insight") or {}).get("rule")
        yield Item(item.when, {**item.codes, "outcome": outcome or UNKNOWN, **({"reason": rule} if rule else {})})


def _warnings(index: Index, _args: Mapping[str, Any]) -> Iterator[Item]:
    """Each data-quality warning an adapter raised, with the field it named and its code as the reason."""
    for record in index.records:
        if record["kind"] != "event_published":
            continue
        warnings = (record.get("insight") or {}).get("warnings") or ()
        if not warnings:
            continue
        item = _item(index, record)
        for w in warnings:
            yield Item(item.when, {**item.codes, "field": w.get("field") or UNKNOWN, "reason": w["code"]})


DERIVED: dict[str, Callable[[Index, Mapping[str, Any]], Iterator[Item]]] = {
    "referral_followed_by": _referral_followed_by,
    "step": _step,
    "feedback_sent": _feedback_sent,
    "decisions_naming_referrers": _decisions_naming_referrers,
    "cumulative_outcome": _cumulative_outcome,
    "warnings": _warnings,
}
# What each rule above reads besides event_published (which every item needs for its codes): identity merges to
# find a child's other records, deliveries to see who was told. The insight watch reads only these kinds
# (broker/insight/source.py `kinds_read_by`): a rule added above without its entry here is read every kind.
DERIVED_READS: dict[str, frozenset[str]] = {
    "referral_followed_by": frozenset({"identity_linked"}), "step": frozenset({"identity_linked"}),
    "cumulative_outcome": frozenset({"identity_linked"}), "feedback_sent": frozenset({"delivered"}),
    "decisions_naming_referrers": frozenset(), "warnings": frozenset(),
}


def items(index: Index, select: Mapping[str, Any]) -> Iterator[Item]:
    """The items a numerator's or denominator's selection counts."""
    if "derived" in select:
        return DERIVED[select["derived"]](index, select.get("args", {}))
    return (_item(index, r) for r in _selected(index, select))


# --- periods and tables -----------------------------------------------------------------------------------------
def period_label(day: str, period: str, change_date: str | None = None) -> str:
    """'2026-03-04' -> '2026-W10' (ISO week), '2026-03' (month), '2026-Q1' (quarter), 'all', 'before'/'after'."""
    try:
        d = dt.date.fromisoformat(day)
    except ValueError:
        return UNKNOWN
    if period == "week":
        year, week, _ = d.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{d.year}-{d.month:02d}"
    if period == "quarter":
        return f"{d.year}-Q{(d.month - 1) // 3 + 1}"
    if period == BEFORE_AFTER:
        return "before" if day < (change_date or "") else "after"
    return "all"


def _column(item: Item, across: str, change_date: str | None) -> str:
    if across in BREAKDOWNS:
        return item.codes.get(across, UNKNOWN)
    return period_label(item.when, across, change_date)


def _check(measure: Measure, by: str, across: str, change_date: str | None) -> None:
    if by not in BREAKDOWNS:
        raise ComputeError(f"breakdown '{by}' is not one of {', '.join(BREAKDOWNS)}" if by.isidentifier()
                           else "breakdown: not one of the breakdowns")
    if across not in (*PERIODS, BEFORE_AFTER, *BREAKDOWNS):
        raise ComputeError("across: not a period (week, month, quarter, all, before_after) nor a breakdown")
    if across == BEFORE_AFTER:
        try:
            dt.date.fromisoformat(change_date or "")
        except ValueError:
            raise ComputeError("change_date: before_after needs a change date as YYYY-MM-DD") from None
    if not measure.available or measure.numerator is None:
        raise ComputeError(f"measure {measure.id}: not available ({measure.unavailable_why})")


def _cells(found: Iterable[Item], by: str, across: str, change_date: str | None) -> dict[tuple[str, str], int]:
    cells: dict[tuple[str, str], int] = defaultdict(int)
    for item in found:
        cells[(item.codes.get(by, UNKNOWN), _column(item, across, change_date))] += 1
    return dict(cells)


def _natural(value: str) -> tuple[Any, ...]:
    """'ZZ2' before 'ZZ10': digit runs compare as numbers; unknown last."""
    return (value == UNKNOWN, *((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(value)))


def _sorted(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values), key=_natural))


def table_from_index(index: Index, measure: Measure, *, by: str = "agency", across: str = "month",
                     change_date: str | None = None) -> Table:
    _check(measure, by, across, change_date)
    assert measure.numerator is not None
    counts = _cells(items(index, measure.numerator.select), by, across, change_date)
    denominators = (_cells(items(index, measure.denominator.select), by, across, change_date)
                    if measure.denominator is not None else None)
    populations: dict[str, int] = defaultdict(int)
    for (row, _), n in (denominators if denominators is not None else counts).items():
        populations[row] += n
    return table_of(measure, by, across, counts, denominators, dict(populations))


def table_of(measure: Measure, by: str, across: str, counts: Mapping[tuple[str, str], int],
             denominators: Mapping[tuple[str, str], int] | None, populations: Mapping[str, int],
             columns: Iterable[str] = ()) -> Table:
    """A measure's Table from its cells: rows and columns those of the cells (and `columns`), in natural order."""
    keys = set(counts) | set(denominators or {})
    return Table(measure=measure.id, title=measure.name, rows_by=by, columns_by=across,
                 rows=_sorted(r for r, _ in keys), columns=_sorted([*(c for _, c in keys), *columns]),
                 counts=counts, denominators=denominators, populations=populations)


def lone_item(record: Mapping[str, Any]) -> Item:
    """The item of one `event_published` record counted on its own, without the index of the rest: exactly its
    `_item`, when the record concerns no other event (the caller checks: broker/insight/cells.py) and an event
    id's records agree (one id, one canonical event, whose insight facts are a pure function of it:
    broker/insight/facts.py), so that this record's codes are those of its event's first."""
    if record["kind"] != "event_published":
        raise ValueError("lone_item: only an event_published record carries its own codes")
    return _item(Index(published={record["event_id"]: record} if "event_id" in record else {}), record)


def compute(records: Iterable[Mapping[str, Any]], measure: Measure, *, by: str = "agency", across: str = "month",
            subscriber_partner: Mapping[str, str] | None = None,
            change_date: str | None = None) -> Table:
    """One measure's exact table. Raises ComputeError for a breakdown, period or date it cannot be computed by."""
    return table_from_index(index_records(records, subscriber_partner), measure, by=by,
                            across=across, change_date=change_date)


def compute_all(records: Iterable[Mapping[str, Any]], measures: Measures, *, by: str = "agency",
                across: str = "month", subscriber_partner: Mapping[str, str] | None = None,
                change_date: str | None = None, only: Sequence[str] = ()) -> list[Table]:
    """Every available measure (or those in `only`) that breaks down by `by`, reading the records once."""
    index = index_records(records, subscriber_partner)
    chosen = [m for m in measures if m.available and (m.id in only if only else by in m.breakdowns)]
    return [table_from_index(index, m, by=by, across=across, change_date=change_date) for m in chosen]
