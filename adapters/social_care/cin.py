"""DfE Children in Need census XML (2022 to 2026 returns) -> canonical social care events.

Each <Child> yields `person.identified` and, per <CINdetails>, its referral, assessments, section 47 enquiries,
child protection plan events and closure. A child that cannot be identified is rejected as a whole; a bad event date
refuses only that event; the rest of the file still flows. The sending system is the transport's (ctx.system) or the
Header's LEA code; without either, event ids and linkage could collide across authorities, so the file is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any

from lxml import etree

from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput, FieldProblem, Rejection
from adapters.kit.xml import element_path, local, parse_xml
from adapters.social_care.cin_child import child_person
from adapters.social_care.cin_details import FORMAT, ChildScope, details_events
from adapters.social_care.cin_reading import CinHeader, Element, elements, read_header
from adapters.social_care.cin_xsd import SchemaFinding, schema_findings
from adapters.social_care.common import Warning, receipt_day, sc_event

_SNIFF = re.compile(rb"<([A-Za-z_][\w.-]*:)?Message[\s>]")
MAX_SYSTEM = 200


def _refuse(ctx: AdaptContext, field: str, reason: str) -> AdapterInputError:
    return AdapterInputError(Rejection(ctx.source, "", field, reason))


def _children(root: Element, ctx: AdaptContext) -> list[Element]:
    if local(root.tag) != "Message":
        raise _refuse(ctx, "", "root element is not a CIN census Message")
    groups = elements(root, "Children")
    if len(groups) != 1:
        raise _refuse(ctx, "Children", "missing" if not groups else "appears more than once")
    return elements(groups[0], "Child")


def _system(header: CinHeader, ctx: AdaptContext) -> str:
    system = (ctx.system or "").strip()[:MAX_SYSTEM] or header.lea
    if not system:
        raise _refuse(ctx, "Header/Source/LEA", "missing or not a 3-digit LA code, and the transport named no "
                                                "sending system")
    return system


def map_child(child_el: Element, header: CinHeader, system: str, ctx: AdaptContext) -> AdapterOutput:
    """All events of one <Child>; FieldProblem when the child cannot be identified."""
    today = receipt_day(ctx)
    warnings: list[Warning] = []
    child: dict[str, Any] = child_person(child_el, header.year, today, warnings)
    scope = ChildScope(ctx.source, system, child_el, child, warnings, today)
    scope.events.append(sc_event(
        event_type="person.identified", system=system, record_id=child["la_child_id"], part="person", fmt=FORMAT,
        occurred_at=header.reference_date or ctx.received_at, child=child,
        payload={"record_kind": "CIN ChildIdentifiers"}, warnings=warnings))
    details = elements(child_el, "CINdetails")
    if not details:
        scope.rejections.append(Rejection(ctx.source, element_path(child_el), "CINdetails",
                                          "missing: a child in the census has at least one episode of need",
                                          child_el.sourceline))
    for el in details:
        details_events(el, scope)
    return AdapterOutput(scope.events, scope.rejections)


class CinAdapter:
    name = "social_care.cin"
    agency = "social_care"
    formats = ("DfE Children in Need census XML (2022 to 2026)",)
    content_types = ("application/xml", "text/xml")
    extensions = (".xml",)

    def __init__(self, schemas: Mapping[int, etree.XMLSchema] | None = None) -> None:
        """`schemas`: census year -> compiled DfE XSD, to validate files of that year (see cin_xsd); when none
        are given, those in the context's settings (AdaptContext.settings.cin_schemas)."""
        self.schemas = dict(schemas or {})

    def sniff(self, data: bytes) -> bool:
        return bool(_SNIFF.search(data[:4096]))

    def adapt(self, data: bytes, ctx: AdaptContext) -> AdapterOutput:
        root = parse_xml(data, ctx.source)
        children = _children(root, ctx)
        header = read_header(root)
        system = _system(header, ctx)
        out = AdapterOutput()
        refused = self._schema_refusals(root, header, ctx, out)
        for child_el in children:
            if child_el in refused:
                continue
            try:
                mapped = map_child(child_el, header, system, ctx)
            except FieldProblem as p:
                out.rejections.append(Rejection(ctx.source, element_path(child_el), p.field, p.reason,
                                                child_el.sourceline))
                continue
            # the Child is the input record: its path only on demand (it counts the Child's preceding siblings)
            out.add(mapped.events, partial(element_path, child_el), child_el.sourceline)
            out.rejections.extend(mapped.rejections)
        return out

    def _schema_refusals(self, root: Element, header: CinHeader, ctx: AdaptContext,
                         out: AdapterOutput) -> set[Element]:
        """With an XSD for the file's year: each finding is a rejection, and a child with any finding is refused."""
        year = header.year
        schemas = self.schemas or ctx.settings.cin_schemas  # the shell's, loaded once from MASH_CIN_XSD_DIR
        schema = schemas.get(year) if year is not None else None
        if schema is None or year is None:  # year is None only when schema is: for the type checker
            return set()
        findings: list[SchemaFinding] = schema_findings(root, schema, year)
        out.rejections.extend(_finding(f, ctx.source) for f in findings)
        return {f.child for f in findings if f.child is not None}


def _finding(finding: SchemaFinding, source: str) -> Rejection:
    """An XSD finding in a Child is that Child's rejection (its record), the path below it the field."""
    if finding.child is None:
        return Rejection(source, finding.record, finding.field, finding.reason, finding.line)
    child = element_path(finding.child)
    below = finding.record.removeprefix(child).lstrip("/")
    return Rejection(source, child, below or finding.field, finding.reason, finding.line)


# XSD validation where the operator provides the DfE schemas (MASH_CIN_XSD_DIR): the shell loads them once at start
# (broker/adapter_settings.py) and passes them in AdaptContext.settings.cin_schemas; structural checks always run.
ADAPTER = CinAdapter()
