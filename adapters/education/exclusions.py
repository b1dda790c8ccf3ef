"""School Census exclusions (Exclusions/Exclusion of each pupil on roll or no longer on roll) -> education.exclusion.

Each exclusion is one record. Pupils without exclusions are not read at all: the hub has no business with them.
A pupil whose identity cannot be read costs one rejection (at the pupil) and its exclusions.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from adapters.education import grading, people
from adapters.education.codes import EXCLUSION_CATEGORY
from adapters.education.header import Transfer, header_datetime, load, organisation, public, sending_system
from adapters.education.reading import Element, Reader, children, find, find_all, position, value
from adapters.education.records import map_records
from adapters.kit.events import new_event
from adapters.kit.interface import AdaptContext, AdapterOutput, FieldProblem, Rejection

FORMAT = "school-census-xml"
PUPILS = ("{*}PupilOnRoll", "{*}PupilNoLongerOnRoll")
_ROOT = re.compile(rb"<([A-Za-z_][\w.-]*:)?SchoolCensus[\s>/]")


def _exclusions(pupil_el: Element) -> list[Element]:
    holder = find(pupil_el, "Exclusions")
    return children(holder, "Exclusion") + children(holder, "TermlyExclusion")


def _exclusion(el: Element, child: dict[str, Any], identity_warnings: list[dict[str, str]], transfer: Transfer,
               ) -> tuple[str, list[dict[str, Any]]]:
    r = Reader(el)
    code = r.text("Category", max_len=10)
    if code is None:
        raise FieldProblem("Category", "missing")
    category = EXCLUSION_CATEGORY.get(code.upper())
    if category is None:
        raise FieldProblem("Category", "not a School Census exclusion category (PERM, FIXD, SUSP, LNCH)")
    start = r.date("StartDate", strict=True)
    if start is None:
        raise FieldProblem("StartDate", "missing")
    reasons = find_all(el, "Reasons/Reason") or children(el, "Reason")
    if len(reasons) > 1:
        r.warn("exclusion.further_reasons", reasons[1], "more than one reason: the first is kept")
    reason = value(reasons[0]) if reasons else None
    if reason is not None and len(reason) > 100:
        raise FieldProblem(r.field(reasons[0]), "longer than 100 characters")
    payload = {
        "category": category,
        "start_date": start,
        "sessions": r.decimal("Sessions/Actual", "ActualSessions", "Sessions"),
        "reason": reason,
        "school": public(transfer.source_school),
    }
    key = "\x1f".join((people.pupil_key(child), category, start))
    record_id = "exclusion:" + hashlib.sha256(key.encode()).hexdigest()[:24]
    event = new_event(event_type="education.exclusion", agency="education", system=transfer.system,
                      record_id=record_id, record_version=transfer.record_version(el), fmt=FORMAT,
                      occurred_at=start, child=child, payload=payload,
                      warnings=[*identity_warnings, *r.warnings][:100],
                      agency_levels=[(grading.SCALE, grading.EXCLUSION[category])])
    return record_id, [event]


def _transfer(root: Element, ctx: AdaptContext) -> Transfer:
    source_el = find(root, "Header/Source")
    school = organisation(source_el, ctx, "Header/Source")
    if not school.get("urn"):
        school["urn"] = organisation(find(root, "SchoolInformation"), ctx, "SchoolInformation").get("urn")
    return Transfer(system=sending_system(ctx, school, "Header/Source"),
                    datetime=header_datetime(source_el, ctx, "Header/Source"), source_school=school)


class CensusExclusionsAdapter:
    name = "education.census_exclusions"
    agency = "education"
    formats = ("DfE School Census XML: exclusions and suspensions",)
    content_types = ("application/xml", "text/xml")
    extensions = (".xml",)

    def sniff(self, data: bytes) -> bool:
        return bool(_ROOT.search(data[:4096]))

    def adapt(self, data: bytes, ctx: AdaptContext) -> AdapterOutput:
        root = load(data, ctx, "SchoolCensus")
        transfer = _transfer(root, ctx)
        out = AdapterOutput()
        identities: dict[Element, tuple[dict[str, Any], list[dict[str, str]]]] = {}
        for pupil_el in root.iter(*PUPILS):
            if not _exclusions(pupil_el):
                continue
            r = Reader(pupil_el)
            try:
                child = people.pupil(r)
            except FieldProblem as p:
                out.rejections.append(Rejection(ctx.source, position(pupil_el), p.field, p.reason,
                                                pupil_el.sourceline))
                continue
            child["school"] = public(transfer.source_school)
            identities[pupil_el] = (child, r.warnings)
        pupil_of = {e: pupil_el for pupil_el in identities for e in _exclusions(pupil_el)}
        exclusions = list(pupil_of)

        def mapper(el: Element) -> tuple[str, list[dict[str, Any]]]:
            child, warnings = identities[pupil_of[el]]
            return _exclusion(el, child, warnings, transfer)

        out.extend(map_records(exclusions, ctx, mapper))
        return out


ADAPTER = CensusExclusionsAdapter()
