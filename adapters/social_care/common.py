"""What the CIN and SSDA903 adapters share: values checked against schema limits, dates against the receipt day,
and event construction with a version taken from the facts the event states."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import orjson

from adapters.kit.dates import is_future, parse_date
from adapters.kit.events import new_event, prune, warning
from adapters.kit.identifiers import check_upn, normalise_postcode
from adapters.kit.interface import AdaptContext, FieldProblem
from adapters.social_care import codes

Warning = dict[str, str]
AGENCY = "social_care"
MAX_LA_CHILD_ID = 50  # schema: person.la_child_id maxLength
MAX_CODE = 100  # schema: $defs/code maxLength
MAX_UPN = 20
MAX_POSTCODE = 10
MAX_URN = 20
MAX_WARNINGS = 100  # schema: data_quality maxItems
UNKNOWN_CLOCK = AdaptContext().received_at  # the interface default: no clock was given, so nothing is "future"


def receipt_day(ctx: AdaptContext) -> dt.date | None:
    """The day the input was received, against which dates are checked; None when the shell gave no clock."""
    if ctx.received_at == UNKNOWN_CLOCK:
        return None
    try:
        return dt.date.fromisoformat(ctx.received_at[:10])
    except ValueError:
        return None


def required_date(value: str | None, field: str, fmt: str, today: dt.date | None) -> str:
    """A date an event is built on: missing, malformed or after receipt is a FieldProblem (the event is refused)."""
    if not value:
        raise FieldProblem(field, "missing")
    iso = parse_date(value, field, fmt)
    if today is not None and is_future(iso, today):
        raise FieldProblem(field, "date is after the day the file was received")
    return iso


def optional_date(value: str | None, field: str, fmt: str, today: dt.date | None, warnings: list[Warning],
                  *, future_ok: bool = False) -> str | None:
    """A secondary date: malformed or after receipt is left out and flagged, and the event still flows."""
    if not value:
        return None
    try:
        iso = parse_date(value, field, fmt)
    except FieldProblem as p:
        warnings.append(warning("date.invalid", field, p.reason))
        return None
    if not future_ok and today is not None and is_future(iso, today):
        warnings.append(warning("date.in_future", field, "date is after the day the file was received; left out"))
        return None
    return iso


def la_child_id(value: str | None, field: str) -> str:
    if not value:
        raise FieldProblem(field, "missing: the local authority child id identifies the record")
    if len(value) > MAX_LA_CHILD_ID:
        raise FieldProblem(field, f"longer than {MAX_LA_CHILD_ID} characters")
    return value


def code(value: str | None, field: str, allowed: Collection[str] | None, warnings: list[Warning]) -> str | None:
    """An upper-cased code; one not on the list is kept and flagged, one too long for the schema is left out."""
    if not value:
        return None
    value = value.upper()
    if len(value) > MAX_CODE:
        warnings.append(warning("code.too_long", field, f"code longer than {MAX_CODE} characters; left out"))
        return None
    if allowed is not None and value not in allowed:
        warnings.append(warning("code.unrecognised", field, "code not on the DfE list for this field"))
    return value


def upn(value: str | None, field: str, warnings: list[Warning]) -> str | None:
    """A UPN checked by the kit (kept and flagged if its check letter is wrong); too long for the schema: left out."""
    if not value:
        return None
    compact, found = check_upn(value, field)
    warnings.extend(found)
    if len(compact) > MAX_UPN:
        return None
    return compact


def postcode(value: str | None, field: str, warnings: list[Warning]) -> str | None:
    if not value:
        return None
    normalised, found = normalise_postcode(value, field)
    warnings.extend(found)
    return normalised if len(normalised) <= MAX_POSTCODE else None


def bounded(value: str | None, field: str, limit: int, warnings: list[Warning]) -> str | None:
    if value and len(value) > limit:
        warnings.append(warning("value.too_long", field, f"longer than {limit} characters; left out"))
        return None
    return value or None


def version_of(facts: Any) -> str:
    """The record version: a digest of the facts an event states. A resent record gets the same version (so the same
    event id); a corrected or extended one gets a new version."""
    return "sha256:" + hashlib.sha256(orjson.dumps(prune(facts), option=orjson.OPT_SORT_KEYS)).hexdigest()[:20]


def sc_event(*, event_type: str, system: str, record_id: str, part: str, fmt: str, occurred_at: str,
             child: Mapping[str, Any], payload: Mapping[str, Any], warnings: Iterable[Warning],
             agency_levels: Iterable[str] = (), risk_categories: Iterable[str] = (),
             related_people: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A social care event whose version is the digest of its payload (person events: of the person).
    `agency_levels`: its gradings on the social_care_threshold scale (codes.py), for the protocol to place."""
    related = list(related_people)
    facts = {"child": child, "related": related} if event_type.startswith("person.") else payload
    return new_event(event_type=event_type, agency=AGENCY, system=system, record_id=record_id,
                     record_version=version_of(facts), fmt=fmt, occurred_at=occurred_at, child=child,
                     payload=payload, related_people=related, part=part,
                     agency_levels=[(codes.SCALE, grading) for grading in agency_levels],
                     risk_categories=risk_categories, warnings=_unique(warnings))


def _unique(warnings: Iterable[Warning]) -> list[Warning]:
    """Each (code, field) once, and no more than the schema's 100 entries: the last one then says so."""
    seen, out = set(), []
    for w in warnings:
        key = (w["code"], w["field"])
        if key not in seen:
            seen.add(key)
            out.append(w)
    if len(out) > MAX_WARNINGS:
        out = [*out[:MAX_WARNINGS - 1], warning("data_quality.truncated", "", "further warnings left out")]
    return out
