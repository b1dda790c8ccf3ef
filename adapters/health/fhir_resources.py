"""FHIR resource mappers: one function per resource type, each returning canonical events."""

from __future__ import annotations

import hashlib
from typing import Any

from adapters.health.fhir_common import (
    ODS_SYSTEM,
    Context,
    Mapper,
    Warning,
    codings,
    iso,
    person_from_patient,
    related_from_contacts,
    subject_of,
)
from adapters.kit.events import new_event

FORMAT = "fhir-r4"

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


def record_version(resource: Any) -> str:
    """meta.versionId, else a content hash: a resend maps to the same event id, a changed resource to a new one."""
    if resource.meta is not None and resource.meta.versionId:
        return resource.meta.versionId
    return "sha256:" + hashlib.sha256(resource.model_dump_json().encode()).hexdigest()[:16]


def fhir_event(resource: Any, ctx: Context, *, event_type: str, occurred_at: str | None, child: dict[str, Any],
               payload: dict[str, Any], warnings: list[Warning], **extra: Any) -> dict[str, Any]:
    rtype = resource.get_resource_type()
    record_id = f"{rtype}/{resource.id}" if resource.id else f"{rtype}/{record_version(resource)}"
    return new_event(event_type=event_type, agency="health", system=ctx.system, record_id=record_id,
                     record_version=record_version(resource), fmt=FORMAT,
                     occurred_at=occurred_at or ctx.received_at, child=child, payload=payload,
                     warnings=warnings, **extra)


def map_patient(patient: Any, ctx: Context, base: str) -> list[dict[str, Any]]:
    warnings: list[Warning] = []
    child = person_from_patient(patient, ctx, base, warnings)
    related = related_from_contacts(patient, base, warnings)
    version_known = patient.meta is not None and patient.meta.versionId not in (None, "1")
    last_updated = iso(patient.meta.lastUpdated) if patient.meta is not None else None
    return [fhir_event(patient, ctx, event_type="person.updated" if version_known else "person.identified",
                       occurred_at=last_updated, child=child, related_people=related, warnings=warnings,
                       payload={"record_kind": "Patient", "active": patient.active})]


def _organisation(reference: Any, ctx: Context) -> dict[str, Any] | None:
    if reference is None:
        return None
    org = ctx.resources.get(reference.reference or "")
    ods = reference.identifier.value if reference.identifier and reference.identifier.system == ODS_SYSTEM else None
    if org is not None:
        ods = ods or next((i.value for i in org.identifier or [] if i.system == ODS_SYSTEM), None)
        return {"ods_code": ods, "name": org.name}
    return {"ods_code": ods, "name": reference.display}


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
        "period_start": iso(period.start) if period else None, "period_end": iso(period.end) if period else None,
        "types": codings(encounter.type), "reasons": codings(encounter.reasonCode),
        "service_provider": _organisation(encounter.serviceProvider, ctx), "location": location,
        "admission_source": next(iter(codings([hosp.admitSource])), None) if hosp and hosp.admitSource else None,
        "discharge_disposition": next(iter(codings([hosp.dischargeDisposition])), None)
        if hosp and hosp.dischargeDisposition else None,
    }
    return [fhir_event(encounter, ctx, event_type=event_type, occurred_at=payload["period_start"], child=child,
                       payload=payload, warnings=warnings)]


# Resource types that yield events. Other modules add theirs here (Flag, CarePlan, Condition, ...).
MAPPERS: dict[str, Mapper] = {"Patient": map_patient, "Encounter": map_encounter}

# Resource types read only to resolve references inside a Bundle.
SUPPORTING = {"Organization", "Practitioner", "PractitionerRole", "Location"}
