"""FHIR R4 (UK Core) adapter: one resource or a Bundle, JSON or XML, parsed with fhir.resources R4B models."""

from __future__ import annotations

from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from adapters.health.fhir_common import Context
from adapters.health.fhir_resources import MAPPERS, SUPPORTING
from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput, FieldProblem, Rejection
from adapters.kit.xml import local, parse_xml

MAX_BYTES = 20 * 1024 * 1024


def _field_path(base: str, loc: tuple[Any, ...]) -> str:
    out = base
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _model(resource_type: str, obj: Any, base: str) -> Any:
    """Validate one resource with its fhir.resources model; errors name the element, never its value."""
    try:
        cls = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        raise FieldProblem(f"{base}.resourceType", "unknown FHIR resource type") from None
    try:
        return cls.model_validate(obj) if isinstance(obj, dict) else cls.model_validate_xml(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise FieldProblem(_field_path(base, tuple(err.get("loc", ()))), err.get("msg", "invalid")) from None
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
            raise AdapterInputError(Rejection(source, "", local(root.tag), "root element is not in the FHIR namespace"))
        return "xml", root
    raise AdapterInputError(Rejection(source, "", "", "neither FHIR JSON nor FHIR XML"))


def _entries(kind: str, doc: Any, source: str) -> list[tuple[str, str, Any, str | None]]:
    """(position, resource type, raw resource, fullUrl) for a single resource or each Bundle entry."""
    if kind == "json":
        if doc["resourceType"] != "Bundle":
            return [(doc["resourceType"], doc["resourceType"], doc, None)]
        entries = doc.get("entry") or []
        if not isinstance(entries, list):
            raise AdapterInputError(Rejection(source, "", "Bundle.entry", "not a list of entries"))
        out = []
        for i, entry in enumerate(entries):
            res = entry.get("resource") if isinstance(entry, dict) else None
            rtype = res.get("resourceType") if isinstance(res, dict) else None
            full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
            out.append((f"Bundle.entry[{i}]", rtype if isinstance(rtype, str) else "", res,
                        full_url if isinstance(full_url, str) else None))
        return out
    from lxml import etree

    if local(doc.tag) != "Bundle":
        return [(local(doc.tag), local(doc.tag), etree.tostring(doc), None)]
    out = []
    entries = [e for e in doc if local(e.tag) == "entry"]
    for i, entry in enumerate(entries):
        holder = next((c for c in entry if local(c.tag) == "resource"), None)
        res = next((c for c in holder if isinstance(c.tag, str)), None) if holder is not None else None
        url = next((c.get("value") for c in entry if local(c.tag) == "fullUrl"), None)
        out.append((f"Bundle.entry[{i}]", local(res.tag) if res is not None else "",
                    etree.tostring(res) if res is not None else None, url))
    return out


class FhirAdapter:
    name = "health.fhir"
    agency = "health"
    formats = ("FHIR R4 UK Core JSON", "FHIR R4 UK Core XML", "FHIR Bundle")
    content_types = ("application/fhir+json", "application/fhir+xml", "application/json", "application/xml",
                     "text/xml")
    extensions = (".json", ".xml")

    def sniff(self, data: bytes) -> bool:
        head = data[:4096]
        return b"resourceType" in head or b"http://hl7.org/fhir" in head

    def adapt(self, data: bytes, ctx: AdaptContext) -> AdapterOutput:
        if len(data) > MAX_BYTES:
            raise AdapterInputError(Rejection(ctx.source, "", "", f"input larger than {MAX_BYTES} bytes"))
        kind, doc = _load(data, ctx.source)
        entries = _entries(kind, doc, ctx.source)
        out = AdapterOutput()
        models: list[tuple[str, str, Any]] = []
        resolved: dict[str, Any] = {}
        for position, rtype, raw, full_url in entries:
            base = rtype or "resource"
            try:
                if raw is None or not rtype:
                    raise FieldProblem("resource", "entry has no resource")
                if rtype not in MAPPERS and rtype not in SUPPORTING:
                    raise FieldProblem(f"{rtype}.resourceType", "resource type not handled by the health adapter")
                model = _model(rtype, raw, base)
                models.append((position, base, model))
                # References resolve by "Type/id" and by the entry's fullUrl (urn:uuid:... in transaction Bundles).
                if model.id:
                    resolved[f"{rtype}/{model.id}"] = model
                if full_url:
                    resolved[full_url] = model
            except FieldProblem as p:
                out.rejections.append(Rejection(ctx.source, position, p.field, p.reason))
        fctx = Context(system=ctx.system or "fhir", received_at=ctx.received_at, resources=resolved)
        for position, base, model in models:
            mapper = MAPPERS.get(model.get_resource_type())
            if mapper is None:
                continue
            try:
                out.events.extend(mapper(model, fctx, base))
            except FieldProblem as p:
                out.rejections.append(Rejection(ctx.source, position, p.field, p.reason))
        return out


ADAPTER = FhirAdapter()
