"""RelatedPerson: a parent, carer or other contact of the patient -> `person.updated` about that patient."""

from __future__ import annotations

from typing import Any

from adapters.health.fhir_common import (
    PARENTAL,
    RELATIONSHIP_ROLE,
    Context,
    Warning,
    address,
    codes_of,
    fhir_event,
    subject_of,
    telecom,
    when,
)
from adapters.kit.interface import FieldProblem


def _name(names: Any) -> tuple[list[str], str | None]:
    chosen = next((n for n in names or [] if n.use == "official"), None) or next(iter(names or []), None)
    return (list(chosen.given or []), chosen.family) if chosen is not None else ([], None)


def related_person(rp: Any, base: str, warnings: list[Warning]) -> dict[str, Any]:
    """The canonical related_person: role, relationship code and parental responsibility from the codes."""
    codes = [code for _, code in codes_of(rp.relationship)]
    code = next((c for c in codes if c in RELATIONSHIP_ROLE), codes[0] if codes else None)
    given, family = _name(rp.name)
    person = {
        "given_names": given, "family_name": family, "sex": rp.gender, "date_of_birth": when(rp.birthDate),
        "phones": telecom(rp.telecom, "phone"), "emails": telecom(rp.telecom, "email"),
        "addresses": [address(a, f"{base}.address[{i}]", warnings) for i, a in enumerate(rp.address or [])],
    }
    return {"role": RELATIONSHIP_ROLE.get(code or "", "other"), "relationship": code[:100] if code else None,
            "parental_responsibility": True if any(c in PARENTAL for c in codes) else None, "person": person}


def map_related_person(rp: Any, ctx: Context, base: str) -> list[dict[str, Any]]:
    if rp.patient is None:
        raise FieldProblem(f"{base}.patient", "missing: the patient this person is related to")
    warnings: list[Warning] = []
    child = subject_of(rp.patient, ctx, f"{base}.patient", warnings)
    related = related_person(rp, base, warnings)
    last_updated = when(rp.meta.lastUpdated) if rp.meta is not None else None
    return [fhir_event(rp, ctx, event_type="person.updated", occurred_at=last_updated, child=child,
                       related_people=[related], warnings=warnings,
                       payload={"record_kind": "RelatedPerson", "active": rp.active})]
