"""POLE Persons -> the canonical subject: which person is the child, the others as related people with roles.

A police record lists everyone linked to the event with their roles. Exactly one of them is the child the event is
about (role `subject_child`, or named by `subject_person_id`); an event about several children is sent as one
record per child. Identifier checks flag problems as data-quality warnings; the record still flows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.kit.events import prune, warning
from adapters.kit.identifiers import check_nhs_number, check_upn, normalise_postcode
from adapters.kit.interface import FieldProblem

Warning = dict[str, str]

# PNC id: two- or four-digit year, serial, check letter. CRO number: serial, two-digit year, check letter; some older
# CRO numbers carry an 'SF' (search file) prefix. Only the shape is checked: the check-letter rules are not published.
_PNC_ID = re.compile(r"^([0-9]{2}|[0-9]{4})/[0-9]{1,7}[A-Z]$")
_CRO_NUMBER = re.compile(r"^(SF)?[0-9]{1,6}/[0-9]{2}[A-Z]$")

# An event role outranks a family role: the hub must see that a parent is the suspect. Earlier wins.
RELATED_ROLE_ORDER = ("offender", "suspect", "victim", "witness", "parent", "guardian", "parent_or_guardian", "carer",
                      "sibling", "household_member", "child_present", "reported_missing", "reporting_person", "other")
RELATED_ROLE = {
    "offender": "offender", "suspect": "suspect", "victim": "victim", "witness": "witness", "parent": "parent",
    "guardian": "guardian", "parent_or_guardian": "parent", "carer": "carer", "sibling": "sibling",
    "household_member": "household_member", "child_present": "other", "reported_missing": "other",
    "reporting_person": "other", "other": "other",
}
FAMILY_ROLES = ("parent", "guardian", "parent_or_guardian", "carer", "sibling", "household_member")
# What the child was in the event, most significant first.
CHILD_ROLE_ORDER = (("victim", "victim"), ("suspect", "suspect"), ("offender", "suspect"),
                    ("reported_missing", "reported_missing"), ("witness", "witness"), ("child_present", "present"))
ADULT_AGE = 18  # Children Act 1989 s105: a child is a person under 18


def _police_identifier(value: str, pattern: re.Pattern[str], code: str, field: str,
                       what: str) -> tuple[str, list[Warning]]:
    compact = re.sub(r"\s+", "", value).upper()
    if pattern.match(compact):
        return compact, []
    return compact, [warning(code, field, f"{what} does not have the expected shape")]


def address(location: Mapping[str, Any] | None, field: str, use: str, warnings: list[Warning]) -> dict[str, Any]:
    """A POLE Location as the canonical address; the postcode normalised ('ls14hr' -> 'LS1 4HR')."""
    if not location:
        return {}
    postcode = None
    if location.get("postcode"):
        postcode, w = normalise_postcode(location["postcode"], f"{field}.postcode")
        warnings.extend(w)
    return {"lines": list(location.get("address_lines", [])), "city": location.get("town"),
            "district": location.get("district"), "postcode": postcode, "use": use}


def person(p: Mapping[str, Any], field: str, force_code: str, warnings: list[Warning]) -> dict[str, Any]:
    """The canonical person for one POLE Person."""
    out: dict[str, Any] = {"given_names": list(p.get("forenames", [])), "family_name": p.get("surname"),
                           "date_of_birth": p.get("date_of_birth"), "sex": p.get("gender")}
    if p.get("nhs_number"):
        out["nhs_number"], w = check_nhs_number(p["nhs_number"], f"{field}.nhs_number")
        warnings.extend(w)
    if p.get("upn"):
        out["upn"], w = check_upn(p["upn"], f"{field}.upn")
        warnings.extend(w)
    if p.get("pnc_id"):
        out["pnc_id"], w = _police_identifier(p["pnc_id"], _PNC_ID, "identifier.pnc_id_invalid",
                                              f"{field}.pnc_id", "PNC id")
        warnings.extend(w)
    if p.get("cro_number"):
        out["cro_number"], w = _police_identifier(p["cro_number"], _CRO_NUMBER, "identifier.cro_number_invalid",
                                                  f"{field}.cro_number", "CRO number")
        warnings.extend(w)
    if p.get("nominal_id"):
        out["local_ids"] = [{"system": f"police:{force_code}:nominal", "value": p["nominal_id"]}]
    if p.get("address"):
        out["addresses"] = [address(p["address"], f"{field}.address", "home", warnings)]
    return out


def subject_index(persons: Sequence[Mapping[str, Any]], subject_person_id: str | None) -> int:
    """Position of the child the event is about; FieldProblem when none, several, or a contradiction."""
    seen: dict[str, int] = {}
    for i, p in enumerate(persons):
        if p["person_id"] in seen:
            raise FieldProblem(f"persons[{i}].person_id", "duplicate person_id within the record")
        seen[p["person_id"]] = i
    flagged = [i for i, p in enumerate(persons) if "subject_child" in p["roles"]]
    if len(flagged) > 1:
        raise FieldProblem(f"persons[{flagged[1]}].roles",
                           "more than one person has role subject_child: send one record per child")
    if subject_person_id is not None:
        if subject_person_id not in seen:
            raise FieldProblem("subject_person_id", "names no person_id in persons")
        named = seen[subject_person_id]
        if flagged and flagged[0] != named:
            raise FieldProblem("subject_person_id", "names a different person from the one with role subject_child")
        return named
    if not flagged:
        raise FieldProblem("persons", "no person has role subject_child and no subject_person_id is given")
    return flagged[0]


def child_role(roles: Sequence[str]) -> str | None:
    """The child's part in the event (payload child_role); None when the record gives only subject_child."""
    return next((canonical for role, canonical in CHILD_ROLE_ORDER if role in roles), None)


def related(p: Mapping[str, Any], field: str, force_code: str, warnings: list[Warning]) -> dict[str, Any]:
    """A related person: role from the event (outranking family roles), relationship from the family tie."""
    roles = p["roles"]
    chosen = next((r for r in RELATED_ROLE_ORDER if r in roles), "other")
    family = next((r for r in FAMILY_ROLES if r in roles and r != RELATED_ROLE[chosen]), None)
    return {"role": RELATED_ROLE[chosen], "relationship": p.get("relationship_to_child") or family,
            "parental_responsibility": p.get("parental_responsibility"),
            "person": person(p, field, force_code, warnings)}


def related_people(persons: Sequence[Mapping[str, Any]], subject_at: int, force_code: str,
                   warnings: list[Warning]) -> list[dict[str, Any]]:
    """Everyone but the child. A person with no details at all cannot be shown to anyone: left out, and said so."""
    out = []
    for i, p in enumerate(persons):
        if i == subject_at:
            continue
        entry = related(p, f"persons[{i}]", force_code, warnings)
        if prune(entry["person"]):
            out.append(entry)
        else:
            warnings.append(warning("person.no_details", f"persons[{i}]",
                                    "person has no details to share; left out of related people"))
    return out


def age_warnings(date_of_birth: str | None, occurred: str, received_at: str, field: str) -> list[Warning]:
    """Flags a birth date after receipt, or a 'child' who was 18 or over when the event happened."""
    if not date_of_birth:
        return []
    try:
        born = dt.date.fromisoformat(date_of_birth)
    except ValueError:  # the schema's date format already refused it; nothing to add
        return []
    try:
        received = dt.date.fromisoformat(received_at[:10])
    except ValueError:
        received = None
    if received is not None and born > received:
        return [warning("person.date_of_birth_in_future", field, "date of birth is after the record was received")]
    on = dt.date.fromisoformat(occurred[:10])
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if age >= ADULT_AGE:
        return [warning("subject.not_a_child", field, "the subject was 18 or over when the event occurred")]
    return []
