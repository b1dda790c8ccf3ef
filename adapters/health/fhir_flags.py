"""Flag: CP-IS flags become CP notices; flags coded for safeguarding become safeguarding flags; others clinical."""

from __future__ import annotations

from typing import Any

from adapters.health.cpis import PATIENT_FLAG_CATEGORY, cp_notice, is_cpis_flag
from adapters.health.fhir_common import (
    Context,
    Warning,
    codes_of,
    codings,
    extension,
    fhir_event,
    organisation_of,
    reference_kind,
    subject_of,
    when,
)
from adapters.health.safeguarding_codes import SCALE, Concern, concern_for, merge
from adapters.kit.interface import FieldProblem

FGM_RIS_SYSTEM = "http://fhir.nhs.net/ValueSet/risk-indicator-type-1-0"  # NHS FGM Risk Indication System flag
FGM = Concern(("fgm",), "fgm", "FGM risk indicator")

# The core FHIR extension by which a sender grades its own flag (No alarm, Low, Medium, High priority): the
# sender's grading, sent as it is (health_safeguarding flag_priority_*) for the protocol to place.
PRIORITY_EXT = "http://hl7.org/fhir/StructureDefinition/flag-priority"
PRIORITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/flag-priority-code"
PRIORITY = {"PN": "flag_priority_none", "PL": "flag_priority_low", "PM": "flag_priority_medium",
            "PH": "flag_priority_high"}


def _flag_concern(codes: list[tuple[str | None, str]]) -> Concern | None:
    fgm = any((s == PATIENT_FLAG_CATEGORY and c == "FGM") or (s == FGM_RIS_SYSTEM and c == "FGM") for s, c in codes)
    return merge([c for c in (concern_for(codes), FGM if fgm else None) if c is not None])


def _priority(flag: Any) -> list[tuple[str, str]]:
    """The flag's own priority grading, when it carries the flag-priority extension with a known code."""
    ext = extension(flag, PRIORITY_EXT)
    codes = codes_of(ext.valueCodeableConcept) if ext is not None else []
    return [(SCALE, PRIORITY[c]) for s, c in codes if s in (PRIORITY_SYSTEM, None) and c in PRIORITY][:1]


def map_flag(flag: Any, ctx: Context, base: str) -> list[dict[str, Any]]:
    kind = reference_kind(flag.subject)
    if kind not in (None, "Patient"):
        raise FieldProblem(f"{base}.subject", "flag is not about a patient")
    codes = [*codes_of(flag.code), *codes_of(flag.category)]
    if is_cpis_flag(codes):
        return [cp_notice(flag, ctx, base, subject=flag.subject, codes=codes, status=flag.status,
                          period=flag.period, author=flag.author)]
    warnings: list[Warning] = []
    child = subject_of(flag.subject, ctx, f"{base}.subject", warnings)
    code = next(iter(codings([flag.code])), None)
    if code is None:
        raise FieldProblem(f"{base}.code", "flag has no coded code")
    concern = _flag_concern(codes)
    payload = {
        "status": flag.status, "categories": codings(flag.category), "code": code,
        "period_start": when(flag.period.start) if flag.period else None,
        "period_end": when(flag.period.end) if flag.period else None,
        "author": organisation_of(flag.author, ctx),
    }
    if concern is None:
        return [fhir_event(flag, ctx, event_type="health.clinical_flag", occurred_at=payload["period_start"],
                           child=child, payload=payload, warnings=warnings)]
    return [fhir_event(flag, ctx, event_type="health.safeguarding_flag", occurred_at=payload["period_start"],
                       child=child, payload=payload, warnings=warnings,
                       agency_levels=[*concern.agency_levels(), *_priority(flag)], risk_categories=concern.categories)]
