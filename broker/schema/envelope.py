"""The canonical event's envelope as types, for the code that reads it.

`schemas/safeguarding-event.schema.json` is the contract and the validator enforces it at run time; these TypedDicts
are the same shape for the type checker, so a misspelt field or a token read as an int is a mypy error rather than a
KeyError on a child's record. Enumerated fields are `str` (the enums live in the schema, one place); the child, the
related people and the payloads stay `dict[str, Any]`: they differ per event type and the policy reads them by path.

Events travel as plain dicts (adapters build them, orjson reads them off Kafka), so `view` is the one place a dict
becomes an `Event`: for an event the schema validator accepted, or one the broker published (it publishes no other).
The accessors below are the envelope reads the core makes most; each is `view(event)[...]`, no copy, no check.
"""

# No `from __future__ import annotations`: Python 3.11 reads NotRequired only from evaluated annotations, and the
# test that holds these types to the schema reads __required_keys__.
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict, cast


class Source(TypedDict):
    agency: str  # police, health, education, social_care, or broker (its own notices)
    system: str
    record_id: str
    record_version: str
    format: str


class Linkage(TypedDict):
    token: str  # lt<version>_...: the Kafka message key, one per child
    key_version: int
    basis: str  # nhs_number, upn, la_child_id, name_dob_postcode, source_local_id, erasure_register
    confidence: str  # verified, high, probable, low
    via_register: NotRequired[bool]  # the identity register gave the token (1.1.0)


class Subject(TypedDict):
    linkage: Linkage
    child: dict[str, Any]
    related_people: list[dict[str, Any]]


class AgencyLevel(TypedDict):
    scale: str  # a scale of the protocol's risk_scales (police_dash, hub_rag, ...)
    level: str  # a grade on that scale, as the agency recorded it


class Risk(TypedDict):
    level: str  # unknown < none < low < medium < high < critical
    categories: list[str]
    agency_levels: NotRequired[list[AgencyLevel]]  # mapped to `level` by the protocol when the broker decides


class LawfulBasis(TypedDict):
    article_6: str
    article_9: NotRequired[str]
    dpa_2018_schedule_1: NotRequired[list[str]]
    dpa_2018_part_3: NotRequired[list[str]]
    statutory_gateways: NotRequired[list[str]]


class Consent(TypedDict):
    status: str  # given, refused, withdrawn, not_sought, not_applicable, unknown
    objection: NotRequired[bool]
    recorded_on: NotRequired[str]
    records: NotRequired[list[dict[str, Any]]]  # per data subject and kind (1.2.0)


class DataQualityWarning(TypedDict):
    code: str
    field: str
    message: str  # fixed text, never a value from the record


class Event(TypedDict):
    """A complete canonical event (after the pipeline added `recorded_at` and `subject.linkage`)."""

    event_id: str
    event_type: str
    schema_version: str
    occurred_at: str
    recorded_at: str
    source: Source
    subject: Subject
    risk: Risk
    lawful_basis: LawfulBasis
    consent: Consent
    data_quality: list[DataQualityWarning]
    payload: dict[str, Any]


def view(event: Mapping[str, Any]) -> Event:
    """`event` typed as the envelope: only for an event the schema validator accepted or the broker published."""
    return cast(Event, event)


def linkage_token(event: Mapping[str, Any]) -> str:
    """The child's linkage token (the Kafka message key)."""
    return view(event)["subject"]["linkage"]["token"]


def event_id(event: Mapping[str, Any]) -> str:
    return view(event)["event_id"]


def event_type(event: Mapping[str, Any]) -> str:
    return view(event)["event_type"]


def source_agency(event: Mapping[str, Any]) -> str:
    return view(event)["source"]["agency"]
