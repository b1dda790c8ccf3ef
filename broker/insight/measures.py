"""The performance framework's measures, loaded from `schemas/measures.yaml` and checked before any is computed.

The file is validated against schemas/measures.schema.json, then against what the computation knows (a derived
counting rule it has, a breakdown or period it can make). Every problem names the file and the field (the YAML
path), never a value from the file beyond the measure's id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from broker.errors import InputRejected

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
DEFAULT_PATH = SCHEMAS / "measures.yaml"
SCHEMA_PATH = SCHEMAS / "measures.schema.json"

BREAKDOWNS = ("agency", "source", "event_type", "outcome", "area", "school_urn", "gp_ods", "reason", "subscriber",
              "field")
PERIODS = ("week", "month", "quarter", "all")
BEFORE_AFTER = "before_after"  # two columns either side of a change date: the impact of a change to the MASH


class MeasureError(InputRejected, ValueError):
    """A measures file that cannot be used: names the file and each field at fault."""

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{Path(path).name}: " + "; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class Count:
    """What a numerator or denominator counts: in words, and as a selection over audit records."""

    words: str
    select: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Measure:
    id: str
    name: str
    definition: str
    numerator: Count | None  # None when not available
    denominator: Count | None  # set: the measure is a rate
    breakdowns: tuple[str, ...]
    periods: tuple[str, ...]
    available: bool = True
    unavailable_why: str | None = None
    operational: bool = False
    target: str | None = None

    @property
    def is_rate(self) -> bool:
        return self.denominator is not None


@dataclass(frozen=True, slots=True)
class Measures:
    contact_types: frozenset[str]
    measures: tuple[Measure, ...]

    def __iter__(self) -> Iterator[Measure]:
        return iter(self.measures)

    def by_id(self, measure_id: str) -> Measure:
        for m in self.measures:
            if m.id == measure_id:
                return m
        raise MeasureError("measures.yaml", [f"no measure with id '{measure_id}'" if measure_id.isidentifier()
                                             else "no measure with that id"])


@cache
def _validator() -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def _where(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path) or "(file)"


def _schema_problems(raw: Any) -> list[str]:
    v = _validator()
    if v.is_valid(raw):
        return []
    out = set()
    for error in v.iter_errors(raw):
        kind = error.kind
        detail = {"required": "a required field is missing", "additionalProperties": "an unknown field",
                  "enum": "not one of the allowed codes", "type": "wrong type", "pattern": "not the required form",
                  "minItems": "too few items", "minLength": "too short", "oneOf": "needs exactly one of kind or "
                  "derived"}.get(kind.name, f"violates {kind.name}")
        if kind.name == "required":
            detail = f"required field '{kind.as_dict().get('property')}' is missing"
        out.add(f"{_where(error.instance_path)}: {detail}")
    return sorted(out)


def _meaning_problems(raw: Mapping[str, Any], derived: frozenset[str]) -> list[str]:
    problems, seen = [], set()
    for i, m in enumerate(raw["measures"]):
        at = f"measures.{i}"
        if m["id"] in seen:
            problems.append(f"{at}.id: duplicate measure id")
        seen.add(m["id"])
        for part in ("numerator", "denominator"):
            name = m.get(part, {}).get("select", {}).get("derived")
            if name is not None and name not in derived:
                known = ", ".join(sorted(derived))
                problems.append(f"{at}.{part}.select.derived: no such counting rule (known: {known})")
    return problems


def _count(raw: Mapping[str, Any] | None, contact_types: Sequence[str]) -> Count | None:
    """`contacts: true` becomes the file's contact types here, so a measure carries everything it selects by."""
    if raw is None:
        return None
    select = dict(raw["select"])
    if select.pop("contacts", False):
        select["event_types"] = [*select.get("event_types", ()), *contact_types]
    return Count(raw["words"], select)


def parse_measures(raw: Any, path: Path | str = DEFAULT_PATH) -> Measures:
    """The measures of a parsed file; MeasureError names every problem."""
    from broker.insight.compute import DERIVED  # the counting rules are the computation's

    problems = _schema_problems(raw) or _meaning_problems(raw, frozenset(DERIVED))
    if problems:
        raise MeasureError(path, problems)
    measures = tuple(
        Measure(id=m["id"], name=m["name"], definition=" ".join(m["definition"].split()),
                numerator=_count(m.get("numerator"), raw["contact_types"]),
                denominator=_count(m.get("denominator"), raw["contact_types"]),
                breakdowns=tuple(m["breakdowns"]), periods=tuple(m["periods"]), available=m.get("available", True),
                unavailable_why=" ".join(m["why"].split()) if "why" in m else None,
                operational=m.get("operational", False), target=m.get("target"))
        for m in raw["measures"])
    return Measures(frozenset(raw["contact_types"]), measures)


def load_measures(path: Path | str | None = None) -> Measures:
    """The measures file (default: schemas/measures.yaml), validated. Raises MeasureError naming file and field."""
    source = Path(path) if path is not None else DEFAULT_PATH
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError:
        raise MeasureError(source, ["(file): cannot be read"]) from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise MeasureError(source, [f"line {line + 1 if line is not None else '?'}: not valid YAML"]) from None
    return parse_measures(raw, source)


@cache
def default_measures() -> Measures:
    return load_measures()


def measure_by_id(measure_id: str, measures: Measures | None = None) -> Measure:
    return (measures or default_measures()).by_id(measure_id)
