"""The education content of one CTF pupil: looked-after status, FSM, SEN, school history, attendance.

A malformed detail (a date, a count) is dropped with a data-quality warning rather than sinking the pupil: the
identity is sound and the rest of the profile is still worth sharing. Identity problems are handled in people.py.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from adapters.education.header import Transfer, public
from adapters.education.reading import Element, Reader, find, find_all, value
from adapters.kit.interface import FieldProblem

LIMITS = {"fsm": 50, "school_history": 30, "attendance": 20, "sen_needs": 10}


def _limited(items: list[Element], limit: int, where: str) -> list[Element]:
    if len(items) > limit:
        raise FieldProblem(where, f"more than {limit} entries")
    return items


def looked_after(r: Reader) -> bool | None:
    return r.flag("LookedAfter/InCare", "InCare", "BasicDetails/InCare", "BasicDetails/LookedAfter/InCare")


def fsm_history(r: Reader) -> list[dict[str, Any]]:
    entries = find_all(r.record, "FSMhistory/FSMinstance") or find_all(r.record, "FSMhistory/FSMreview")
    return [{"start": r.date("FSMstartDate", within=e), "end": r.date("FSMendDate", within=e),
             "uk_country": r.text("UKcountry", within=e, max_len=10)}
            for e in _limited(entries, LIMITS["fsm"], "FSMhistory")]


def sen(r: Reader) -> tuple[str | None, list[str]]:
    """(provision of the latest SEN entry, need types in rank order)."""
    history = find(r.record, "SENhistory")
    if history is None:
        return None, []
    entries = [(r.date("StartDate", within=e) or "", i, e) for i, e in enumerate(find_all(history, "SEN"))]
    provision = r.text("SENprovision", within=max(entries)[2], max_len=10) if entries else None
    provision = provision or r.text("SENprovision", within=history, max_len=10)
    needs: list[tuple[int, int, str]] = []
    for need in history.iter("{*}SENneed"):
        kind = r.text("SENtype", within=need)
        rank = value(find(need, "SENtypeRank")) or ""
        if kind:
            needs.append((int(rank) if rank.isascii() and rank.isdigit() and len(rank) < 4 else 999, len(needs), kind))
    if len(needs) > LIMITS["sen_needs"]:
        raise FieldProblem("SENhistory/SENneeds", f"more than {LIMITS['sen_needs']} entries")
    return provision, [kind for _, _, kind in sorted(needs)]


def school_history(r: Reader) -> list[dict[str, Any]]:
    out = []
    for school in _limited(find_all(r.record, "SchoolHistory/School"), LIMITS["school_history"], "SchoolHistory"):
        out.append({
            "school": {"la_code": r.text("LEA", within=school, max_len=10),
                       "urn": r.text("URN", within=school, max_len=20),
                       "name": r.text("SchoolName", within=school, max_len=200)},
            "entry_date": r.date("EntryDate", within=school),
            "leaving_date": r.date("LeavingDate", within=school),
            "leaving_reason": r.text("LeavingReason", within=school),
        })
    return out


def attendance_rate(year: dict[str, Any]) -> Fraction | None:
    """1 - (authorised + unauthorised) / possible, exactly; None when it cannot be computed."""
    possible = year.get("sessions_possible")
    authorised, unauthorised = year.get("sessions_authorised"), year.get("sessions_unauthorised")
    if not possible or authorised is None or unauthorised is None or authorised + unauthorised > possible:
        return None
    return 1 - Fraction(authorised + unauthorised, possible)


def attendance(r: Reader) -> list[dict[str, Any]]:
    """Attendance/YearData, oldest first, each with its rate when the counts allow one."""
    years = []
    for el in _limited(find_all(r.record, "Attendance/YearData"), LIMITS["attendance"], "Attendance"):
        year: dict[str, Any] = {"year": r.text("Year", within=el, max_len=10),
                "sessions_possible": r.count("SessionsPossible", within=el),
                "sessions_authorised": r.count("SessionsAuthorised", within=el),
                "sessions_unauthorised": r.count("SessionsUnauthorised", within=el)}
        rate = attendance_rate(year)
        if rate is None and year["sessions_possible"]:  # zero sessions possible: no rate, and nothing wrong
            r.warn("attendance.rate_unavailable", el, "absences missing or more than sessions possible; no rate")
        elif rate is not None:
            year["attendance_rate"] = round(float(rate), 4)
        years.append(year)
    return sorted(years, key=lambda y: _year_order(y.get("year")))


def _year_order(year: str | None) -> tuple[int, str]:
    head = (year or "")[:4]
    return (int(head) if head.isascii() and head.isdigit() else -1, year or "")


def concern(years: list[dict[str, Any]], threshold: float) -> dict[str, Any] | None:
    """The most recent year with a rate, when that rate is strictly below the threshold."""
    rated = [y for y in years if attendance_rate(y) is not None]
    if not rated:
        return None
    latest = rated[-1]
    rate = attendance_rate(latest)
    return latest if rate is not None and rate < Fraction(str(threshold)) else None


def pupil_payload(r: Reader, transfer: Transfer, years: list[dict[str, Any]]) -> dict[str, Any]:
    provision, needs = sen(r)
    return {
        "ctf_version": transfer.version,
        "source_school": public(transfer.source_school),
        "destination_school": public(transfer.destination_school),
        "looked_after": looked_after(r),
        "fsm_history": fsm_history(r),
        "sen_provision": provision,
        "sen_needs": needs,
        "school_history": school_history(r),
        "attendance": years,
    }
