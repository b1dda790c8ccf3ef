"""Condition and Observation: mapped only when coded as bearing on safeguarding (safeguarding_codes.py).

Every other Condition or Observation is skipped, not rejected: it is a valid clinical record, but not the hub's
business, and forwarding it would breach data minimisation (UK GDPR Art 5(1)(c)). Pregnancy counts only for a
person under 18 on the date the finding is effective, which needs the Patient's birth date (in the same Bundle).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from adapters.health.fhir_common import Context, Warning, codes_of, codings, fhir_event, first_code, subject_of, when
from adapters.health.safeguarding_codes import PREGNANCY_IN_MINOR, Concern, concern_for, is_pregnancy, merge

ADULT_AGE = 18


def _age_on(birth: str | None, on: str | None) -> int | None:
    if not birth or not on:
        return None
    born, day = dt.date.fromisoformat(birth[:10]), dt.date.fromisoformat(on[:10])
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _concern(codes: list[tuple[str | None, str]], child: dict[str, Any], effective: str | None,
             ctx: Context) -> Concern | None:
    found = concern_for(codes)
    if is_pregnancy(codes):
        age = _age_on(child.get("date_of_birth"), effective or ctx.received_at)
        if age is not None and age < ADULT_AGE:
            found = merge([c for c in (found, PREGNANCY_IN_MINOR) if c is not None])
    return found


def _notes(notes: Any) -> str | None:
    text = "\n".join(n.text for n in notes or [] if n.text)
    return text[:10000] or None


def _finding(resource: Any, ctx: Context, base: str, *, codes: list[tuple[str | None, str]], code: Any,
             status: str | None, categories: Any, value: str | None, effective: str | None) -> list[dict[str, Any]]:
    warnings: list[Warning] = []
    child = subject_of(resource.subject, ctx, f"{base}.subject", warnings)
    concern = _concern(codes, child, effective, ctx)
    coded = next(iter(codings([code])), None) if code is not None else None
    if concern is None or coded is None:
        return []
    payload = {"resource_kind": resource.get_resource_type(), "status": status, "code": coded,
               "categories": codings(categories), "value": value, "effective": effective,
               "note": _notes(resource.note)}
    return [fhir_event(resource, ctx, event_type="health.clinical_finding", occurred_at=effective, child=child,
                       payload=payload, warnings=warnings, agency_levels=concern.agency_levels(),
                       risk_categories=concern.categories)]


def map_condition(condition: Any, ctx: Context, base: str) -> list[dict[str, Any]]:
    effective = when(condition.onsetDateTime) or when(condition.recordedDate)
    if effective is None and condition.onsetPeriod is not None:
        effective = when(condition.onsetPeriod.start)
    status = first_code(condition.verificationStatus) if first_code(condition.verificationStatus) in (
        "refuted", "entered-in-error") else first_code(condition.clinicalStatus)
    return _finding(condition, ctx, base, codes=codes_of(condition.code), code=condition.code, status=status,
                    categories=condition.category, value=None, effective=effective)


def _observation_value(obs: Any) -> str | None:
    if obs.valueCodeableConcept is not None:
        concept = obs.valueCodeableConcept
        first = next((c for c in concept.coding or [] if c.code), None)
        shown: str | None = (first.display or first.code) if first else concept.text
        return shown
    if obs.valueQuantity is not None:
        q = obs.valueQuantity
        return " ".join(str(p) for p in (q.value, q.unit or q.code) if p is not None) or None
    for name in ("valueString", "valueBoolean", "valueInteger", "valueDateTime", "valueTime"):
        value = getattr(obs, name, None)
        if value is not None:
            return str(value).lower() if isinstance(value, bool) else str(value)
    return None


def map_observation(obs: Any, ctx: Context, base: str) -> list[dict[str, Any]]:
    effective = when(obs.effectiveDateTime) or when(obs.effectiveInstant)
    if effective is None and obs.effectivePeriod is not None:
        effective = when(obs.effectivePeriod.start)
    codes = [*codes_of(obs.code), *codes_of(obs.valueCodeableConcept)]  # "finding: <value>" observations too
    value = _observation_value(obs)
    return _finding(obs, ctx, base, codes=codes, code=obs.code, status=obs.status, categories=obs.category,
                    value=value[:500] if value else None, effective=effective)
