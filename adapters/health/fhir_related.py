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
    identifiers,
    is_restricted,
    subject_of,
    telecom,
    when,
)
from adapters.kit.events import prune
from adapters.kit.interface import FieldProblem


def _name(names: Any) -> tuple[list[str], str | None]:
    chosen = next((n for n in names or [] if n.use == "official"), None) or next(iter(names or []), None)
    return (list(chosen.given or []), chosen.family) if chosen is not None else ([], None)


def related_person(rp: Any, ctx: Context, base: str, warnings: list[Warning]) -> dict[str, Any] | None:
    """The canonical related_person: role, relationship code and parental responsibility from the codes, and what is
    known of the person. A birth notification's mother may carry only her NHS number: she is kept with it. A person
    with nothing at all (no identifier, name, contact or resource id) cannot be told apart from anyone: None."""
    codes = [code for _, code in codes_of(rp.relationship)]
    code = next((c for c in codes if c in RELATIONSHIP_ROLE), codes[0] if codes else None)
    given, family = _name(rp.name)
    person = {
        **identifiers(rp.identifier, ctx, base, warnings),
        "given_names": given, "family_name": family, "sex": rp.gender, "date_of_birth": when(rp.birthDate),
        "phones": telecom(rp.telecom, "phone"), "emails": telecom(rp.telecom, "email"),
        "addresses": [address(a, f"{base}.address[{i}]", warnings) for i, a in enumerate(rp.address or [])],
    }
    if is_restricted(rp):
        person["restricted"] = True
    if not prune(person):
        if not rp.id:
            warnings.append({"code": "related_person.unidentified", "field": base,
                             "message": "related person carries no identifier, name, contact or id; left out"})
            return None
        person["local_ids"] = [{"system": f"{ctx.system}/RelatedPerson", "value": rp.id}]
    return {"role": RELATIONSHIP_ROLE.get(code or "", "other"), "relationship": code[:100] if code else None,
            "parental_responsibility": True if any(c in PARENTAL for c in codes) else None, "person": person}


def map_related_person(rp: Any, ctx: Context, base: str) -> list[dict[str, Any]]:
    if rp.patient is None:
        raise FieldProblem(f"{base}.patient", "missing: the patient this person is related to")
    warnings: list[Warning] = []
    child = subject_of(rp.patient, ctx, f"{base}.patient", warnings)
    related = related_person(rp, ctx, base, warnings)
    last_updated = when(rp.meta.lastUpdated) if rp.meta is not None else None
    return [fhir_event(rp, ctx, event_type="person.updated", occurred_at=last_updated, child=child,
                       related_people=[related] if related else [], warnings=warnings,
                       payload={"record_kind": "RelatedPerson", "active": rp.active})]
