"""Optional validation against the DfE CIN census XSD of the file's census year.

The XSDs are third-party files the project does not ship. A deployment that has them loads each once at start-up
(`load_schema`, the only I/O here, for the shell to call) and builds the adapter with them: `CinAdapter(schemas=
{2022: load_schema(path), ...})`. Validation itself is a plain function over the parsed tree. lxml's messages quote
the offending value, so they are never passed on: a finding names the element and the libxml2 error type only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from adapters.kit.xml import element_path, local

Element = etree._Element


@dataclass(frozen=True, slots=True)
class SchemaFinding:
    child: Element | None  # the <Child> the error lies in; None for the Header or the message structure
    record: str  # element path of the failing element
    field: str  # its local name
    reason: str
    line: int | None = None  # the input line libxml2 reports the error on


def load_schema(path: str | Path) -> etree.XMLSchema:
    """An XSD from a trusted local file, parsed without network access or DTD loading."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


def schema_findings(root: Element, schema: etree.XMLSchema, year: int) -> list[SchemaFinding]:
    """Every XSD error, placed on its element and attributed to its <Child>."""
    if schema.validate(root):
        return []
    tree = root.getroottree()
    out = []
    for entry in schema.error_log:
        el = _element_at(tree, root, entry)
        out.append(SchemaFinding(
            child=_enclosing_child(el), record=element_path(el) if el is not None else "",
            field=local(el.tag) if el is not None else "",
            reason=f"does not conform to the CIN {year} XML schema ({entry.type_name})", line=entry.line or None))
    return out


def _element_at(tree: etree._ElementTree, root: Element, entry: etree._LogEntry) -> Element | None:
    """The element libxml2 names by XPath; failing that, the last element starting on the error's line."""
    path = getattr(entry, "path", None)
    if path:
        try:
            found = tree.xpath(path)
        except etree.XPathError:
            found = []
        if found and isinstance(found[0], etree._Element):
            return found[0]
    on_line = [e for e in root.iter() if isinstance(e.tag, str) and e.sourceline == entry.line]
    return on_line[-1] if on_line else None


def _enclosing_child(el: Element | None) -> Element | None:
    while el is not None:
        parent = el.getparent()
        if local(el.tag) == "Child" and parent is not None and local(parent.tag) == "Children":
            return el
        el = parent
    return None


_XSD_NAME = re.compile(r"CIN_schema_(\d{4})\.xsd$", re.IGNORECASE)


def schemas_from_dir(directory: str | Path | None) -> dict[int, etree.XMLSchema]:
    """{census year: schema} from the DfE files named CIN_schema_<year>.xsd in a folder (MASH_CIN_XSD_DIR).

    The DfE publishes the XSDs; the broker does not ship them, so validation is on where an operator provides them.
    """
    if not directory:
        return {}
    return {int(m.group(1)): load_schema(p) for p in sorted(Path(directory).iterdir())
            if (m := _XSD_NAME.search(p.name))}
