"""NHS Child Protection - Information Sharing (CP-IS): recognising its plans and flags, and the notice event.

CP-IS holds, against a child's NHS number (an unborn child's: the mother's), whether a local authority has the child
on a child protection plan, looked after, or on an unborn child protection plan. The HL7 v3 CP-IS messages name the
plan with CP-ISObservationType codes (OID 2.16.840.1.113883.2.1.3.2.4.17.469): CPPI/CPPIU, LACI/LACIU, UCPI/UCPIU.
The NHS England Patient Flag API marks a CP-IS flag with category CP-IS (PatientFlagCategory) and SNOMED CT 224353004
(CPIS-FlagCode value set). Either, on a CarePlan or a Flag, makes a `health.child_protection_plan_notice`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.health.fhir_common import (
    Context,
    Warning,
    fhir_event,
    organisation_of,
    subject_of,
    telecom,
    when,
)
from adapters.health.safeguarding_codes import SCALE, SNOMED, cin_abuse_categories, concern_for
from adapters.kit.events import warning

CPIS_OBSERVATION_TYPE = "urn:oid:2.16.840.1.113883.2.1.3.2.4.17.469"
PATIENT_FLAG_CATEGORY = "https://fhir.nhs.uk/England/CodeSystem/PatientFlagCategory"
CPIS_FLAG_SNOMED = "224353004"

# CP-ISObservationType plan codes, matched on the code alone (they are distinctive) -> plan_kind.
PLAN_KIND = {
    "CPPI": "child_protection_plan", "CPPIU": "child_protection_plan",
    "LACI": "looked_after_child", "LACIU": "looked_after_child",
    "UCPI": "unborn_child_protection_plan", "UCPIU": "unborn_child_protection_plan",
    "342191000000101": "child_protection_plan",  # SNOMED CT Subject to child protection plan, on a CarePlan
}
# plan_kind -> the notice's grading on health's own scale (health_safeguarding), in CP-IS's words.
PLAN_GRADING = {"child_protection_plan": "child_protection", "looked_after_child": "looked_after",
                "unborn_child_protection_plan": "unborn_child_protection"}


def plan_kind(codes: list[tuple[str | None, str]]) -> str | None:
    for system, code in codes:
        if code in PLAN_KIND and (system != SNOMED or code == "342191000000101"):
            return PLAN_KIND[code]
    return None


def is_cpis_flag(codes: list[tuple[str | None, str]]) -> bool:
    return any((s == PATIENT_FLAG_CATEGORY and c == "CP-IS") or (s == SNOMED and c == CPIS_FLAG_SNOMED)
               for s, c in codes)


def cp_notice(resource: Any, ctx: Context, base: str, *, subject: Any, codes: list[tuple[str | None, str]],
              status: str | None, period: Any, author: Any, extra_codes: Sequence[tuple[str | None, str]] = ()
              ) -> dict[str, Any]:
    """A `health.child_protection_plan_notice`, graded by its plan (the protocol places it on the common scale), with
    any further gradings and the categories its codes carry."""
    warnings: list[Warning] = []
    child = subject_of(subject, ctx, f"{base}.subject", warnings)
    kind = plan_kind(codes)
    if kind is None:
        kind = "child_protection_plan"
        warnings.append(warning("cp_notice.plan_kind_assumed", f"{base}.code",
                                "CP-IS record names no plan type; child protection plan assumed"))
    org = organisation_of(author, ctx)
    target = ctx.resources.get(author.reference or "") if author is not None else None
    phone = next(iter(telecom(target.telecom, "phone")), None) if target is not None and org else None
    concern = concern_for([*codes, *extra_codes])
    categories = [*cin_abuse_categories([*codes, *extra_codes]), *(concern.categories if concern else ())]
    payload: dict[str, Any] = {
        "plan_kind": kind, "status": status,
        "period_start": when(period.start) if period else None, "period_end": when(period.end) if period else None,
        "responsible_organisation": org, "contact_phone": phone,
    }
    return fhir_event(resource, ctx, event_type="health.child_protection_plan_notice",
                      occurred_at=payload["period_start"], child=child, payload=payload, warnings=warnings,
                      agency_levels=[(SCALE, PLAN_GRADING[kind]), *(concern.agency_levels() if concern else ())],
                      risk_categories=categories)
