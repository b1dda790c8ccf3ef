"""Entry points, sniffing among the education formats, hostile XML, and property tests over arbitrary input."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.education.cme import ADAPTER as CME
from adapters.education.ctf import ADAPTER as CTF
from adapters.education.exclusions import ADAPTER as EXCLUSIONS
from adapters.kit.interface import AdaptContext, Adapter, AdapterInputError, AdapterOutput
from adapters.kit.registry import select
from tests.adapters.education.helpers import fixture
from tests.adapters.fuzzing import mutated
from tests.conftest import assert_canonical

ADAPTERS = {"education-ctf": CTF, "education-cme": CME, "education-census-exclusions": EXCLUSIONS}
FILES = {"ctf23.xml": CTF, "ctf24.xml": CTF, "ctf25.xml": CTF, "cme.xml": CME, "census_exclusions.xml": EXCLUSIONS}

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE CTfile [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<CTfile><Header><CTFversion>25.0</CTFversion></Header><CTFpupilData><Pupil><Surname>&xxe;</Surname></Pupil>
</CTFpupilData></CTfile>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<CTfile><Header><CTFversion>25.0</CTFversion></Header><CTFpupilData><Pupil><Surname>&lol3;</Surname></Pupil>
</CTFpupilData></CTfile>"""
DEEP = b"<CTfile>" + b"<a>" * 3000 + b"</a>" * 3000 + b"</CTfile>"


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_entry_points_resolve_to_adapters(name: str) -> None:
    [ep] = [e for e in entry_points(group="mash_broker.adapters") if e.name == name]
    adapter = ep.load()
    assert adapter is ADAPTERS[name]
    assert isinstance(adapter, Adapter)
    assert adapter.agency == "education"


@pytest.mark.parametrize(("name", "owner"), sorted(FILES.items()))
def test_sniff_tells_the_formats_apart(name: str, owner) -> None:
    data = fixture(name)
    assert [a for a in (CTF, CME, EXCLUSIONS) if a.sniff(data)] == [owner]
    assert select("education", data, source=name, content_type="application/xml") is owner


def test_sniff_declines_other_xml() -> None:
    fhir = b'<Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>'
    assert not any(a.sniff(fhir) for a in (CTF, CME, EXCLUSIONS))


@pytest.mark.parametrize("adapter", [CTF, CME, EXCLUSIONS], ids=lambda a: a.name)
@pytest.mark.parametrize("data", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_hostile_dtds_are_refused(adapter, data: bytes) -> None:
    with pytest.raises(AdapterInputError) as info:
        adapter.adapt(data, AdaptContext(source="hostile.xml"))
    assert "DOCTYPE" in info.value.rejection.reason
    assert "passwd" not in str(info.value)


@pytest.mark.parametrize("adapter", [CTF, CME, EXCLUSIONS], ids=lambda a: a.name)
def test_absurd_nesting_is_refused(adapter) -> None:
    with pytest.raises(AdapterInputError):
        adapter.adapt(DEEP, AdaptContext(source="deep.xml"))


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = {a: [fixture(n) for n, owner in FILES.items() if owner is a] for a in (CTF, CME, EXCLUSIONS)}


def _holds(adapter, data: bytes) -> None:
    """AdapterOutput whose every event is canonical, or AdapterInputError: nothing else."""
    try:
        out = adapter.adapt(data, AdaptContext(source="fuzz", received_at="2025-08-01T00:00:00Z"))
    except AdapterInputError:
        return
    assert isinstance(out, AdapterOutput)
    assert_canonical(out.events)


XML_INSERTS = [b"<", b">", b"&amp;", b"</Pupil>", b"<Pupil>", b"<UPN>X</UPN>", b"<DOB>2020-02-30</DOB>",
                b"<SessionsPossible>-1</SessionsPossible>", b"<Year>9999999999999</Year>", b"\x00", b"\xff",
                b"<Category>PERM</Category>", b"<Responsibility>maybe</Responsibility>", b" " * 5, b"x" * 300]


VALUES = st.one_of(
    st.sampled_from(["", " ", "0", "-1", "1.5", "9" * 12, "true", "maybe", "2024-02-30", "2024-02-29", "0001-01-01",
                     "9999-12-31T23:59:59", "PERM", "LNCH", "M", "F", "PAR", "MMM", "x" * 250, "25.0", "23.9",
                     "A380999924002", "P380999924001", "zz99 3aa", "N/A"]),
    st.text(max_size=20))


@st.composite
def reshaped(draw, seeds: list[bytes]) -> bytes:
    """Well-formed variants of a seed: leaf values replaced, elements dropped or duplicated."""
    root = etree.fromstring(draw(st.sampled_from(seeds)))
    elements = list(root.iter())
    for _ in range(draw(st.integers(1, 8))):
        el = draw(st.sampled_from(elements))
        op = draw(st.sampled_from(["value", "value", "drop", "copy"]))
        if op == "value" and len(el) == 0:
            el.text = "".join(c for c in draw(VALUES) if c.isprintable())
        elif op == "drop" and el.getparent() is not None and el.getparent().getparent() is not None:
            el.getparent().remove(el)
            elements = list(root.iter())
        elif op == "copy" and el.getparent() is not None:
            el.addnext(etree.fromstring(etree.tostring(el)))
            elements = list(root.iter())
    return etree.tostring(root)


@SETTINGS
@given(st.sampled_from([CTF, CME, EXCLUSIONS]), st.data())
def test_reshaped_inputs(adapter, data) -> None:
    _holds(adapter, data.draw(reshaped(SEEDS[adapter])))


@SETTINGS
@given(st.sampled_from([CTF, CME, EXCLUSIONS]), st.binary(max_size=400))
def test_arbitrary_bytes(adapter, data: bytes) -> None:
    _holds(adapter, data)


@SETTINGS
@given(mutated(SEEDS[CTF], XML_INSERTS, max_ops=6, max_delete=40, swap_text=True))
def test_ctf_mutated(data: bytes) -> None:
    _holds(CTF, data)


@SETTINGS
@given(mutated(SEEDS[CME], XML_INSERTS, max_ops=6, max_delete=40, swap_text=True))
def test_cme_mutated(data: bytes) -> None:
    _holds(CME, data)


@SETTINGS
@given(mutated(SEEDS[EXCLUSIONS], XML_INSERTS, max_ops=6, max_delete=40, swap_text=True))
def test_exclusions_mutated(data: bytes) -> None:
    _holds(EXCLUSIONS, data)
