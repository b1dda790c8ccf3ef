"""One SSDA903 CSV row -> canonical events. Dates are DD/MM/YYYY.

A row that cannot be identified (no CHILD, or a bad date the row's first event is built on) raises FieldProblem
and becomes a Rejection; a bad value an event is not built on is left out and flagged. An episode row yields
`looked_after_episode_started`, and `..._ended` when DEC is given: a bad DEC refuses only the ended event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.kit.events import warning
from adapters.kit.interface import FieldProblem
from adapters.social_care import codes
from adapters.social_care.common import (
    MAX_URN,
    Warning,
    bounded,
    code,
    la_child_id,
    optional_date,
    postcode,
    required_date,
    sc_event,
    upn,
)

FORMAT = "ssda903-csv"
MOTHER_YES = {"1", "1.0"}  # spreadsheet exports often write the flag as a float
MOTHER_NO = {"0", "0.0"}


@dataclass(slots=True)
class RowResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[FieldProblem] = field(default_factory=list)  # events of the row refused while others flowed


@dataclass(frozen=True, slots=True)
class RowContext:
    system: str
    received_at: str
    today: dt.date | None


def header_row(row: Mapping[str, str], rc: RowContext) -> RowResult:
    """Child details -> person.identified; the child's own baby (MOTHER, MC_DOB) as a related person."""
    warnings: list[Warning] = []
    child_id = la_child_id(row.get("CHILD"), "CHILD")
    child: dict[str, Any] = {"la_child_id": child_id}
    sex = row.get("SEX")
    if sex:
        child["sex"] = codes.SSDA903_SEX.get(sex)
        if child["sex"] is None:
            warnings.append(warning("sex.unrecognised", "SEX", "code not on the SSDA903 list (1, 2); left out"))
    child["date_of_birth"] = optional_date(row.get("DOB"), "DOB", "dmy", rc.today, warnings)
    child["ethnicity"] = code(row.get("ETHNIC"), "ETHNIC", codes.ETHNICITY, warnings)
    pupil = row.get("UPN")
    if pupil and pupil.upper() in codes.UPN_UNKNOWN:
        # SSDA903 puts the reason code in the UPN column; the code itself is not sent on (see the CIN adapter).
        warnings.append(warning("identifier.upn_unknown", "UPN", "no UPN: the local authority gave a reason code"))
    else:
        child["upn"] = upn(pupil, "UPN", warnings)
    related = _baby(row, rc, warnings)
    return RowResult([sc_event(
        event_type="person.identified", system=rc.system, record_id=child_id, part="person", fmt=FORMAT,
        occurred_at=rc.received_at, child=child, payload={"record_kind": "SSDA903 header"}, warnings=warnings,
        related_people=related)])


def _baby(row: Mapping[str, str], rc: RowContext, warnings: list[Warning]) -> list[dict[str, Any]]:
    mother = row.get("MOTHER")
    if not mother or mother in MOTHER_NO:
        return []
    if mother not in MOTHER_YES:
        warnings.append(warning("code.unrecognised", "MOTHER", "not 1 or 0; left out"))
        return []
    born = optional_date(row.get("MC_DOB"), "MC_DOB", "dmy", rc.today, warnings)
    if born is None:  # a related person needs at least one fact; the schema has no "is a mother" flag
        warnings.append(warning("mother.child_date_of_birth_missing", "MC_DOB",
                                "MOTHER is 1 but the baby's date of birth is missing or unusable"))
        return []
    return [{"role": "other", "relationship": "child_of_subject", "person": {"date_of_birth": born}}]


def episode_row(row: Mapping[str, str], rc: RowContext) -> RowResult:
    child_id = la_child_id(row.get("CHILD"), "CHILD")
    start = required_date(row.get("DECOM"), "DECOM", "dmy", rc.today)
    warnings: list[Warning] = []
    started = {
        "start_date": start,
        "reason_new_episode": code(row.get("RNE"), "RNE", codes.REASON_NEW_EPISODE, warnings),
        "legal_status": code(row.get("LS"), "LS", codes.LEGAL_STATUS, warnings),
        "category_of_need": code(row.get("CIN"), "CIN", codes.CATEGORY_OF_NEED, warnings),
        "placement_type": code(row.get("PLACE"), "PLACE", None, warnings),
        "placement_provider": code(row.get("PLACE_PROVIDER"), "PLACE_PROVIDER", codes.PLACEMENT_PROVIDER, warnings),
        "reason_place_change": code(row.get("REASON_PLACE_CHANGE"), "REASON_PLACE_CHANGE", codes.REASON_PLACE_CHANGE,
                                    warnings),
        "home_postcode": postcode(row.get("HOME_POST"), "HOME_POST", warnings),
        "placement_postcode": postcode(row.get("PL_POST"), "PL_POST", warnings),
        "placement_urn": bounded(row.get("URN"), "URN", MAX_URN, warnings),
    }
    ceased = code(row.get("REC"), "REC", codes.REASON_EPISODE_CEASED, warnings)
    if ceased and not row.get("DEC"):
        warnings.append(warning("episode.reason_ceased_without_end", "REC",
                                "a reason the episode ceased is given but no end date; left out"))
    record_id = f"{child_id}:episode:{start}"
    common: dict[str, Any] = {"system": rc.system, "record_id": record_id, "fmt": FORMAT,
                              "child": {"la_child_id": child_id}}
    # Graded as being looked after (the protocol places it); the row does not say which harm, so no category.
    out = RowResult([sc_event(event_type="social_care.looked_after_episode_started", part="episode_started",
                              occurred_at=start, payload=started, warnings=warnings,
                              agency_levels=[codes.LOOKED_AFTER], **common)])
    if row.get("DEC"):
        try:
            end = required_date(row.get("DEC"), "DEC", "dmy", rc.today)
            if end < start:
                raise FieldProblem("DEC", "before the episode's start date (DECOM)")
        except FieldProblem as p:
            out.problems.append(p)
            return out
        ended_warnings = [w for w in warnings if w["field"] != "REC"]
        if not ceased:
            ended_warnings.append(warning("episode.end_without_reason", "REC", "an end date is given but no reason"))
        # X1: the episode ends and another begins the same day, so the child is still looked after.
        grading = codes.LOOKED_AFTER if ceased == "X1" else codes.LEFT_CARE
        out.events.append(sc_event(
            event_type="social_care.looked_after_episode_ended", part="episode_ended", occurred_at=end,
            payload={**started, "end_date": end, "reason_episode_ceased": ceased}, warnings=ended_warnings,
            agency_levels=[grading], **common))
    return out


def missing_row(row: Mapping[str, str], rc: RowContext) -> RowResult:
    child_id = la_child_id(row.get("CHILD"), "CHILD")
    start = required_date(row.get("MIS_START"), "MIS_START", "dmy", rc.today)
    kind = codes.MISSING_KIND.get((row.get("MISSING") or "").upper())
    if kind is None:
        raise FieldProblem("MISSING", "missing or not M (missing) or A (away from placement without authorisation)")
    warnings: list[Warning] = []
    end = optional_date(row.get("MIS_END"), "MIS_END", "dmy", rc.today, warnings)
    if end and end < start:
        warnings.append(warning("date.order", "MIS_END", "before the start of the episode (MIS_START); left out"))
        end = None
    payload = {"kind": kind, "start_date": start, "end_date": end}
    # DOB, in the DfE layout of the missing file: the child's age on the day decides what may be shared
    child = {"la_child_id": child_id, "date_of_birth": optional_date(row.get("DOB"), "DOB", "dmy", rc.today, warnings)}
    return RowResult([sc_event(
        event_type="social_care.missing_from_care", system=rc.system, record_id=f"{child_id}:missing:{start}",
        part=f"missing:{kind}", fmt=FORMAT, occurred_at=start, child=child, payload=payload,
        warnings=warnings, agency_levels=[codes.MISSING_GRADING[kind]], risk_categories=["missing"])])
