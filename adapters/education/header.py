"""The file-level facts of a DfE transfer: root check, header, sending system, schools, version for event ids.

Problems here concern the whole file, so they raise AdapterInputError (naming the header element, never a value).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from adapters.education.codes import UNKNOWN_DESTINATION
from adapters.education.reading import Element, find, local_datetime, value
from adapters.kit.interface import AdaptContext, AdapterInputError, FieldProblem, Rejection
from adapters.kit.xml import local, parse_xml

CME_DOCUMENT_NAME = "children missing education"
_ORG_LIMITS = {"LEA": 10, "Estab": 10, "URN": 20, "SchoolName": 200}


@dataclass(frozen=True)
class Transfer:
    """What every record of one file shares."""

    system: str  # sending system: ctx.system, else "LEA-Estab" of the sending school
    datetime: str | None  # header DateTime, ISO with offset; also the record version when present
    version: str | None = None  # CTF version, e.g. "25.0"
    source_school: dict[str, Any] = field(default_factory=dict)
    destination_school: dict[str, Any] = field(default_factory=dict)

    def record_version(self, record: Element) -> str:
        """Header DateTime; without one, a hash of the record and the header, so a resend keeps its event ids."""
        if self.datetime:
            return self.datetime
        digest = hashlib.sha256(etree.tostring(record, method="c14n"))
        digest.update(repr((self.system, self.source_school, self.destination_school)).encode())
        return "sha256:" + digest.hexdigest()[:16]


def refuse(ctx: AdaptContext, field_path: str, reason: str) -> AdapterInputError:
    return AdapterInputError(Rejection(ctx.source, "", field_path, reason))


def load(data: bytes, ctx: AdaptContext, root_name: str) -> Element:
    """The root element, parsed with the kit's hardened parser, checked to be `root_name`."""
    root = parse_xml(data, ctx.source)
    if local(root.tag) != root_name:
        raise refuse(ctx, "", f"root element is not {root_name}")
    return root


def organisation(el: Element | None, ctx: AdaptContext, where: str) -> dict[str, Any]:
    """LEA/Estab/URN/SchoolName -> canonical organisation (la_code, urn, name); {} when absent."""
    if el is None:
        return {}
    values = {}
    for name, limit in _ORG_LIMITS.items():
        text = value(find(el, name))
        if text is not None and len(text) > limit:
            raise refuse(ctx, f"{where}/{name}", f"longer than {limit} characters")
        values[name] = text
    return {"la_code": values["LEA"], "urn": values["URN"], "name": values["SchoolName"], "_estab": values["Estab"]}


def public(org: dict[str, Any]) -> dict[str, Any]:
    """The organisation as the schema holds it (it has no field for the DfE establishment number)."""
    return {k: v for k, v in org.items() if not k.startswith("_") and v}


def sending_system(ctx: AdaptContext, school: dict[str, Any], where: str) -> str:
    if ctx.system:
        return ctx.system
    if not school.get("la_code") or not school.get("_estab"):
        raise refuse(ctx, where, "LEA and Estab are required to name the sending school")
    return f"{school['la_code']}-{school['_estab']}"


def header_datetime(header: Element | None, ctx: AdaptContext, where: str) -> str | None:
    text = value(find(header, "DateTime"))
    if text is None:
        return None
    try:
        return local_datetime(text, f"{where}/DateTime")
    except FieldProblem as p:
        raise refuse(ctx, p.field, p.reason) from None


def is_cme(header: Element | None) -> bool:
    name = value(find(header, "DocumentName")) or ""
    return name.strip().lower() == CME_DOCUMENT_NAME


def ctf_header(root: Element, ctx: AdaptContext, supported: range) -> tuple[Transfer, Element]:
    """The CTF-style header shared by the CTF and the CME transfer: (transfer facts, Header element)."""
    header = find(root, "Header")
    if header is None:
        raise refuse(ctx, "Header", "missing")
    version = value(find(header, "CTFversion"))
    if version is None:
        raise refuse(ctx, "Header/CTFversion", "missing")
    major = version.split(".")[0]
    if len(version) > 10 or not (major.isascii() and major.isdigit()) or int(major) not in supported:
        expected = f"expected {supported[0]} to {supported[-1]}"
        raise refuse(ctx, "Header/CTFversion", f"CTF version not supported ({expected})")
    source = organisation(find(header, "SourceSchool"), ctx, "Header/SourceSchool")
    destination = organisation(find(header, "DestSchool"), ctx, "Header/DestSchool")
    if destination.get("la_code") in UNKNOWN_DESTINATION or destination.get("_estab") in UNKNOWN_DESTINATION:
        destination = {}  # the lost-pupils database, not a school
    transfer = Transfer(system=sending_system(ctx, source, "Header/SourceSchool"),
                        datetime=header_datetime(header, ctx, "Header"), version=version,
                        source_school=source, destination_school=destination)
    return transfer, header
