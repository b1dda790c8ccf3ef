"""The child of a CIN census <Child>: ChildIdentifiers and ChildCharacteristics -> canonical person."""

from __future__ import annotations

import datetime as dt
from typing import Any

from adapters.kit.events import warning
from adapters.kit.interface import FieldProblem
from adapters.social_care import codes
from adapters.social_care.cin_reading import Element, elements, one, text
from adapters.social_care.common import Warning, code, la_child_id, optional_date, upn

IDS = "ChildIdentifiers"
CHARS = "ChildCharacteristics"


def child_person(child: Element, year: int | None, today: dt.date | None,
                 warnings: list[Warning]) -> dict[str, Any]:
    """The canonical child; FieldProblem only when the record cannot be identified (no usable LAchildID)."""
    ids = one(child, IDS)
    if ids is None:
        raise FieldProblem(IDS, "missing")
    person: dict[str, Any] = {"la_child_id": la_child_id(text(ids, "LAchildID", f"{IDS}/LAchildID"),
                                                         f"{IDS}/LAchildID")}
    person["upn"] = upn(_text(ids, "UPN", warnings), f"{IDS}/UPN", warnings)
    former = upn(_text(ids, "FormerUPN", warnings), f"{IDS}/FormerUPN", warnings)
    person["former_upns"] = [former] if former else []
    unknown = _text(ids, "UPNunknown", warnings)
    if unknown:
        # The reason code itself is social care information: the schema has no classified field for it yet, and a
        # data-quality entry is operational, so only the fact that a reason was given travels.
        code(unknown, f"{IDS}/UPNunknown", codes.UPN_UNKNOWN, warnings)
        warnings.append(warning("identifier.upn_unknown", f"{IDS}/UPNunknown",
                                "no UPN: the local authority gave a reason code"))
    person["date_of_birth"] = optional_date(_text(ids, "PersonBirthDate", warnings), f"{IDS}/PersonBirthDate",
                                            "iso", today, warnings)
    person["expected_date_of_birth"] = optional_date(
        _text(ids, "ExpectedPersonBirthDate", warnings), f"{IDS}/ExpectedPersonBirthDate", "iso", today, warnings,
        future_ok=True)
    person["sex"] = _sex(ids, year, warnings)
    person["date_of_death"] = optional_date(_text(ids, "PersonDeathDate", warnings), f"{IDS}/PersonDeathDate",
                                            "iso", today, warnings)
    chars = _one(child, CHARS, warnings)
    person["ethnicity"] = code(_text(chars, "Ethnicity", warnings, CHARS), f"{CHARS}/Ethnicity", codes.ETHNICITY,
                               warnings)
    person["disabilities"] = _disabilities(chars, warnings)
    return person


# Element, its codes, and the census years (CollectionDetails/Year) whose schema has it.
SEX_ELEMENTS = (("Sex", codes.SEX, range(2025, 10000)), ("GenderCurrent", codes.GENDER_CURRENT, range(2025)))


def _sex(ids: Element, year: int | None, warnings: list[Warning]) -> str | None:
    """`GenderCurrent` (0/1/2/9) to 2023-24, `Sex` (F/M/U) from 2024-25; either is read in any year."""
    for name, table, years in SEX_ELEMENTS:
        value = _text(ids, name, warnings)
        if value is None:
            continue
        field = f"{IDS}/{name}"
        if year is not None and year not in years:
            warnings.append(warning("cin.element_for_other_year", field,
                                    "element belongs to another census year's schema; read all the same"))
        sex = table.get(value.upper())
        if sex is None:
            warnings.append(warning("sex.unrecognised", field, "code not on the DfE list; left out"))
        return sex
    return None


def _disabilities(chars: Element | None, warnings: list[Warning]) -> list[str]:
    """Disability codes; NONE (no disability) is not a disability and is left out of the list."""
    try:
        group = one(chars, "Disabilities")
    except FieldProblem as p:
        warnings.append(warning("cin.structure", f"{CHARS}/{p.field}", p.reason + "; left out"))
        return []
    out: list[str] = []
    for i, el in enumerate(elements(group, "Disability"), start=1):
        value = code((el.text or "").strip(), f"{CHARS}/Disabilities/Disability[{i}]", codes.DISABILITY, warnings)
        if value and value != "NONE" and value not in out:
            out.append(value)
    return out[:20]


def _one(parent: Element, name: str, warnings: list[Warning]) -> Element | None:
    try:
        return one(parent, name)
    except FieldProblem as p:
        warnings.append(warning("cin.structure", p.field, p.reason + "; left out"))
        return None


def _text(parent: Element | None, name: str, warnings: list[Warning], base: str = IDS) -> str | None:
    """A secondary value: a structural problem with it is flagged and the value left out, the child still flows."""
    try:
        return text(parent, name)
    except FieldProblem as p:
        warnings.append(warning("cin.structure", f"{base}/{p.field}", p.reason + "; left out"))
        return None
