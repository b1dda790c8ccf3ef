"""Synthetic, clearly fictitious POLE records for the police adapter tests.

People are "Testchild Example" and friends; NHS numbers are 999-range test numbers; the PNC ids and CRO numbers are
of an obviously made-up form (serials of zeros ending in 1, year 99 or 00).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

VALID_NHS = "9990000018"  # passes Modulus 11
INVALID_NHS = "9990000019"  # fails Modulus 11
VALID_UPN = "B801200005001"  # the check letter is right
INVALID_UPN = "A801200005001"  # the check letter is wrong
FAKE_PNC = "99/0000001Z"
FAKE_CRO = "000001/99Z"
FORCE = "99"  # no police force has code 99


def child(**extra: Any) -> dict[str, Any]:
    return {"person_id": "P1", "roles": ["subject_child", "victim"], "forenames": ["Testchild", "Middle"],
            "surname": "Example", "date_of_birth": "2015-01-02", "gender": "female", "nhs_number": VALID_NHS,
            "upn": VALID_UPN, "nominal_id": "NOM-0001",
            "address": {"address_lines": ["1 Fictional Road"], "town": "Testtown", "postcode": "ls14hr"}, **extra}


def mother(**extra: Any) -> dict[str, Any]:
    return {"person_id": "P2", "roles": ["parent", "victim"], "forenames": ["Testparent"], "surname": "Example",
            "date_of_birth": "1990-06-07", "gender": "female", "relationship_to_child": "mother",
            "parental_responsibility": True, **extra}


def suspect(**extra: Any) -> dict[str, Any]:
    return {"person_id": "P3", "roles": ["suspect"], "forenames": ["Testsuspect"], "surname": "Sample",
            "date_of_birth": "1988-03-04", "gender": "male", "pnc_id": FAKE_PNC, "cro_number": FAKE_CRO,
            "relationship_to_child": "partner_of_parent", **extra}


def record(event_type: str = "incident_child_present", reference: str = "INC-0001", version: Any = "1",
           **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reference": reference, "version": version, "event_type": event_type,
        "occurred": {"start": "2024-03-01T22:15:00Z", "end": "2024-03-01T23:40:00Z"},
        "location": {"address_lines": ["1 Fictional Road"], "town": "Testtown", "district": "Testshire",
                     "postcode": "LS1 4HR"},
        "persons": [child(), mother(), suspect()],
        "children_present": 2,
        "summary": "Fictitious test summary.",
    }
    if event_type != "public_protection_notice":
        out["incident_codes"] = [{"scheme": "nsir_category", "code": "Domestic Incident"},
                                 {"scheme": "nsir_qualifier", "code": "Domestic Abuse"},
                                 {"scheme": "local", "code": "DOM01", "description": "Domestic"}]
        out["offences"] = [{"home_office_code": "008/01", "cjs_code": "OF61131",
                            "description": "Assault with injury"}]
    if event_type == "domestic_abuse":
        out["dash_risk"] = "high"
    if event_type == "public_protection_notice":
        out["vulnerability"] = {"concerns": ["child_concern", "domestic_abuse"], "grading": "medium"}
    out.update(extra)
    return out


def submission(*records: dict[str, Any], force_code: str = FORCE, system: str | None = "testrms") -> dict[str, Any]:
    out: dict[str, Any] = {"force_code": force_code, "records": [copy.deepcopy(r) for r in records]}
    if system:
        out["system"] = system
    return out


def as_json(value: Any) -> bytes:
    return orjson.dumps(value)


def as_jsonl(*records: dict[str, Any], force_code: str | None = FORCE) -> bytes:
    lines = [orjson.dumps({**r, "force_code": force_code} if force_code else r) for r in records]
    return b"\n".join(lines) + b"\n"
