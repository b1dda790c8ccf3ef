"""Each agency's risk thresholds, in one place: the protocol's `risk_scales` map the agencies' own gradings to the
partnership's common scale (the canonical `risk.level`: none < low < medium < high < critical).

Where a threshold sits is the partnership's judgement, not an adapter's: adapters emit the agency's own grading in
`risk.agency_levels` ({scale, level}: police DASH standard/medium/high, a PPN's vulnerability grading, the hub's
RAG rating), and the broker maps it here when it decides, so a partnership that moves a threshold edits its
protocol and reloads it, with no release, and `policy diff --replay` shows what the move changes.

An event's common level is the highest its mapped gradings give (a DASH "high" with a "standard" vulnerability
grading is high). A grading on a scale the protocol does not map, a level its scale does not list, or a grading
on another agency's scale (a school's record claiming a police DASH "high") maps to nothing: when no grading maps,
the level the source itself gave stands (`risk.level`, often `unknown`), and `explain` says which gradings
were not mapped, so a gap in the protocol shows instead of silently lowering a level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.policy.codes import RISK_ORDER

Problem = tuple[list[str | int], str]


@dataclass(frozen=True, slots=True)
class RiskScale:
    id: str
    agency: str
    description: str
    levels: Mapping[str, str]  # the agency's level -> the common level


@dataclass(frozen=True, slots=True)
class Grading:
    """One of the event's gradings and what the protocol makes of it (None: not mapped)."""

    scale: str
    level: str
    common: str | None
    owner: str | None = None  # set when the scale is another agency's: the grading is not the source's to give

    def describe(self) -> str:
        if self.owner:
            return f"{self.scale} {self.level} not mapped: the scale is {self.owner}'s, not the source agency's"
        mapped = f"-> {self.common}" if self.common else "not mapped by the protocol"
        return f"{self.scale} {self.level} {mapped}"


@dataclass(frozen=True, slots=True)
class Assessment:
    """The event's common risk level, the level its source gave, and each grading's mapping."""

    level: str
    source_level: str
    gradings: tuple[Grading, ...] = ()

    @property
    def mapped(self) -> bool:
        return any(g.common for g in self.gradings)

    def describe(self) -> str:
        if not self.gradings:
            return f"risk level {self.level} (as the source gave it; no agency grading)"
        how = "; ".join(g.describe() for g in self.gradings)
        if self.mapped:
            return f"risk level {self.level} on the common scale, from {how} (the source gave {self.source_level})"
        return f"risk level {self.level} as the source gave it: {how}"


def build_scales(raw: Sequence[Mapping[str, Any]] | None) -> tuple[dict[str, RiskScale], list[Problem]]:
    """The compiled `risk_scales` section and its problems (the schema checked the shapes)."""
    scales: dict[str, RiskScale] = {}
    problems: list[Problem] = []
    for i, item in enumerate(raw or ()):
        if item["id"] in scales:
            problems.append((["risk_scales", i, "id"], "duplicate id: already used earlier in risk_scales"))
            continue
        levels = dict(item["levels"])
        for level, common in levels.items():
            if common == "unknown":
                problems.append((["risk_scales", i, "levels", level], "maps to unknown: a grading the partnership "
                                 "cannot place is left out of the scale, so explain names it as not mapped"))
        scales[item["id"]] = RiskScale(item["id"], item["agency"], item["description"], levels)
    return scales, problems


def _gradings(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    risk = event.get("risk")
    found = risk.get("agency_levels") if isinstance(risk, Mapping) else None
    if not isinstance(found, list):
        return []
    return [(str(g.get("scale")), str(g.get("level"))) for g in found if isinstance(g, Mapping)]


def assess(scales: Mapping[str, RiskScale], event: Mapping[str, Any]) -> Assessment:
    """The event's common level under these scales (see the module docstring)."""
    risk = event.get("risk")
    source_level = str(risk.get("level", "unknown")) if isinstance(risk, Mapping) else "unknown"
    source = event.get("source")
    agency = source.get("agency") if isinstance(source, Mapping) else None
    gradings = []
    for scale, level in _gradings(event):
        found = scales.get(scale)
        if found is not None and found.agency != agency:
            # A school claiming the police's DASH "high" must not raise its own record's level: only the agency
            # whose scale it is grades on it (an event without a source agency grades on no scale).
            gradings.append(Grading(scale, level, None, found.agency))
            continue
        gradings.append(Grading(scale, level, found.levels.get(level) if found else None))
    mapped = [g.common for g in gradings if g.common]
    level = max(mapped, key=lambda c: RISK_ORDER.get(c, 0)) if mapped else source_level
    return Assessment(level, source_level, tuple(gradings))


def assessed(scales: Mapping[str, RiskScale], event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event with `risk.level` on the common scale: the event itself when nothing changes (most events carry no
    grading), else a shallow copy with a new `risk` (the input is not changed). What is decided and what is
    delivered both read this, so a subscriber sees the level the decision used."""
    if not scales or not _gradings(event):
        return event
    found = assess(scales, event)
    if found.level == found.source_level:
        return event
    return {**event, "risk": {**event["risk"], "level": found.level}}
