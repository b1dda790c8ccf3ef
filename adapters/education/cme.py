"""Children Missing Education transfer (a school's notice to its local authority that a pupil is leaving the roll)
-> education.child_missing_education, one per pupil. The input shape is documented in README.md."""

from __future__ import annotations

import re
from typing import Any

from adapters.education import grading, people
from adapters.education.header import Transfer, ctf_header, is_cme, load, public, refuse
from adapters.education.reading import Element, Reader, find, find_all
from adapters.education.records import map_records
from adapters.kit.events import new_event
from adapters.kit.interface import AdaptContext, AdapterOutput

FORMAT = "cme-xml"
SUPPORTED = range(23, 26)
_ROOT = re.compile(rb"<([A-Za-z_][\w.-]*:)?CTfile[\s>/]")


def _events(pupil_el: Element, transfer: Transfer, ctx: AdaptContext) -> tuple[str, list[dict[str, Any]]]:
    r = Reader(pupil_el)
    child = people.pupil(r)
    related = people.contacts(r, child["addresses"])
    future = people.address(r, find(pupil_el, "FutureAddress"), "other")
    if future:
        child["addresses"].append(future)
    date_left = r.date("LeavingDate", strict=True)
    if date_left is None:
        r.warn("cme.date_left_missing", "LeavingDate", "date the pupil left is missing")
    next_school = {"la_code": r.text("NextSchool/LEA", max_len=10), "urn": r.text("NextSchool/URN", max_len=20),
                   "name": r.text("NextSchool/SchoolName", max_len=200)}
    payload = {
        "reason": r.text("GroundsForRemoval"),
        "date_left": date_left,
        "last_school": public(transfer.source_school),
        "destination": r.text("Destination", max_len=10_000),
        "destination_school": next_school,
    }
    record_id = "cme:" + people.pupil_key(child)
    event = new_event(event_type="education.child_missing_education", agency="education", system=transfer.system,
                      record_id=record_id, record_version=transfer.record_version(pupil_el), fmt=FORMAT,
                      occurred_at=date_left or transfer.datetime or ctx.received_at, child=child, payload=payload,
                      related_people=related, warnings=r.warnings,
                      agency_levels=[(grading.SCALE, grading.CHILD_MISSING_EDUCATION)])
    return record_id, [event]


class CmeAdapter:
    name = "education.cme"
    agency = "education"
    formats = ("Children Missing Education XML transfer (CTF-style, CTF 23 to 25 header)",)
    content_types = ("application/xml", "text/xml")
    extensions = (".xml",)

    def sniff(self, data: bytes) -> bool:
        head = data[:4096]
        return bool(_ROOT.search(head)) and (b"Children Missing Education" in head or b"CMEpupilData" in head)

    def adapt(self, data: bytes, ctx: AdaptContext) -> AdapterOutput:
        root = load(data, ctx, "CTfile")
        transfer, header = ctf_header(root, ctx, SUPPORTED)
        pupils = find_all(root, "CMEpupilData/Pupil")
        if not is_cme(header) and find(root, "CMEpupilData") is None:
            raise refuse(ctx, "Header/DocumentName", "not a Children Missing Education transfer")
        if find(root, "CMEpupilData") is None:
            pupils = find_all(root, "CTFpupilData/Pupil")
        return map_records(pupils, ctx, lambda el: _events(el, transfer, ctx))


ADAPTER = CmeAdapter()
