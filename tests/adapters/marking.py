"""Plant a marker string where a sender controls names, not values: keys, resource types, element and attribute
names, CSV headers, segment ids. A rejection that repeats the marker has echoed the sender's text.

Seeds are the benchmark's synthetic records (broker.bench.records) plus a FHIR XML Patient and Bundle.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st
from lxml import etree

from broker.bench.records import FORMATS

MARKER = "Qqmarkqq"
# what made invalid audit records (a 500 after publication): an '@', a run of ten digits; and plain text
JSON_SUFFIXES = ["", "@example", "1234567890", " Testname", "\u00e9"]
XML_SUFFIXES = ["", "1234567890", "_x", "-9"]  # XML names cannot hold '@' or spaces
FHIR_NS = "http://hl7.org/fhir"

_FHIR_PATIENT_XML = (
    f'<Patient xmlns="{FHIR_NS}"><id value="p1"/><identifier><system value="https://fhir.nhs.uk/Id/nhs-number"/>'
    '<value value="9990000018"/></identifier><name><family value="Example"/><given value="Testchild"/></name>'
    '<gender value="female"/><birthDate value="2015-01-02"/></Patient>')
_FHIR_BUNDLE_XML = (f'<Bundle xmlns="{FHIR_NS}"><type value="collection"/><entry><resource>{_FHIR_PATIENT_XML}'
                    f'</resource></entry><entry><resource>{_FHIR_PATIENT_XML}</resource></entry></Bundle>')


def _kind(content_type: str) -> str:
    if content_type.endswith("json"):
        return "json"
    if content_type.endswith("xml"):
        return "xml"
    return "csv" if content_type == "text/csv" else "hl7"


# (adapter, agency, content type, kind, seed)
SEEDS: list[tuple[str, str, str, str, bytes]] = [
    *((f.name, f.agency, f.content_type, _kind(f.content_type), f.make(*numbers))
      for f in FORMATS for numbers in ((1,), (2, 3, 4))),
    ("health.fhir", "health", "application/fhir+xml", "xml", _FHIR_PATIENT_XML.encode()),
    ("health.fhir", "health", "application/fhir+xml", "xml", _FHIR_BUNDLE_XML.encode()),
]
SYSTEMS = {f.name: f.system for f in FORMATS}


def _dicts(value: Any, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            _dicts(item, found)
    elif isinstance(value, list):
        for item in value:
            _dicts(item, found)
    return found


def plant_json(seed: bytes, op: str, pick: int, marker: str) -> bytes:
    doc = orjson.loads(seed)
    found = _dicts(doc, [])
    if op == "resourceType" and (typed := [d for d in found if "resourceType" in d]):
        typed[pick % len(typed)]["resourceType"] = marker
    elif op == "rename" and (named := [d for d in found if d]):
        target = named[pick % len(named)]
        keys = list(target)
        target[marker] = target.pop(keys[pick % len(keys)])
    else:
        found[pick % len(found)][marker] = "x"
    return orjson.dumps(doc)


def plant_xml(seed: bytes, op: str, pick: int, marker: str) -> bytes:
    root = etree.fromstring(seed)
    elements = list(root.iter())
    target = elements[pick % len(elements)]
    namespace = etree.QName(target).namespace
    name = f"{{{namespace}}}{marker}" if namespace else marker
    if op == "rename":
        target.tag = name
    elif op == "attribute":
        target.set(marker, "x")
    else:
        etree.SubElement(target, name).set("value", "x")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def plant_csv(seed: bytes, op: str, pick: int, marker: str) -> bytes:
    lines = seed.decode().split("\r\n")
    header = lines[0].split(",")
    at = pick % len(header)
    if op == "rename":
        header[at] = marker
    else:
        header.insert(at, marker)
        lines[1:] = [",".join([*row.split(",")[:at], "x", *row.split(",")[at:]]) if row else row
                     for row in lines[1:]]
    return "\r\n".join([",".join(header), *lines[1:]]).encode()


def plant_hl7(seed: bytes, op: str, pick: int, marker: str) -> bytes:
    segments = seed.decode().split("\r")
    filled = [i for i, s in enumerate(segments) if s]
    at = filled[pick % len(filled)]
    segments[at] = marker + segments[at][3:] if op == "rename" else segments[at] + "\r" + marker + "|x"
    return "\r".join(segments).encode()


OPS = {"json": ["resourceType", "rename", "add"], "xml": ["rename", "attribute", "child"],
       "csv": ["rename", "insert"], "hl7": ["rename", "add"]}
PLANT = {"json": plant_json, "xml": plant_xml, "csv": plant_csv, "hl7": plant_hl7}


@st.composite
def marked_inputs(draw: Any) -> tuple[str, str, str, bytes, str]:
    """(adapter, agency, content type, body with a marker planted in a name, the marker)."""
    adapter, agency, content_type, kind, seed = draw(st.sampled_from(SEEDS))
    suffixes = XML_SUFFIXES if kind == "xml" else JSON_SUFFIXES
    marker = MARKER + draw(st.sampled_from(suffixes))
    body = PLANT[kind](seed, draw(st.sampled_from(OPS[kind])), draw(st.integers(0, 10_000)), marker)
    return adapter, agency, content_type, body, marker


def echoes(text: str) -> bool:
    """Whether `text` repeats the marker (any case: some formats fold names)."""
    return MARKER.lower() in text.lower()
