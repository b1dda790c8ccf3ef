"""DfE Common Transfer File (CTF 23 to 25) -> person.identified, education.pupil_record and, when the latest year's
attendance is below the configured threshold, education.attendance_concern; one pupil is one record."""

from __future__ import annotations

import re
from typing import Any

from adapters.education import ctf_payload, grading, people
from adapters.education.header import Transfer, ctf_header, is_cme, load, public, refuse
from adapters.education.reading import Element, Reader, find_all
from adapters.education.records import check_threshold, map_records
from adapters.kit.events import new_event
from adapters.kit.interface import AdaptContext, AdapterOutput

FORMAT = "ctf-xml"
SUPPORTED = range(23, 26)
_ROOT = re.compile(rb"<([A-Za-z_][\w.-]*:)?CTfile[\s>/]")


def _events(pupil_el: Element, transfer: Transfer, ctx: AdaptContext) -> tuple[str, list[dict[str, Any]]]:
    r = Reader(pupil_el)
    child = people.pupil(r)
    child["school"] = public(transfer.source_school)
    related = people.contacts(r, child["addresses"])
    years = ctf_payload.attendance(r)
    payload = ctf_payload.pupil_payload(r, transfer, years)
    record_id = "pupil:" + people.pupil_key(child)
    common: dict[str, Any] = {"agency": "education", "system": transfer.system, "record_id": record_id,
              "record_version": transfer.record_version(pupil_el), "fmt": FORMAT,
              "occurred_at": transfer.datetime or ctx.received_at, "child": child, "warnings": r.warnings}
    events = [
        new_event(event_type="person.identified", payload={"record_kind": "Pupil"}, related_people=related, **common),
        new_event(event_type="education.pupil_record", payload=payload, related_people=related, **common),
    ]
    low = ctf_payload.concern(years, ctx.attendance_threshold)
    rate = ctf_payload.attendance_rate(low) if low is not None else None
    if low is not None and rate is not None:
        events.append(new_event(
            event_type="education.attendance_concern", part=f"education.attendance_concern:{low.get('year', '')}",
            payload={"attendance": low, "threshold": ctx.attendance_threshold, "school": payload["source_school"]},
            agency_levels=[(grading.SCALE, grading.attendance(rate))], **common))
    return record_id, events


class CtfAdapter:
    name = "education.ctf"
    agency = "education"
    formats = ("DfE Common Transfer File XML (CTF 23, 24, 25)",)
    content_types = ("application/xml", "text/xml")
    extensions = (".xml",)

    def sniff(self, data: bytes) -> bool:
        head = data[:4096]
        return (bool(_ROOT.search(head)) and b"CTFversion" in head
                and b"Children Missing Education" not in head and b"CMEpupilData" not in head)

    def adapt(self, data: bytes, ctx: AdaptContext) -> AdapterOutput:
        if not check_threshold(ctx.attendance_threshold):
            raise refuse(ctx, "", "attendance threshold must be between 0 and 1")
        root = load(data, ctx, "CTfile")
        transfer, header = ctf_header(root, ctx, SUPPORTED)
        if is_cme(header):
            raise refuse(ctx, "Header/DocumentName", "a Children Missing Education transfer, not a CTF")
        pupils = find_all(root, "CTFpupilData/Pupil")
        return map_records(pupils, ctx, lambda el: _events(el, transfer, ctx))


ADAPTER = CtfAdapter()
