"""XML parsing hardened against hostile input: no DTDs, no entities, no network, bounded size and shape.

Every adapter that reads XML (FHIR XML, CTF/CME/exclusions, CIN census) parses it here, so the limits live in one
place. The shape limits (attributes per element, depth, elements in all) are checked while lxml reads, before any
adapter builds a model: fhir.resources spent 276 s of CPU on one Patient element with 200,000 attributes. They are
far above what the DfE and UK Core formats need (a CIN census file nests about 8 deep, a FHIR Bundle about 20; FHIR
elements carry at most a few attributes: value, url, id, namespaces).
"""

from __future__ import annotations

import io
import re

from lxml import etree

from adapters.kit.interface import AdapterInputError, Rejection

MAX_XML_BYTES = 50 * 1024 * 1024
MAX_XML_ATTRIBUTES = 32  # per element
MAX_XML_DEPTH = 64
MAX_XML_ELEMENTS = 1_000_000  # in the whole document
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


class _TooComplex(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_bounded(data: bytes) -> etree._Element:
    """The root, read element by element so that an input past a shape limit stops the read at once."""
    depth = elements = 0
    reader = etree.iterparse(io.BytesIO(data), events=("start", "end"), resolve_entities=False, no_network=True,
                             load_dtd=False, dtd_validation=False, huge_tree=False, remove_comments=True,
                             remove_pis=True)
    for event, element in reader:
        if event == "end":
            depth -= 1
            continue
        depth += 1
        elements += 1
        if len(element.attrib) > MAX_XML_ATTRIBUTES:
            raise _TooComplex(f"an element has more than {MAX_XML_ATTRIBUTES} attributes")
        if depth > MAX_XML_DEPTH:
            raise _TooComplex(f"elements nested deeper than {MAX_XML_DEPTH}")
        if elements > MAX_XML_ELEMENTS:
            raise _TooComplex(f"more than {MAX_XML_ELEMENTS} elements")
    if reader.root is None:  # no element read (lxml raises a syntax error first): parse_xml's "not parseable"
        raise ValueError("no root element")
    return reader.root


def parse_xml(data: bytes, source: str) -> etree._Element:
    """Root element, or AdapterInputError naming the line of the XML syntax error."""
    if len(data) > MAX_XML_BYTES:
        raise AdapterInputError(Rejection(source, "", "", f"XML larger than {MAX_XML_BYTES} bytes"))
    if _DOCTYPE.search(data):
        raise AdapterInputError(Rejection(source, "", "", "DOCTYPE/ENTITY declarations are refused (XXE protection)"))
    try:
        return _parse_bounded(data)
    except _TooComplex as exc:  # value-free: the limit, never the element's name or content
        raise AdapterInputError(Rejection(source, "", "", f"XML refused before reading: {exc.reason}")) from None
    except etree.XMLSyntaxError as exc:
        line = getattr(exc, "lineno", None) or (exc.position[0] if exc.position else 0)
        raise AdapterInputError(Rejection(source, f"line {line}", "", "not well-formed XML")) from None
    except ValueError:
        raise AdapterInputError(Rejection(source, "", "", "not parseable as XML")) from None


def local(tag: object) -> str:
    """Tag name without namespace ('{ns}Child' -> 'Child'); string slicing, since it runs for every element."""
    return tag[tag.rfind("}") + 1:] if isinstance(tag, str) else ""


def element_path(el: etree._Element | None, base: etree._Element | None = None) -> str:
    """Namespace-free path with 1-based positions among same-named siblings: Message/Children/Child[2].

    With `base`, the path below it only (e.g. 'CINdetails[2]/Assessments'): walking to the root would count the
    siblings of every ancestor on each call, quadratic in a large census file.
    """
    parts = []
    while el is not None and el is not base:
        parent = el.getparent()
        name = local(el.tag)
        if parent is not None and name:
            same = "{*}" + name  # lxml's own filter, in C: this local name in any namespace or none
            before = sum(1 for _ in el.itersiblings(same, preceding=True))
            if before or next(el.itersiblings(same), None) is not None:
                name += f"[{before + 1}]"
        elif parent is not None:  # not an element (a comment): counted among the other non-elements
            same_nodes = [s for s in parent if local(s.tag) == name]
            if len(same_nodes) > 1:
                name += f"[{same_nodes.index(el) + 1}]"
        parts.append(name)
        el = parent
    return "/".join(reversed(parts))


def local_children(el: etree._Element | None, name: str) -> list[etree._Element]:
    """Child elements with this local name (any namespace or none), in document order; lxml filters them in C."""
    return [] if el is None or not name else list(el.iterchildren("{*}" + name))
