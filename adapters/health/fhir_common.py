"""Shared FHIR helpers: reading UK Core patients into the canonical person, codings, references."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.kit.events import new_event, prune
from adapters.kit.identifiers import check_nhs_number, check_upn, normalise_postcode

FORMAT = "fhir-r4"

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
VERIFICATION_EXT = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
ETHNIC_EXT = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
NHS_COMMUNICATION_EXT = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication"
INTERPRETER_EXT = "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired"  # FHIR core extension
# The DfE publishes no FHIR identifier system for the Unique Pupil Number. Accepted: the DfE's UPN guidance page, the
# namespace FHIR recommends for an identifier without a registered URI (a URL that describes it). Add a partnership's
# own system here, and to adapters/health/README.md.
UPN_SYSTEMS = frozenset({"https://www.gov.uk/government/publications/unique-pupil-numbers"})

# UKCore-NHSNumberVerificationStatusEngland codes.
VERIFICATION = {
    "01": "verified", "02": "unverified", "03": "trace_required", "04": "trace_attempted_no_match",
    "05": "trace_needs_resolution", "06": "trace_in_progress", "07": "not_traced", "08": "trace_postponed",
}
# FHIR v3-RoleCode / v2-0131 contact role / v2-0063 relationship codes -> canonical role.
RELATIONSHIP_ROLE = {
    "MTH": "parent", "FTH": "parent", "PRN": "parent", "NPRN": "parent", "STPPRN": "parent", "ADOPTP": "parent",
    "GUARD": "guardian", "GRD": "guardian", "FOSTER": "carer", "PRNFOST": "carer", "CAREGIVER": "carer",
    "SIB": "sibling", "BRO": "sibling", "SIS": "sibling", "C": "emergency_contact", "N": "other",
    # v3-RoleCode natural, adoptive and step parents; siblings
    "NMTH": "parent", "NFTH": "parent", "ADOPTM": "parent", "ADOPTF": "parent",
    "STPMTH": "parent", "STPFTH": "parent", "GESTM": "parent", "NSIB": "sibling", "HSIB": "sibling",
    "STPSIB": "sibling", "NBRO": "sibling", "NSIS": "sibling",
    # v2-0063 (HL7 v2 NK1-3) relationship codes
    "PAR": "parent", "CGV": "carer", "EMC": "emergency_contact", "DOM": "household_member",
    "FCH": "other", "SPO": "other", "GRP": "other", "OTH": "other",
    # UK Core additional related-person role codes, case-sensitive words (code systems
    # https://fhir.hl7.org.uk/CodeSystem/UKCore-AdditionalPersonRelationshipRole and, in PDS's older examples,
    # https://fhir.nhs.uk/R4/CodeSystem/UKCore-AdditionalRelatedPersonRole)
    "Guardian": "guardian", "Personal": "other", "Agent": "other",
}
# Codes whose holder has parental responsibility in law (Children Act 1989 s2-s4A): mothers, married/registered
# fathers as the source asserts them (MTH/FTH), adopters and guardians. Natural fathers, step-parents and foster
# carers do not have it by the relationship alone, so theirs stays unknown (None).
# A UK Core "Guardian" is a guardian appointed by a court or a parent (Children Act 1989 s5), who has it (s5(6)).
PARENTAL = {"MTH", "FTH", "PRN", "NPRN", "ADOPTP", "GUARD", "GRD", "NMTH", "GESTM", "ADOPTM", "ADOPTF", "Guardian"}

# Security labels (Resource.meta.security) that mark a record restricted: the NHS Personal Demographics Service labels
# a restricted ("S-flagged") patient R, and a record whose details it has withheld REDACTED. V (very restricted) is
# stricter than R. Both the current terminology.hl7.org URIs and the pre-R4 hl7.org/fhir/v3 ones.
RESTRICTING_LABELS = frozenset({
    ("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"),
    ("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "V"),
    ("http://hl7.org/fhir/v3/Confidentiality", "R"),
    ("http://hl7.org/fhir/v3/Confidentiality", "V"),
    ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "REDACTED"),
    ("http://hl7.org/fhir/v3/ObservationValue", "REDACTED"),
})


# Sensitivity labels (v3-ActCode InformationSensitivityPolicy) a sexual health or HIV service puts on its records:
# STD, HIV, SEX (sexuality and reproductive health). Such services are open to anyone without giving their identity
# (anonymous access providers, Health and Social Care Act 2012 s251C(6)), and the s251B duty to share does not reach
# them (s251B(4)(b)). A label can also sit on a GP's record of an STI: marking that too is the safe side (the
# broker then never shares it under s251B; another rule may still apply).
ANONYMOUS_ACCESS_LABELS = frozenset((system, code) for system in (
    "http://terminology.hl7.org/CodeSystem/v3-ActCode", "http://hl7.org/fhir/v3/ActCode")
    for code in ("STD", "HIV", "SEX"))

Warning = dict[str, str]


@dataclass
class Context:
    """What mapping one resource may need beyond itself: the rest of the Bundle, the system, the clock."""

    system: str
    received_at: str
    resources: Mapping[str, Any] = field(default_factory=dict)  # "Patient/id" or fullUrl -> model


def coding(c: Any) -> dict[str, Any]:
    return {"system": c.system, "code": c.code, "display": c.display}


def codings(concepts: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for concept in concepts or []:
        out.extend(coding(c) for c in (concept.coding or []) if c.code)
    return out


def first_code(concept: Any) -> str | None:
    for c in (concept.coding or []) if concept else []:
        if c.code:
            return str(c.code)  # a FHIR code: a string already (the models are read as Any here)
    return None


_DATE_OR_DATETIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2}))?$")


def iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def when(value: Any) -> str | None:
    """ISO date or date-time for the canonical schema; a partial FHIR date ('2019', '2019-05') gives None."""
    text = iso(value)
    return text if text and _DATE_OR_DATETIME.match(text) else None


def codes_of(concepts: Any) -> list[tuple[str | None, str]]:
    """(system, code) for every coding of one CodeableConcept or a list of them."""
    if concepts is None:
        return []
    items = concepts if isinstance(concepts, list) else [concepts]
    return [(c.system, c.code) for concept in items for c in (concept.coding or []) if c.code]


def reference_kind(reference: Any) -> str | None:
    """Resource type a reference points at: Reference.type, else the 'Type/id' prefix."""
    if reference is None:
        return None
    if reference.type:
        return str(reference.type)
    ref = reference.reference or ""
    return ref.split("/")[-2] if ref.count("/") >= 1 and not ref.startswith(("urn:", "#")) else None


def organisation_of(reference: Any, ctx: Context) -> dict[str, Any] | None:
    """The canonical organisation for a Reference(Organization); None when it points at anything else."""
    if reference is None:
        return None
    target = ctx.resources.get(reference.reference or "")
    ident = reference.identifier
    ods = ident.value if ident is not None and ident.system == ODS_SYSTEM else None
    if target is not None and target.get_resource_type() == "Organization":
        ods = ods or next((i.value for i in target.identifier or [] if i.system == ODS_SYSTEM), None)
        return {"ods_code": ods, "name": target.name}
    if ods or reference_kind(reference) == "Organization":
        return {"ods_code": ods, "name": reference.display}
    return None


def record_version(resource: Any) -> str:
    """meta.versionId, else a content hash: a resend maps to the same event id, a changed resource to a new one."""
    if resource.meta is not None and resource.meta.versionId:
        return str(resource.meta.versionId)
    return "sha256:" + hashlib.sha256(resource.model_dump_json().encode()).hexdigest()[:16]


def fhir_event(resource: Any, ctx: Context, *, event_type: str, occurred_at: str | None, child: dict[str, Any],
               payload: dict[str, Any], warnings: list[Warning], **extra: Any) -> dict[str, Any]:
    rtype = resource.get_resource_type()
    record_id = f"{rtype}/{resource.id}" if resource.id else f"{rtype}/{record_version(resource)}"
    return new_event(event_type=event_type, agency="health", system=ctx.system, record_id=record_id,
                     record_version=record_version(resource), fmt=FORMAT,
                     occurred_at=occurred_at or ctx.received_at, child=child, payload=payload,
                     warnings=warnings, **extra)


def extension(resource: Any, url: str) -> Any:
    return next((e for e in (resource.extension or []) if e.url == url), None)


def _names(names: Any) -> tuple[list[str], str | None]:
    chosen = next((n for n in names or [] if n.use == "official"), None) or (names or [None])[0]
    if chosen is None:
        return [], None
    return list(chosen.given or []), chosen.family


def address(a: Any, field_path: str, warnings: list[Warning]) -> dict[str, Any]:
    postcode = None
    if a.postalCode:
        postcode, w = normalise_postcode(a.postalCode, field_path + ".postalCode")
        warnings.extend(w)
    use = {"home": "home", "temp": "temporary"}.get(a.use or "", "other" if a.use else None)
    return {"lines": list(a.line or []), "city": a.city, "district": a.district, "postcode": postcode, "use": use}


def telecom(points: Any, system: str) -> list[str]:
    return [t.value for t in points or [] if t.system == system and t.value]


def is_restricted(resource: Any) -> bool:
    """True when the resource's security labels mark it restricted or redacted (RESTRICTING_LABELS)."""
    meta = resource.meta
    return meta is not None and any((label.system, label.code) in RESTRICTING_LABELS for label in meta.security or [])


def is_anonymous_access(resource: Any) -> bool:
    """True when the resource's security labels mark it as from a sexual health or HIV service."""
    meta = resource.meta
    return meta is not None and any((label.system, label.code) in ANONYMOUS_ACCESS_LABELS
                                    for label in meta.security or [])


def identifiers(idents: Any, ctx: Context, base: str, warnings: list[Warning]) -> dict[str, Any]:
    """NHS number (with its verification status), UPN and local ids from FHIR identifiers. An NHS number failing
    Modulus 11 or a UPN failing its check letter is kept and flagged."""
    person: dict[str, Any] = {}
    for i, ident in enumerate(idents or []):
        if not ident.value:
            continue
        if ident.system == NHS_NUMBER_SYSTEM:
            person["nhs_number"], w = check_nhs_number(ident.value, f"{base}.identifier[{i}].value")
            warnings.extend(w)
            ext = extension(ident, VERIFICATION_EXT)
            if ext and ext.valueCodeableConcept:
                status = first_code(ext.valueCodeableConcept) or ""
                person["nhs_number_verification"] = VERIFICATION.get(status, "unknown")
        elif ident.system in UPN_SYSTEMS:
            person["upn"], w = check_upn(ident.value, f"{base}.identifier[{i}].value")
            warnings.extend(w)
        else:
            person.setdefault("local_ids", []).append({"system": ident.system or ctx.system, "value": ident.value})
    return person


def _deceased(resource: Any, base: str, warnings: list[Warning]) -> dict[str, Any]:
    """deceasedDateTime -> date_of_death (the date: the schema holds a date); deceasedBoolean true, or a partial
    date ("2019"), -> `deceased: true` without a date, the partial date flagged. false or absent -> nothing."""
    if resource.deceasedDateTime is not None:
        full = when(resource.deceasedDateTime)
        if full:
            return {"date_of_death": full[:10]}
        warnings.append({"code": "person.death_date_partial", "field": f"{base}.deceasedDateTime",
                         "message": "date of death is not a full date; recorded as deceased without a date"})
        return {"deceased": True}
    return {"deceased": True} if resource.deceasedBoolean else {}


def _communication(patient: Any) -> dict[str, Any]:
    """Language and interpreter need: the UK Core NHSCommunication extension (preferred entry first), else
    Patient.communication (preferred first); interpreter need also from FHIR's patient-interpreterRequired."""
    out: dict[str, Any] = {}
    entries = []
    for ext in patient.extension or []:
        if ext.url == NHS_COMMUNICATION_EXT:
            parts = {sub.url: sub for sub in ext.extension or []}
            lang = parts.get("language")
            entries.append((bool(parts["preferred"].valueBoolean) if "preferred" in parts else False,
                            first_code(lang.valueCodeableConcept) if lang is not None else None,
                            parts["interpreterRequired"].valueBoolean if "interpreterRequired" in parts else None))
    for comm in patient.communication or []:
        entries.append((bool(comm.preferred), first_code(comm.language), None))
    languages = [lang for _, lang, _ in sorted(entries, key=lambda e: not e[0]) if lang]
    if languages:
        out["language"] = languages[0]
    core = extension(patient, INTERPRETER_EXT)
    needs = [need for _, _, need in entries if need is not None]
    if core is not None and core.valueBoolean is not None:
        needs.append(core.valueBoolean)
    if needs:
        out["interpreter_required"] = any(needs)
    return out


def person_from_patient(patient: Any, ctx: Context, base: str, warnings: list[Warning]) -> dict[str, Any]:
    """The canonical person for a FHIR Patient; an NHS number failing Modulus 11 is kept and flagged."""
    person = identifiers(patient.identifier, ctx, base, warnings)
    if not person.get("nhs_number") and not person.get("upn") and not person.get("local_ids") and patient.id:
        person["local_ids"] = [{"system": f"{ctx.system}/Patient", "value": patient.id}]
    person["given_names"], person["family_name"] = _names(patient.name)
    person["date_of_birth"] = iso(patient.birthDate)
    person.update(_deceased(patient, base, warnings))
    person["sex"] = patient.gender
    ethnic = extension(patient, ETHNIC_EXT)
    if ethnic and ethnic.valueCodeableConcept:
        person["ethnicity"] = first_code(ethnic.valueCodeableConcept)
    person.update(_communication(patient))
    if is_restricted(patient):
        person["restricted"] = True
    person["addresses"] = [address(a, f"{base}.address[{i}]", warnings) for i, a in enumerate(patient.address or [])]
    person["phones"] = telecom(patient.telecom, "phone")
    person["emails"] = telecom(patient.telecom, "email")
    for gp in patient.generalPractitioner or []:
        if gp.identifier and gp.identifier.system == ODS_SYSTEM:
            person["gp_practice"] = {"ods_code": gp.identifier.value, "name": gp.display}
    return person


def related_from_contacts(patient: Any, base: str, warnings: list[Warning]) -> list[dict[str, Any]]:
    """Patient.contact entries as related people. A contact with nothing but a relationship (no name, telecom or
    address; a contact has no identifier) cannot be told apart from anyone: left out, with a warning."""
    out = []
    for i, contact in enumerate(patient.contact or []):
        code = next((first_code(r) for r in contact.relationship or [] if first_code(r)), None)
        given, family = _names([contact.name] if contact.name else [])
        person = {
            "given_names": given, "family_name": family, "sex": contact.gender,
            "phones": telecom(contact.telecom, "phone"), "emails": telecom(contact.telecom, "email"),
            "addresses": [address(contact.address, f"{base}.contact[{i}].address", warnings)]
            if contact.address else [],
        }
        if not prune(person):
            warnings.append({"code": "related_person.unidentified", "field": f"{base}.contact[{i}]",
                             "message": "contact carries no name, telecom or address; left out"})
            continue
        out.append({"role": RELATIONSHIP_ROLE.get(code or "", "other"), "relationship": code,
                    "parental_responsibility": True if code in PARENTAL else None, "person": person})
    return out


def subject_of(reference: Any, ctx: Context, base: str, warnings: list[Warning]) -> dict[str, Any]:
    """The child a resource is about: the Patient in the same Bundle, an identifier on the reference, or a local id."""
    if reference is None:
        warnings.append({"code": "subject.missing", "field": base, "message": "resource names no subject"})
        return {}
    target = ctx.resources.get(reference.reference or "")
    if target is not None and target.get_resource_type() == "Patient":
        return person_from_patient(target, ctx, base, [])  # its own warnings belong to the Patient's event
    ident = reference.identifier
    if ident is not None and ident.value:
        if ident.system == NHS_NUMBER_SYSTEM:
            nhs_number, w = check_nhs_number(ident.value, f"{base}.identifier.value")
            warnings.extend(w)
            return {"nhs_number": nhs_number}
        return {"local_ids": [{"system": ident.system or ctx.system, "value": ident.value}]}
    if reference.reference:
        warnings.append({"code": "subject.unresolved", "field": base,
                         "message": "subject is a bare reference; linked by source-local id only"})
        return {"local_ids": [{"system": f"{ctx.system}/Patient", "value": reference.reference.split("/")[-1]}]}
    return {}


Mapper = Callable[[Any, Context, str], list[dict[str, Any]]]
