"""Synthetic, clearly fictitious FHIR resources and HL7 v2 messages for the health adapter tests."""

from __future__ import annotations

from typing import Any

import orjson

SNOMED = "http://snomed.info/sct"
VALID_NHS = "9990000018"  # passes Modulus 11
INVALID_NHS = "9990000019"  # fails Modulus 11


def patient(pid: str = "child-1", nhs: str = VALID_NHS, birth: str = "2012-05-04") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
            "name": [{"use": "official", "family": "Example", "given": ["Testchild"]}],
            "gender": "female", "birthDate": birth,
            "address": [{"line": ["1 Fictional Road"], "city": "Testtown", "postalCode": "LS1 4HR"}]}


def concept(code: str, system: str = SNOMED, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def flag(code: dict, category: dict | None = None, subject: str = "Patient/child-1", fid: str = "flag-1",
         author: str | None = None) -> dict[str, Any]:
    out = {"resourceType": "Flag", "id": fid, "status": "active", "code": code, "subject": {"reference": subject},
           "period": {"start": "2024-02-01"}}
    if category:
        out["category"] = [category]
    if author:
        out["author"] = {"reference": author}
    return out


def careplan(category: list[dict], pid: str = "cp-1", author: str | None = None) -> dict[str, Any]:
    out = {"resourceType": "CarePlan", "id": pid, "status": "active", "intent": "plan", "category": category,
           "subject": {"reference": "Patient/child-1"}, "period": {"start": "2024-01-10", "end": "2024-07-10"}}
    if author:
        out["author"] = {"reference": author}
    return out


def condition(code: dict, cid: str = "cond-1", onset: str = "2024-03-01") -> dict[str, Any]:
    return {"resourceType": "Condition", "id": cid, "code": code, "subject": {"reference": "Patient/child-1"},
            "clinicalStatus": concept("active", "http://terminology.hl7.org/CodeSystem/condition-clinical"),
            "onsetDateTime": onset, "note": [{"text": "Fictitious test note."}]}


def observation(code: dict, value: dict | None = None, oid: str = "obs-1") -> dict[str, Any]:
    out = {"resourceType": "Observation", "id": oid, "status": "final", "code": code,
           "subject": {"reference": "Patient/child-1"}, "effectiveDateTime": "2024-03-02T09:30:00+00:00"}
    if value:
        out["valueCodeableConcept"] = value
    return out


def organisation(oid: str = "la-1") -> dict[str, Any]:
    return {"resourceType": "Organization", "id": oid, "name": "Testshire County Council",
            "telecom": [{"system": "phone", "value": "01000 000000"}]}


def bundle(*resources: dict, full_urls: bool = False) -> dict[str, Any]:
    entries = []
    for i, r in enumerate(resources):
        entry: dict[str, Any] = {"resource": r}
        if full_urls:
            entry["fullUrl"] = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def as_json(resource: dict) -> bytes:
    return orjson.dumps(resource)


def as_xml(resource: dict) -> bytes:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource["resourceType"]).model_validate(resource).model_dump_xml()


def hl7_message(event: str = "A01", *, control: str = "MSG0001", patient_class: str = "I", nhs: str = VALID_NHS,
                dob: str = "20150102", extra: str = "", pv1: bool = True, admit: str = "20240301100000",
                discharge: str = "") -> str:
    """A fictitious ADT message, CR segment ends."""
    segments = [
        f"MSH|^~\\&|PAS|RXX01^1.2.3^ISO|MASH|MASH|20240301101500||ADT^{event}^ADT_{event}|{control}|P|2.4",
        f"EVN|{event}|20240301101500",
        f"PID|1||{nhs}^^^NHS^NH~H123456^^^RXX^MR||Example^Testchild^Middle^^^^L||{dob}|F|||"
        "1 Test Street^Flat 2^Leeds^West Yorkshire^ls14hr^GBR^H||0113 000 0000",
        "NK1|1|Example^Testparent|MTH^Mother^HL70063|2 Test Street^^Leeds^^LS1 4HR|0113 000 0001",
    ]
    if pv1:
        fields = [""] * 46
        fields[0], fields[1], fields[2], fields[3] = "PV1", "1", patient_class, "WARD1^BAY2^BED3^RXX01"
        fields[14], fields[19], fields[36] = "19", "V0001", "01" if discharge else ""
        fields[44], fields[45] = admit, discharge
        segments.append("|".join(fields))
    if extra:
        segments.append(extra)
    return "\r".join(segments) + "\r"
