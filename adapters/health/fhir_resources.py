"""FHIR resource mappers: one function per resource type, each returning canonical events."""

from __future__ import annotations

from typing import Any

from adapters.health.fhir_careplan import map_careplan
from adapters.health.fhir_common import (
    Context,
    Mapper,
    Warning,
    codings,
    fhir_event,
    is_anonymous_access,
    organisation_of,
    person_from_patient,
    related_from_contacts,
    subject_of,
    when,
)
from adapters.health.fhir_findings import map_condition, map_observation
from adapters.health.fhir_flags import map_flag
from adapters.health.fhir_related import map_related_person

# v3-ActCode encounter class -> (setting, event type).
ENCOUNTER_CLASS = {
    "EMER": ("emergency", "health.urgent_care_attendance"),
    "URG": ("urgent_care", "health.urgent_care_attendance"),
    "IMP": ("inpatient", "health.admission"),
    "ACUTE": ("inpatient", "health.admission"),
    "NONAC": ("inpatient", "health.admission"),
    "SS": ("inpatient", "health.admission"),
    "PRENC": ("inpatient", "health.admission"),
    "AMB": ("ambulatory", "health.attendance"),
    "HH": ("home", "health.attendance"),
    "VR": ("virtual", "health.attendance"),
}


def map_patient(patient: Any, ctx: Context, base: str) -> list[dict[str, Any]]:
    warnings: list[Warning] = []
    child = person_from_patient(patient, ctx, base, warnings)
    related = related_from_contacts(patient, base, warnings)
    version_known = patient.meta is not None and patient.meta.versionId not in (None, "1")
    last_updated = when(patient.meta.lastUpdated) if patient.meta is not None else None
    return [fhir_event(patient, ctx, event_type="person.updated" if version_known else "person.identified",
                       occurred_at=last_updated, child=child, related_people=related, warnings=warnings,
                       payload={"record_kind": "Patient", "active": patient.active})]


def map_encounter(encounter: Any, ctx: Context, base: str) -> list[dict[str, Any]]:
    warnings: list[Warning] = []
    child = subject_of(encounter.subject, ctx, f"{base}.subject", warnings)
    class_code = encounter.class_fhir.code if getattr(encounter, "class_fhir", None) else None
    setting, event_type = ENCOUNTER_CLASS.get(class_code or "", ("other", "health.attendance"))
    period = encounter.period
    hosp = encounter.hospitalization
    location = next((loc.location.display for loc in encounter.location or [] if loc.location.display), None)
    payload = {
        "setting": setting, "status": encounter.status, "class_code": class_code,
        "period_start": when(period.start) if period else None, "period_end": when(period.end) if period else None,
        "types": codings(encounter.type), "reasons": codings(encounter.reasonCode),
        "service_provider": organisation_of(encounter.serviceProvider, ctx), "location": location,
        "admission_source": next(iter(codings([hosp.admitSource])), None) if hosp and hosp.admitSource else None,
        "discharge_disposition": next(iter(codings([hosp.dischargeDisposition])), None)
        if hosp and hosp.dischargeDisposition else None,
        "anonymous_access": True if is_anonymous_access(encounter) else None,  # s251B(4)(b): set only when true
    }
    return [fhir_event(encounter, ctx, event_type=event_type, occurred_at=payload["period_start"], child=child,
                       payload=payload, warnings=warnings)]


# Resource types that yield events. Other modules add theirs here (Flag, CarePlan, Condition, ...).
MAPPERS: dict[str, Mapper] = {
    "Patient": map_patient, "Encounter": map_encounter, "Flag": map_flag, "CarePlan": map_careplan,
    "Condition": map_condition, "Observation": map_observation, "RelatedPerson": map_related_person,
}

# Resource types read only to resolve references inside a Bundle (MessageHeader and Provenance travel in message
# and transaction Bundles and carry nothing the canonical event needs).
SUPPORTING = {"Organization", "Practitioner", "PractitionerRole", "Location", "MessageHeader", "Provenance"}
