"""XML shape limits (one place: adapters/kit/xml.py) and truthful reasons when no adapter reads a body."""

from __future__ import annotations

import codecs
import gzip
import time

import pytest

from adapters.kit.interface import AdaptContext, AdapterInputError
from adapters.kit.registry import select
from adapters.kit.xml import MAX_XML_ATTRIBUTES, MAX_XML_DEPTH, MAX_XML_ELEMENTS
from broker.bench.records import BY_NAME
from broker.pipeline.identify import LinkageKey
from broker.pipeline.intake import prepare

CTX = AdaptContext(source="request", received_at="2026-01-01T00:00:00Z", system="999")
FHIR = 'xmlns="http://hl7.org/fhir"'


def _many_attributes(n: int) -> bytes:
    attributes = " ".join(f'a{i}="Testvalue{i}"' for i in range(n))
    return f'<Patient {FHIR}><id value="p1" {attributes}/><gender value="female"/></Patient>'.encode()


def _deep(depth: int, root: str) -> bytes:
    return (f"<{root}>" + "<extension>" * depth + "</extension>" * depth + f"</{root.split()[0]}>").encode()


# the root each XML adapter expects, so the input gets past its first check into the parser
ROOTS = {"health.fhir": f"Patient {FHIR}", "education.ctf": "CTfile", "education.cme": "CTfile",
         "social_care.cin": "Message"}


def test_an_element_with_200k_attributes_is_refused_in_well_under_a_second() -> None:
    """The 2.3 MB Patient that took 276 s of CPU in the FHIR parser: refused before any model is built."""
    data = _many_attributes(200_000)
    assert len(data) > 2_000_000
    adapter = BY_NAME["health.fhir"]
    started = time.process_time()
    with pytest.raises(AdapterInputError) as refused:
        select("health", data, source="request", content_type=adapter.content_type).adapt(data, CTX)
    assert time.process_time() - started < 1.0
    reason = refused.value.rejection.reason
    assert f"more than {MAX_XML_ATTRIBUTES} attributes" in reason and "Testvalue" not in str(refused.value.rejection)
    assert (refused.value.rejection.record, refused.value.rejection.field) == ("", "")


@pytest.mark.parametrize("name", sorted(ROOTS))
@pytest.mark.parametrize(("shape", "expected"), [
    ("attributes", f"more than {MAX_XML_ATTRIBUTES} attributes"),
    ("depth", f"deeper than {MAX_XML_DEPTH}"),
])
def test_every_xml_adapter_applies_the_same_limits(name: str, shape: str, expected: str) -> None:
    from adapters.kit.registry import all_adapters

    adapter = next(a for a in all_adapters() if a.name == name)
    root = ROOTS[name]
    if shape == "attributes":
        attributes = " ".join(f'a{i}="x"' for i in range(MAX_XML_ATTRIBUTES + 1))
        data = f"<{root}><Header {attributes}/></{root.split()[0]}>".encode()
    else:
        data = _deep(MAX_XML_DEPTH + 1, root)
    with pytest.raises(AdapterInputError) as refused:
        adapter.adapt(data, CTX)
    assert expected in refused.value.rejection.reason


def test_too_many_elements_are_refused() -> None:
    data = b"<Message>" + b"<a/>" * (MAX_XML_ELEMENTS + 1) + b"</Message>"
    adapter = BY_NAME["social_care.cin"]
    with pytest.raises(AdapterInputError) as refused:
        select("social_care", data, source="request", content_type=adapter.content_type).adapt(data, CTX)
    assert f"more than {MAX_XML_ELEMENTS} elements" in refused.value.rejection.reason


def test_valid_files_are_within_the_limits() -> None:
    for name in ("education.ctf", "education.cme", "social_care.cin"):
        fmt = BY_NAME[name]
        out = select(fmt.agency, fmt.make(1, 2, 3), source="request", content_type=fmt.content_type).adapt(
            fmt.make(1, 2, 3), CTX)
        assert out.events and not out.rejections


FHIR_XML = f'<Patient {FHIR}><id value="p1"/><gender value="female"/></Patient>'


@pytest.mark.parametrize(("agency", "content_type", "body", "kind", "reason"), [
    ("health", "application/fhir+xml", codecs.BOM_UTF16_LE + FHIR_XML.encode("utf-16-le"), "body",
     "body is not UTF-8 (UTF-16 BOM found)"),
    ("health", "application/fhir+json", FHIR_XML.encode("utf-16-be"), "body", "body is not UTF-8"),
    ("health", "application/fhir+json", gzip.compress(BY_NAME["health.fhir"].make(1)), "body",
     "body is gzip-compressed"),
    ("health", "application/fhir+json", b'[{"resourceType": "Patient"}]', "body", "a JSON array is not a record"),
    ("police", "application/vnd.mash.pole+json", b"[1, 2]", "body", "a JSON array is not a record"),
    # a type no adapter lists, not one no health adapter happens to list today (a new adapter may: text/csv)
    ("health", "application/x-unlisted", b"a,b\r\n", "media_type",
     "no health adapter accepts content type 'application/x-unlisted'"),
])
def test_no_adapter_says_what_is_actually_wrong(agency: str, content_type: str, body: bytes, kind: str,
                                                reason: str) -> None:
    """Not "no adapter accepts content type X" when an adapter of the agency lists X."""
    prepared = prepare(agency, body, CTX, LinkageKey(1, b"k" * 32), content_type=content_type)
    [rejection] = prepared.rejections
    assert rejection.reason.startswith(reason), rejection.reason
    # "body": the content type is right, the bytes are not (422); None: the adapter itself refused them (422)
    assert prepared.refused in ((kind,) if kind == "media_type" else ("body", None))
