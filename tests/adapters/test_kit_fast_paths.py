"""The kit's fast paths give exactly what the plain ways of computing the same thing give."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.education.reading import Reader, children, find
from adapters.kit.dates import parse_date
from adapters.kit.events import EVENT_NAMESPACE, event_id, prune, uuid5_text
from adapters.kit.identifiers import check_nhs_number, check_upn
from adapters.kit.interface import FieldProblem
from adapters.kit.xml import element_path, local, local_children

EMPTY = (None, "", [], {})


def reference_prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: reference_prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in EMPTY}
    if isinstance(value, list | tuple):
        return [v for v in (reference_prune(v) for v in value) if v not in EMPTY]
    return value


def reference_path(el: etree._Element, base: etree._Element | None = None) -> str:
    """Positions counted the plain way: the list of same-named siblings."""
    parts = []
    while el is not None and el is not base:
        parent, name = el.getparent(), local(el.tag)
        if parent is not None:
            same = [s for s in parent if local(s.tag) == name]
            if len(same) > 1:
                name += f"[{same.index(el) + 1}]"
        parts.append(name)
        el = parent
    return "/".join(reversed(parts))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.text(max_size=40))
def test_uuid5_text_is_uuid5(namespace: bytes, name: str) -> None:
    assert uuid5_text(namespace, name) == str(uuid.uuid5(uuid.UUID(bytes=namespace), name))


def test_event_id_is_the_uuid5_of_the_source_coordinates() -> None:
    expected = uuid.uuid5(EVENT_NAMESPACE, "\x1f".join(("health", "RXX01", "MSG1:A01", "1", "part")))
    assert event_id("health", "RXX01", "MSG1:A01", "1", "part") == str(expected)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.sampled_from(["", " ", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(json_like)
def test_prune_matches_the_plain_recursion(value: Any) -> None:
    assert repr(prune(value)) == repr(reference_prune(value))


def _strptime_result(text: str, fmt: str) -> str | None:
    try:
        return dt.datetime.strptime(text.strip(), {"iso": "%Y-%m-%d", "dmy": "%d/%m/%Y"}[fmt]).date().isoformat()
    except ValueError:
        return None


def _parsed(text: str, fmt: str) -> str | None:
    try:
        return parse_date(text, "DOB", fmt)
    except FieldProblem as p:
        assert p.field == "DOB" and p.reason.startswith("not a valid date (")
        return None


@pytest.mark.parametrize(("text", "fmt"), [
    ("2014-06-15", "iso"), ("2014-6-5", "iso"), (" 2014-06-15 ", "iso"), ("2023-02-29", "iso"), ("0000-01-01", "iso"),
    ("2014-00-10", "iso"), ("15/06/2014", "dmy"), ("5/6/2014", "dmy"), ("31/04/2014", "dmy"), ("20140615", "iso"),
    ("\u0662\u0660\u0661\u0664-01-01", "iso"), ("2014-06-15T00:00", "iso"), ("", "iso"),
])
def test_parse_date_accepts_what_strptime_accepts(text: str, fmt: str) -> None:
    assert _parsed(text, fmt) == _strptime_result(text, fmt)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789-/ 1", max_size=12), st.sampled_from(["iso", "dmy"]))
def test_parse_date_matches_strptime_on_any_text(text: str, fmt: str) -> None:
    assert _parsed(text, fmt) == _strptime_result(text, fmt)


def test_identifier_checks_repeat_their_warning_for_each_record() -> None:
    first, again = check_nhs_number("9990000019", "a"), check_nhs_number("9990000019", "b")
    assert first[0] == again[0] == "9990000019"
    assert [w["field"] for w in first[1] + again[1]] == ["a", "b"]
    first[1][0]["field"] = "changed"  # the warnings handed out are the caller's own
    assert check_nhs_number("9990000019", "c")[1][0]["field"] == "c"
    assert check_upn("A380999900001", "UPN")[0] == "A380999900001"


tags = st.sampled_from(["A", "B", "{urn:test}A", "C"])
trees = st.recursive(st.tuples(tags, st.just([])), lambda inner: st.tuples(tags, st.lists(inner, max_size=4)),
                     max_leaves=30)


def _build(node: tuple[str, list]) -> etree._Element:
    tag, kids = node
    el = etree.Element(tag)
    for i, kid in enumerate(kids):
        el.append(_build(kid))
        if i == 1:
            el.append(etree.Comment("a comment between siblings"))
    return el


@settings(max_examples=150, deadline=None)
@given(trees)
def test_element_paths_and_children_match_the_plain_walk(tree: tuple[str, list]) -> None:
    root = _build(tree)
    elements = list(root.iter(etree.Element))
    for el in elements:
        assert element_path(el) == reference_path(el)
        assert element_path(el, root) == reference_path(el, root)
        for name in ("A", "B", "C", ""):
            plain = [c for c in el if isinstance(c.tag, str) and local(c.tag) == name]
            assert local_children(el, name) == children(el, name) == plain
    assert local_children(None, "A") == []


def test_find_takes_the_first_match_of_the_first_path_that_exists() -> None:
    pupil = etree.fromstring(b"<Pupil><BasicDetails><UPN>1</UPN><UPN>2</UPN></BasicDetails><UPN>3</UPN></Pupil>")
    assert find(pupil, "Missing/UPN", "BasicDetails/UPN").text == "1"
    assert find(pupil, "UPN", "BasicDetails/UPN").text == "3"
    assert find(pupil, "", "Nope") is None and find(None, "UPN") is None


def test_reader_field_is_the_path_inside_the_record_however_many_records_precede() -> None:
    root = etree.fromstring(b"<CTfile><Pupils>" + b"<Pupil><A/><A><B/></A></Pupil>" * 5 + b"</Pupils></CTfile>")
    record = root[0][3]
    r = Reader(record)
    assert r.field(record[1][0]) == "A[2]/B"
    assert r.field(record) == "CTfile/Pupils/Pupil[4]"  # the record itself: its full path, as before
    assert r.field(root[0][0][0]) == "CTfile/Pupils/Pupil[1]/A[1]"  # outside the record: the full path
