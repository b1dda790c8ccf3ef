"""The codes a measure breaks down by, taken from one canonical event in the clear at intake (pure).

The performance framework's one source is the audit log (so every number is reproducible from an export). The log
holds what happened to each event but not what the event was about; `insight_facts` adds that, as codes only: the
postcode district (the outward code, never the full postcode), the school's URN, the GP practice's ODS code, the
hub's outcome and RAG, the events a hub record concerns. Never a name, a date of birth, an identifier or narrative.

Every value is checked against the audit schema's own pattern for it (`insight` in schemas/audit-record.schema.json)
and left out when it does not fit, so an odd code from a source system costs a breakdown, never the event.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from broker.audit.record import AUDIT_SCHEMA
from broker.schema.loader import load_schema

# A UK postcode: outward code (area letters, district digit, optional digit or letter), then the inward code
# (sector digit, unit letters). Only the outward code is kept.
_POSTCODE = re.compile(r"([A-Z]{1,2}[0-9][0-9A-Z]?)([0-9][A-Z]{2})")
_INDEX = re.compile(r"\[[0-9]+\]")
_HOME_FIRST = {"home": 0, "temporary": 1, "placement": 2}
# Canonical events are parsed JSON: plain dicts, so `isinstance(x, dict)` (an ABC check costs several times more, and
# this runs once per event on intake's path).


@cache
def _schema() -> Mapping[str, Any]:
    return load_schema(AUDIT_SCHEMA)["properties"]["insight"]["properties"]


@cache
def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(_schema()[name]["pattern"])


@cache
def _allowed(name: str) -> frozenset[str]:
    return frozenset(_schema()[name]["enum"])


@cache
def _partner() -> re.Pattern[str]:
    return re.compile(_schema()["referring_partners"]["items"]["pattern"])


@cache
def _warning_pattern(name: str) -> re.Pattern[str]:
    return re.compile(_schema()["warnings"]["items"]["properties"][name]["pattern"])


def _code(name: str, value: Any) -> str | None:
    """The value if the schema's pattern for `name` takes it, else nothing (never an error)."""
    if isinstance(value, str) and _pattern(name).search(value):
        return value
    return None


def _enum(name: str, value: Any) -> str | None:
    return value if isinstance(value, str) and value in _allowed(name) else None


def postcode_district(postcode: Any) -> str | None:
    """'ZZ3 1AB' -> 'ZZ3'. Anything that is not a whole UK postcode -> None: a fragment could be too precise."""
    if not isinstance(postcode, str):
        return None
    match = _POSTCODE.fullmatch(re.sub(r"\s+", "", postcode.upper()))
    return match.group(1) if match else None


def _postcodes(event: Mapping[str, Any]) -> Iterator[Any]:
    """Where the child lives first (home before temporary or placement), then where the event happened."""
    child = event.get("subject", {}).get("child", {})
    addresses = [a for a in child.get("addresses", ()) if isinstance(a, dict)]
    for address in sorted(addresses, key=lambda a: _HOME_FIRST.get(a.get("use", ""), 3)):
        yield address.get("postcode")
    payload = event.get("payload", {})
    location = payload.get("location")
    if isinstance(location, dict):
        yield location.get("postcode")
    yield payload.get("home_postcode")


def _district(event: Mapping[str, Any]) -> str | None:
    for postcode in _postcodes(event):
        district = postcode_district(postcode)
        if district is not None:
            return _code("district", district)
    return None


def _organisations(event: Mapping[str, Any], child_key: str, payload_keys: tuple[str, ...]) -> Iterator[Any]:
    child_org = event.get("subject", {}).get("child", {}).get(child_key)
    if isinstance(child_org, dict):
        yield child_org
    payload = event.get("payload", {})
    for key in payload_keys:
        if isinstance(payload.get(key), dict):
            yield payload[key]


def _first(name: str, candidates: Iterator[Any]) -> str | None:
    for value in candidates:
        code = _code(name, value)
        if code is not None:
            return code
    return None


def _warnings(event: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for w in event.get("data_quality", ()):
        code, where = w.get("code"), _INDEX.sub("[]", str(w.get("field", "")))
        if not isinstance(code, str) or not _warning_pattern("code").search(code):
            continue
        if not _warning_pattern("field").search(where):
            where = ""  # the adapter named the field in a way that could carry a value: keep the code only
        out.append({"code": code, "field": where})
    return out[:100]


def _ids(values: Any) -> list[str] | None:
    if not isinstance(values, list):
        return None
    kept = list(dict.fromkeys(v for v in values if isinstance(v, str)))
    return kept[:200] or None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _hub(event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The hub's own records: what was decided, merged or raised, and which events it was about."""
    if event_type == "mash.decision":
        lead = _mapping(payload.get("lead"))
        return {"outcome": _enum("outcome", payload.get("outcome")), "rag": _enum("rag", payload.get("rag")),
                "lead_agency": _enum("lead_agency", lead.get("agency")),
                "decision_kind": _enum("decision_kind", payload.get("decision_kind")),
                "concerns": _ids(payload.get("concerns")), "enquiry_id": _code("enquiry_id", payload.get("enquiry_id")),
                "referring_partners": [p for p in payload.get("referring_partners", ())
                                       if isinstance(p, str) and _partner().search(p)] or None}
    if event_type == "mash.enquiry":
        contribution = _mapping(payload.get("contribution"))
        return {"enquiry_id": _code("enquiry_id", payload.get("enquiry_id")),
                "enquiry_action": _enum("enquiry_action", payload.get("action")),
                "concerns": _ids([contribution.get("event_id")]),
                "repeat_referral": True if payload.get("repeat_referral") else None}
    if event_type == "mash.cumulative_concern":
        contributing = [c.get("event_id") for c in payload.get("contributing", ()) if isinstance(c, dict)]
        return {"rule": _code("rule", payload.get("rule")), "concerns": _ids(contributing)}
    return {}


def insight_facts(event: Mapping[str, Any]) -> dict[str, Any]:
    """The `insight` object of an event's `event_published` audit record: codes only, each one the audit schema
    takes (a value that does not fit is left out)."""
    source = event.get("source", {})
    payload = _mapping(event.get("payload"))
    occurred = str(event.get("occurred_at") or event.get("recorded_at") or "")[:10]
    facts: dict[str, Any] = {
        "occurred_on": occurred if _pattern("occurred_on").search(occurred) else None,
        "source_agency": _enum("source_agency", source.get("agency")),
        "format": _code("format", source.get("format")),
        "district": _district(event),
        "school_urn": _first("school_urn", (o.get("urn") for o in _organisations(
            event, "school", ("source_school", "last_school", "school")))),
        "gp_ods": _first("gp_ods", (o.get("ods_code") for o in _organisations(event, "gp_practice", ("gp_practice",)))),
        "referral_source": _code("referral_source", payload.get("referral_source"))
        if event.get("event_type") == "social_care.referral" else None,
        "warnings": _warnings(event) or None,
        **_hub(str(event.get("event_type", "")), payload),
    }
    return {k: v for k, v in facts.items() if v is not None}
