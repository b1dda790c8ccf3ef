"""Building canonical events: deterministic ids, envelope defaults, data-quality warnings."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from broker.schema.loader import SCHEMA_VERSION

# Fixed namespace: event ids must stay stable across releases so that resent records deduplicate.
EVENT_NAMESPACE = uuid.UUID("5b0c6f3e-8a51-4f6e-9d7a-6d6173682d62")

# The basis on which each agency shares with the hub when its record does not say otherwise (UK GDPR, DPA 2018).
DEFAULT_LAWFUL_BASIS: dict[str, dict[str, Any]] = {
    "health": {"article_6": "6(1)(e)", "article_9": "9(2)(h)",
               "dpa_2018_schedule_1": ["para_18_safeguarding_children"],
               "statutory_gateways": ["children_act_2004_s11"]},
    "education": {"article_6": "6(1)(e)", "article_9": "9(2)(g)",
                  "dpa_2018_schedule_1": ["para_18_safeguarding_children"],
                  "statutory_gateways": ["education_act_2002_s175"]},
    "social_care": {"article_6": "6(1)(e)", "article_9": "9(2)(g)",
                    "dpa_2018_schedule_1": ["para_18_safeguarding_children"],
                    "statutory_gateways": ["children_act_1989_s17", "children_act_1989_s47"]},
    "police": {"article_6": "6(1)(e)", "article_9": "9(2)(g)",
               "dpa_2018_schedule_1": ["para_18_safeguarding_children"],
               "statutory_gateways": ["children_act_2004_s11", "crime_and_disorder_act_1998_s115"]},
}


EVENT_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def uuid5_text(namespace: bytes, name: str) -> str:
    """str(uuid.uuid5(UUID(bytes=namespace), name)) straight from SHA-1, without building UUID objects (one per
    event). RFC 4122: the digest's first 16 bytes with version 5 and the RFC 4122 variant set."""
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def event_id(agency: str, system: str, record_id: str, record_version: str, part: str = "") -> str:
    """UUIDv5 of the source coordinates; `part` tells apart the events one record yields (e.g. 'referral:2')."""
    return uuid5_text(EVENT_NAMESPACE_BYTES, "\x1f".join((agency, system, record_id, record_version, part)))


def _risk(level: str, categories: Iterable[str], agency_levels: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The risk block. `agency_levels`: (scale, level) gradings on the agency's own scales, which the protocol's
    risk_scales map to the common level (broker/policy/thresholds.py); adapters do not map them."""
    risk: dict[str, Any] = {"level": level, "categories": sorted(set(categories))}
    gradings = [{"scale": scale, "level": grade} for scale, grade in dict.fromkeys(agency_levels)]
    if gradings:
        risk["agency_levels"] = gradings
    return risk


def warning(code: str, field: str, message: str) -> dict[str, str]:
    """A data-quality warning. `message` must be fixed text: never a value from the record."""
    return {"code": code, "field": field, "message": message}


_EMPTY: tuple[object, ...] = (None, "", [], {})
_SCALARS = frozenset({int, float, bool})  # never equal to an empty value, so always kept


def prune(value: Any) -> Any:
    """Drop None, empty strings, lists and dicts, recursively: the schema has no nulls."""
    t = type(value)
    if t is dict or (t is not list and t is not tuple and t is not str and isinstance(value, dict)):
        # dict, not Mapping: the ABC check dominated adapter time (measured)
        out = {}
        for k, v in value.items():
            tv = type(v)
            if tv is str:  # the common leaves, decided without a call
                if v:
                    out[k] = v
            elif v is None:
                continue
            elif tv in _SCALARS:
                out[k] = v
            else:
                v = prune(v)
                if v not in _EMPTY:
                    out[k] = v
        return out
    if t is list or t is tuple or isinstance(value, list | tuple):
        out_list = [prune(v) for v in value]
        return [v for v in out_list if v not in _EMPTY]
    return value


def _related(people: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Related people, pruned. One known only by relationship (an HL7 NK1 with just NK1-3, a FHIR RelatedPerson with
    just an identifier the schema has no place for) keeps an empty `person`: the relationship is the fact, and
    pruning the empty person away would make the event invalid and sink the record."""
    out: list[dict[str, Any]] = prune(list(people))
    for p in out:
        if "person" not in p:
            p["person"] = {}
    return out


def new_event(
    *,
    event_type: str,
    agency: str,
    system: str,
    record_id: str,
    record_version: str,
    fmt: str,
    occurred_at: str,
    child: Mapping[str, Any],
    payload: Mapping[str, Any],
    related_people: Iterable[Mapping[str, Any]] = (),
    part: str = "",
    risk_level: str = "unknown",
    risk_categories: Iterable[str] = (),
    agency_levels: Iterable[tuple[str, str]] = (),
    lawful_basis: Mapping[str, Any] | None = None,
    consent: Mapping[str, Any] | None = None,
    warnings: Iterable[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """A canonical event, complete but for `recorded_at` and `subject.linkage`, which the pipeline adds."""
    return {
        "event_id": event_id(agency, system, record_id, record_version, part or event_type),
        "event_type": event_type,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": occurred_at,
        "source": {"agency": agency, "system": system, "record_id": record_id,
                   "record_version": record_version, "format": fmt},
        "subject": {"child": prune(dict(child)), "related_people": _related(related_people)},
        "risk": _risk(risk_level, risk_categories, agency_levels),
        "lawful_basis": dict(lawful_basis or DEFAULT_LAWFUL_BASIS[agency]),
        "consent": dict(consent or {"status": "not_sought"}),
        "data_quality": [dict(w) for w in warnings],
        "payload": prune(dict(payload)),
    }
