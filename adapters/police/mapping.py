"""One schema-valid POLE Event record -> its canonical events.

Every record yields the event of its type; an incident or domestic abuse record that carries a vulnerability
assessment also yields a public protection notice (its own event id: the part differs), because the assessment is
the police's referral to partners and may be shared where the incident itself is not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.kit.events import new_event, warning
from adapters.kit.interface import FieldProblem
from adapters.police import people, risk

FORMAT = "pole-json"
EVENT_TYPE = {
    "incident_child_present": "police.incident_child_present",
    "domestic_abuse": "police.domestic_abuse_notification",
    "public_protection_notice": "police.public_protection_notice",
}
PPN = "police.public_protection_notice"
# Coding systems. NSIR and the Home Office lists publish codes but no URIs, so these names are the broker's own.
CODE_SYSTEMS = {
    "nsir_category": "urn:mash-broker:code:nsir-nicl",
    "nsir_qualifier": "urn:mash-broker:code:nsir-qualifier",
}
HOME_OFFICE_OFFENCE = "urn:mash-broker:code:home-office-offence"
CJS_OFFENCE = "urn:mash-broker:code:cjs-offence"

Warning = dict[str, str]


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent the record: the force, and source.system as force code or 'force/system'."""

    force_code: str
    system: str
    received_at: str


def origin(record: Mapping[str, Any], envelope: Mapping[str, Any], received_at: str,
           transport_system: str | None = None) -> Origin:
    """The record's force and system; a record may repeat the submission's but not contradict it.

    The system name comes from the data, else from the transport (HTTP X-Source-System, `convert --system`).
    """
    for key in ("force_code", "system"):
        if key in record and key in envelope and record[key] != envelope[key]:
            raise FieldProblem(key, f"differs from the submission's {key}")
    force_code = record.get("force_code") or envelope.get("force_code")
    if not force_code:
        raise FieldProblem("force_code", "missing: in JSON Lines every record carries its force_code")
    name = record.get("system") or envelope.get("system") or transport_system
    # The schema bounds a name from the data to 50 characters; a transport's is cut to fit source.system.
    return Origin(force_code, f"{force_code}/{name[:100]}" if name else force_code, received_at)


def _moment(value: str, field: str) -> dt.datetime:
    """A comparable instant; a bare date counts as its midnight UTC."""
    try:
        if "T" in value:
            return dt.datetime.fromisoformat(value)
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
    except ValueError:
        raise FieldProblem(field, "not a real calendar date or time") from None


def _codings(record: Mapping[str, Any], force_code: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    incident_types = [{"system": CODE_SYSTEMS.get(c["scheme"], f"urn:mash-broker:code:police:{force_code}:incident"),
                       "code": c["code"], "display": c.get("description")} for c in record.get("incident_codes", [])]
    offences: list[dict[str, Any]] = []
    for o in record.get("offences", []):
        offences.append({"system": HOME_OFFICE_OFFENCE, "code": o["home_office_code"], "display": o.get("description")})
        if o.get("cjs_code"):
            offences.append({"system": CJS_OFFENCE, "code": o["cjs_code"], "display": o.get("description")})
    return incident_types, offences


def _objects(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"kind": o["kind"], "weapon_type": o.get("weapon_type"),
             "vehicle_registration": "".join(o["vehicle_registration"].split()).upper()
             if o.get("vehicle_registration") else None,
             "description": o.get("description")} for o in record.get("objects", [])]


def _incident_payload(record: Mapping[str, Any], src: Origin, role: str | None,
                      location: dict[str, Any]) -> dict[str, Any]:
    incident_types, offences = _codings(record, src.force_code)
    return {"incident_reference": record["reference"], "force_code": src.force_code,
            "occurred_start": record["occurred"]["start"], "occurred_end": record["occurred"].get("end"),
            "location": location, "incident_types": incident_types, "offences": offences, "child_role": role,
            "dash_risk": record.get("dash_risk"), "children_present": record.get("children_present"),
            "objects": _objects(record), "summary": record.get("summary"), "child_voice": record.get("child_voice")}


def _ppn_payload(record: Mapping[str, Any], src: Origin, role: str | None,
                 location: dict[str, Any]) -> dict[str, Any]:
    return {"notice_reference": record["reference"], "force_code": src.force_code,
            "concerns": risk.ppn_concerns(record), "assessment": (record.get("vulnerability") or {}).get("grading"),
            "child_role": role, "dash_risk": record.get("dash_risk"), "location": location,
            "summary": record.get("summary")}


def map_record(record: Mapping[str, Any], src: Origin) -> list[dict[str, Any]]:
    """The canonical events of one record; FieldProblem names the field that stops it."""
    warnings: list[Warning] = []
    start = _moment(record["occurred"]["start"], "occurred.start")
    if record["occurred"].get("end") and _moment(record["occurred"]["end"], "occurred.end") < start:
        warnings.append(warning("occurred.end_before_start", "occurred.end", "end is before start"))
    persons = record["persons"]
    at = people.subject_index(persons, record.get("subject_person_id"))
    child_field = f"persons[{at}]"
    child = people.person(persons[at], child_field, src.force_code, warnings)
    warnings.extend(people.age_warnings(persons[at].get("date_of_birth"), record["occurred"]["start"],
                                        src.received_at, f"{child_field}.date_of_birth"))
    related = people.related_people(persons, at, src.force_code, warnings)
    if record["event_type"] == "domestic_abuse" and not record.get("dash_risk"):
        warnings.append(warning("dash.missing", "dash_risk", "domestic abuse record without a DASH risk grading"))
    location = people.address(record.get("location"), "location", "incident", warnings)
    role = people.child_role(persons[at]["roles"])
    common: dict[str, Any] = {
        "agency": "police", "system": src.system, "record_id": record["reference"],
        "record_version": str(record["version"]), "fmt": FORMAT, "occurred_at": record["occurred"]["start"],
        "child": child, "related_people": related, "agency_levels": risk.agency_levels(record),
        "risk_categories": risk.risk_categories(record), "warnings": warnings,
    }
    event_type = EVENT_TYPE[record["event_type"]]
    if event_type == PPN:
        return [new_event(event_type=PPN, payload=_ppn_payload(record, src, role, location), **common)]
    events = [new_event(event_type=event_type, payload=_incident_payload(record, src, role, location), **common)]
    if risk.concerns(record):
        events.append(new_event(event_type=PPN, payload=_ppn_payload(record, src, role, location), **common))
    return events
