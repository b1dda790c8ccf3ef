"""Message reads each field as the text python-hl7 would give back for it, and falls back to python-hl7 itself for
headers it does not read alone."""

from __future__ import annotations

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.health.hl7v2_reading import EscapeError, Message, check_escapes
from adapters.kit.interface import FieldProblem
from tests.adapters.health.builders import hl7_message


def python_hl7_fields(text: str) -> list[list[str]]:
    return [[str(f) for f in seg] for seg in hl7.parse(text)]


def python_hl7_value(text: str, index: int, field: int, component: int = 1, repetition: int = 1) -> str | None:
    """The value the way python-hl7 nests it: split the field text, unescaping every subcomponent. None where the
    field holds an escape python-hl7 would drop or misread (the reader refuses those), and highlighting left out."""
    parsed = hl7.parse(text)
    seg = parsed[index]
    if field >= len(seg):
        return ""
    raw, sep = str(seg[field]), parsed.separators
    if str(seg[0]) in ("MSH", "BHS", "FHS") and field <= 2:  # a header's separators are never unescaped
        reps = [[[raw]]]
    else:
        try:
            check_escapes(raw, parsed.esc)
        except EscapeError:
            return None
        reps = [[[parsed.unescape(s, app_map={"H": "", "N": ""}) for s in c.split(sep[4])] for c in r.split(sep[3])]
                for r in raw.split(sep[2])]
    try:
        return reps[repetition - 1][component - 1][0].strip()
    except IndexError:
        return ""


SAMPLE = hl7_message("A01").strip("\r")
ODD_HEADERS = [
    SAMPLE,
    SAMPLE.replace("^~\\&", "^~\\&#", 1),  # a fifth encoding character (truncation, v2.7)
    "MSH|^~|PAS|RXX01|MASH|MASH|20240301||ADT^A01|C1|P|2.4\rPID|1||X^^^NHS^NH||Example^Test",  # defaults used
    "MSH|^~\\&|PAS|RXX01|MASH|MASH|20240301||ADT^A01|C1|P|2.4\rPID|1||X^^^NHS^NH",
    "MSH|^~~&|PAS|RXX01|MASH|MASH|20240301||ADT^A01|C1|P|2.4\rPID|1||X^^^NHS^NH",  # escape = repetition separator
    "MSH|^~\\&|PAS",  # MSH-3 and nothing more
    "MSH|^~\\&",  # no end to MSH-2: python-hl7 reads it
    "MSH|^~\\&\rPID|1|X",  # MSH-2 ends only in the next segment: python-hl7 reads it
    "MSH|^~\\&|PAS\rPID|1||X\r\rPV1|1|E",  # an empty segment
    "MSH|^~\\&|\rEVN|A01",  # nothing after MSH-2
    "MSH|^~\\&|A|B|C|D|20240301||ADT^A01|C1|P|2.4\rBHS|^~\\&|X",  # a batch header inside: python-hl7 reads it
    "MSH|^~\\&|PAS|R\\T\\X|M|M|20240301||ADT^A01|C1|P|2.4\rPID|1||A\\S\\B~C^^^NHS^NH||Ex\\F\\ample^Te\\E\\st",
]


@pytest.mark.parametrize("text", ODD_HEADERS)
def test_fields_are_python_hl7s_text(text: str) -> None:
    msg = Message.parse(text)
    assert msg.segment_fields == python_hl7_fields(text)
    for index, seg in enumerate(msg.segment_fields):
        for field in range(len(seg) + 1):
            for component in (1, 2, 4):
                for repetition in (1, 2):
                    expected = python_hl7_value(text, index, field, component, repetition)
                    if expected is None:
                        with pytest.raises(FieldProblem, match="escape sequence"):
                            msg.value(seg, field, component, repetition)
                    else:
                        assert msg.value(seg, field, component, repetition) == expected


def test_a_header_python_hl7_cannot_read_is_refused() -> None:
    text = "MSH|^^\\&|PAS|RXX01|MASH|MASH|20240301||ADT^A01|C1|P|2.4\rPID|1||X^^^NHS^NH"  # a repeated separator
    with pytest.raises(Exception):  # noqa: B017 - python-hl7 raises several bare kinds
        hl7.parse(text)
    with pytest.raises(FieldProblem, match="not a parseable HL7 v2 message"):
        Message.parse(text)
    with pytest.raises(FieldProblem, match="does not start with an MSH segment"):
        Message.parse("PID|1")


pieces = st.text(alphabet="AB1 |^~&\\#ES.", max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="|^~\\&#", min_size=1, max_size=6), st.lists(pieces, min_size=1, max_size=4))
def test_any_header_reads_as_python_hl7_reads_it(encoding: str, rest: list[str]) -> None:
    text = "MSH" + encoding + "|" + "\r".join(["PAS|R|M|M|20240301||ADT^A01|C1", *("PID|" + r for r in rest)])
    try:
        expected = python_hl7_fields(text)
    except Exception:
        expected = None
    try:
        msg = Message.parse(text)
    except FieldProblem:
        assert expected is None
        return
    if expected is not None:
        assert msg.segment_fields == expected
