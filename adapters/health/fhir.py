"""FHIR R4 (UK Core) adapter: one resource or a Bundle, JSON or XML, parsed with fhir.resources R4B models.

One rule for resources that carry no safeguarding fact: skipped, never rejected, and counted by resource type in
AdapterOutput.skipped (so `convert` prints them and the HTTP answer lists them). That covers a FHIR R4 type the
adapter does not map (AllergyIntolerance, List, Consent, CareTeam, Medication...), a type read only to resolve
references (Organization, Practitioner...; SUPPORTING), and a mapped type whose content is not the hub's business
(an ordinary Condition, Observation or CarePlan: its mapper returns no event). Rejected: an entry without a resource,
a type name that is not FHIR R4's (never quoted: it is the sender's text), and a mapped or supporting resource that
is not valid FHIR. Skipped types are not validated: nothing is read from them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from adapters.health.fhir_common import Context
from adapters.health.fhir_resources import MAPPERS, SUPPORTING
from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput, FieldProblem, Rejection
from adapters.kit.json_lines import locator
from adapters.kit.xml import local, parse_xml

MAX_BYTES = 20 * 1024 * 1024


def _field_path(base: str, loc: tuple[Any, ...]) -> str:
    out = base
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")


def _known_type(resource_type: Any) -> str | None:
    """The resource type when it is a FHIR R4 type name (FHIR's vocabulary, safe to quote), else None: any other
    text is the sender's (it may be anything, a name included) and is never quoted; positions then say "resource"."""
    if not isinstance(resource_type, str):
        return None
    if resource_type in MAPPERS or resource_type in SUPPORTING:
        return resource_type
    if not _TYPE_NAME.fullmatch(resource_type):
        return None
    try:
        get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None
    return resource_type


def _handled(resource_type: str) -> bool:
    return resource_type in MAPPERS or resource_type in SUPPORTING


def _problem(base: str, err: Mapping[str, Any]) -> FieldProblem:
    """A pydantic error as a field path and reason. An unknown key's name is the sender's: the path stops at the
    element that holds it ("unknown field at Patient.extension[3]"), never naming it."""
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "extra_forbidden" and loc:
        where = _field_path(base, loc[:-1])
        return FieldProblem(where, f"unknown field at {where} (not in FHIR R4)")
    return FieldProblem(_field_path(base, loc), err.get("msg", "invalid"))


def _model(resource_type: str, obj: Any, base: str) -> Any:
    """Validate one resource with its fhir.resources model; errors name the element, never its value."""
    try:
        cls = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        raise FieldProblem(f"{base}.resourceType", "unknown FHIR resource type") from None
    try:
        return cls.model_validate(obj) if isinstance(obj, dict) else cls.model_validate_xml(obj)
    except ValidationError as exc:
        raise _problem(base, exc.errors()[0]) from None
    except (ValueError, TypeError, AttributeError, LookupError, RecursionError):
        # fhir_core's XML reader raises KeyError/IndexError on unknown or misplaced elements
        raise FieldProblem(base, f"not a valid {resource_type} resource") from None


def _load(data: bytes, source: str) -> tuple[str, Any]:
    """('json', dict) or ('xml', bytes) after the hardening checks, with the resource type known."""
    head = data.lstrip()[:1]
    if head == b"{":
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise AdapterInputError(Rejection(source, "", "", f"not valid JSON (at byte {exc.pos})")) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("resourceType"), str):
            raise AdapterInputError(Rejection(source, "", "resourceType", "missing: not a FHIR resource"))
        return "json", obj
    if head == b"<":
        root = parse_xml(data, source)
        if root.nsmap.get(None) != "http://hl7.org/fhir":
            raise AdapterInputError(Rejection(source, "", "", "root element is not in the FHIR namespace"))
        return "xml", root
    if head == b"[":
        raise AdapterInputError(Rejection(source, "", "", "a JSON array is not a record this adapter reads: send one "
                                          "FHIR resource or a Bundle"))
    raise AdapterInputError(Rejection(source, "", "", "neither FHIR JSON nor FHIR XML"))


Entry = tuple[str, str, Any, str | None, int | None]


def _entries(kind: str, doc: Any, source: str) -> list[Entry]:
    """(position, resource type, raw resource, fullUrl, line) for a single resource or each Bundle entry. The line
    is XML's (lxml keeps it); a JSON entry's is found only when something is rejected (kit.json_lines)."""
    if kind == "json":
        if doc["resourceType"] != "Bundle":
            return [(_known_type(doc["resourceType"]) or "resource", doc["resourceType"], doc, None, None)]
        entries = doc.get("entry") or []
        if not isinstance(entries, list):
            raise AdapterInputError(Rejection(source, "", "Bundle.entry", "not a list of entries"))
        out: list[Entry] = []
        for i, entry in enumerate(entries):
            res = entry.get("resource") if isinstance(entry, dict) else None
            rtype = res.get("resourceType") if isinstance(res, dict) else None
            full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
            out.append((f"Bundle.entry[{i}]", rtype if isinstance(rtype, str) else "", res,
                        full_url if isinstance(full_url, str) else None, None))
        return out
    from lxml import etree

    if local(doc.tag) != "Bundle":
        return [(_known_type(local(doc.tag)) or "resource", local(doc.tag), etree.tostring(doc), None, doc.sourceline)]
    out = []
    entries = [e for e in doc if local(e.tag) == "entry"]
    for i, entry in enumerate(entries):
        holder = next((c for c in entry if local(c.tag) == "resource"), None)
        res = next((c for c in holder if isinstance(c.tag, str)), None) if holder is not None else None
        url = next((c.get("value") for c in entry if local(c.tag) == "fullUrl"), None)
        out.append((f"Bundle.entry[{i}]", local(res.tag) if res is not None else "",
                    etree.tostring(res) if res is not None else None, url, entry.sourceline))
    return out


class FhirAdapter:
    name = "health.fhir"
    agency = "health"
    formats = ("FHIR R4 UK Core JSON", "FHIR R4 UK Core XML", "FHIR Bundle")
    content_types = ("application/fhir+json", "application/fhir+xml", "application/json", "application/xml",
                     "text/xml")
    extensions = (".json", ".xml")
    expects = 'a FHIR resource or Bundle: JSON with "resourceType", or XML in the http://hl7.org/fhir namespace'

    def sniff(self, data: bytes) -> bool:
        head = data[:4096]
        return b"resourceType" in head or b"http://hl7.org/fhir" in head

    def adapt(self, data: bytes, ctx: AdaptContext) -> AdapterOutput:
        if len(data) > MAX_BYTES:
            raise AdapterInputError(Rejection(ctx.source, "", "", f"input larger than {MAX_BYTES} bytes"))
        kind, doc = _load(data, ctx.source)
        entries = _entries(kind, doc, ctx.source)
        out = AdapterOutput()
        if kind == "json":  # a Bundle entry's line, found only if one is rejected
            out.locate = locator(data, "entry", r"Bundle\.entry\[(\d+)\]")
        models: list[tuple[str, str, Any, int | None]] = []
        resolved: dict[str, Any] = {}
        for position, rtype, raw, full_url, line in entries:
            base = _known_type(rtype) or "resource"
            try:
                if raw is None or not rtype:
                    raise FieldProblem("resource", "entry has no resource")
                if not _handled(rtype):
                    if base == "resource":  # not a FHIR R4 type name: the sender's text, never quoted
                        raise FieldProblem("resource.resourceType", "not a FHIR R4 resource type")
                    out.skip(rtype)  # a FHIR type that carries no safeguarding fact the adapter maps
                    continue
                model = _model(rtype, raw, base)
                models.append((position, base, model, line))
                # References resolve by "Type/id" and by the entry's fullUrl (urn:uuid:... in transaction Bundles).
                if model.id:
                    resolved[f"{rtype}/{model.id}"] = model
                if full_url:
                    resolved[full_url] = model
            except FieldProblem as p:
                out.rejections.append(Rejection(ctx.source, position, p.field, p.reason, line))
        fctx = Context(system=ctx.system or "fhir", received_at=ctx.received_at, resources=resolved)
        for position, base, model, line in models:
            mapper = MAPPERS.get(model.get_resource_type())
            if mapper is None:  # read only to resolve references
                out.skip(base)
                continue
            try:
                events = mapper(model, fctx, base)
                if not events:  # valid, but not the hub's business (an ordinary Condition)
                    out.skip(base)
                out.add(events, position, line)
            except FieldProblem as p:
                out.rejections.append(Rejection(ctx.source, position, p.field, p.reason, line))
        out.rejections = [out.located(r) for r in out.rejections]  # JSON: the line map, built only now
        return out


ADAPTER = FhirAdapter()
