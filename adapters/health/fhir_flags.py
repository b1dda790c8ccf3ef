"""Flag: CP-IS flags become CP notices; flags coded for safeguarding become safeguarding flags; others clinical."""

from __future__ import annotations

from typing import Any

from adapters.health.cpis import PATIENT_FLAG_CATEGORY, cp_notice, is_cpis_flag
from adapters.health.fhir_common import (
    Context,
    Warning,
    codes_of,
    codings,
    fhir_event,
    organisation_of,
    reference_kind,
    subject_of,
    when,
)
from adapters.health.safeguarding_codes import Concern, concern_for, merge
from adapters.kit.interface import FieldProblem

FGM_RIS_SYSTEM = "http://fhir.nhs.net/ValueSet/risk-indicator-type-1-0"  # NHS FGM Risk Indication System flag
FGM = Concern(("fgm",), "high", "FGM risk indicator")


def _flag_concern(codes: list[tuple[str | None, str]]) -> Concern | None:
    fgm = any((s == PATIENT_FLAG_CATEGORY and c == "FGM") or (s == FGM_RIS_SYSTEM and c == "FGM") for s, c in codes)
    return merge([c for c in (concern_for(codes), FGM if fgm else None) if c is not None])


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
                       child=child, payload=payload, warnings=warnings, risk_level=concern.level,
                       risk_categories=concern.categories)]
