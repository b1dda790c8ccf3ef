"""Issue 23: a rejection names the input record and the input line it is on, in every format with lines (JSON via a
line map, HL7 v2 segments, CSV rows, XML elements), for the adapters' own refusals and for events the canonical
schema refuses after the adapter (located at the record the event came from, not "event 3"). Never a value.

The expected lines are counted here from the text, independently of the adapters' own line finding."""

from __future__ import annotations

import json
from typing import Any

import orjson

from adapters.kit.interface import AdaptContext, Rejection
from broker.bench.records import BY_NAME, postcode
from broker.pipeline.identify import LinkageKey
from broker.pipeline.intake import Prepared, prepare

KEY = LinkageKey(1, b"rejection-lines-test-linkage-key")
LONG = "Q" * 3000  # fictitious, longer than the canonical schema's 100 characters for a name


def _prepare(name: str, body: bytes, source: str = "in.file") -> Prepared:
    fmt = BY_NAME[name]
    ctx = AdaptContext(source=source, received_at="2026-01-01T00:00:00Z", system=fmt.system)
    return prepare(fmt.agency, body, ctx, KEY, content_type=fmt.content_type)


def _where(prepared: Prepared) -> list[tuple[str, int | None]]:
    return [(r.record, r.line) for r in prepared.rejections]


def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th occurrence of needle."""
    at = -1
    for _ in range(occurrence):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1


def _long_family(resource: dict[str, Any]) -> dict[str, Any]:
    return {**resource, "name": [{**resource["name"][0], "family": LONG}]}


def test_a_fhir_bundle_names_each_rejected_entry_and_its_line() -> None:
    fhir = BY_NAME["health.fhir"]
    patients = [orjson.loads(fhir.make(n)) for n in (1, 2, 3)]
    patients[1]["birthDate"] = "2015-02-31"  # the adapter refuses it
    patients[2] = _long_family(patients[2])  # the adapter maps it; the canonical schema refuses the event
    body = json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"resource": p} for p in patients]}, indent=2)
    starts = [n for n, line in enumerate(body.splitlines(), start=1) if line == "    {"]  # each entry's "{"
    prepared = _prepare("health.fhir", body.encode())
    assert len(prepared.events) == 1
    assert set(_where(prepared)) == {("Bundle.entry[1]", starts[1]), ("Bundle.entry[2]", starts[2])}
    schema = next(r for r in prepared.rejections if r.record == "Bundle.entry[2]")
    assert schema.field == "subject.child.family_name" and schema.reason.startswith("canonical schema")
    assert str(schema).startswith(f"in.file: Bundle.entry[2], line {starts[2]}: subject.child.family_name: ")
    assert LONG not in str(prepared.rejections) and "2015-02-31" not in str(prepared.rejections)


def test_a_fhir_xml_bundle_names_the_entry_and_its_line() -> None:
    entry = ('  <entry>\n    <resource>\n      <Patient>\n        <id value="{id}"/>\n'
             '        <identifier><system value="https://fhir.nhs.uk/Id/nhs-number"/><value value="9990000018"/>'
             '</identifier>\n        <birthDate value="{dob}"/>\n      </Patient>\n    </resource>\n  </entry>\n')
    text = ('<Bundle xmlns="http://hl7.org/fhir">\n  <type value="collection"/>\n'
            + entry.format(id="p1", dob="2015-02-11") + entry.format(id="p2", dob="2015-02-31") + "</Bundle>\n")
    prepared = _prepare("health.fhir", text.encode())
    assert _where(prepared) == [("Bundle.entry[1]", _line_of(text, "<entry>", 2))]
    assert len(prepared.events) == 1 and "2015-02-31" not in str(prepared.rejections)


def test_a_pole_submission_names_the_record_and_its_line() -> None:
    submission = orjson.loads(BY_NAME["police.pole"].make(1, 2, 3))
    submission["records"][1]["persons"][0]["date_of_birth"] = "1988-02-30"
    body = json.dumps(submission, indent=2)
    starts = [n for n, line in enumerate(body.splitlines(), start=1) if line == "    {"]  # each record's "{"
    prepared = _prepare("police.pole", body.encode())
    assert _where(prepared) == [("record 2", starts[1])]
    assert prepared.rejections[0].position == f"record 2, line {starts[1]}"


def test_pole_json_lines_name_the_line_once() -> None:
    records = orjson.loads(BY_NAME["police.pole"].make(1, 2))["records"]
    records[1]["persons"][0]["date_of_birth"] = "1988-02-30"
    body = b"\n".join(orjson.dumps({**r, "force_code": "99"}) for r in records)
    [rejection] = _prepare("police.pole", body).rejections
    assert (rejection.record, rejection.line, rejection.position) == ("line 2", 2, "line 2")
    assert str(rejection).startswith("in.file: line 2: persons[0].date_of_birth: ")


def test_an_hl7_batch_names_the_message_and_the_segment_line() -> None:
    messages = BY_NAME["health.hl7v2"].make(1, 2, 3).split(b"\r")
    pids = [i for i, seg in enumerate(messages) if seg.startswith(b"PID|")]
    mshes = [i for i, seg in enumerate(messages) if seg.startswith(b"MSH|")]
    second = messages[pids[1]].split(b"|")
    second[7] = b"20151302"  # PID-7: month 13
    messages[pids[1]] = b"|".join(second)
    third = messages[pids[2]].split(b"|")
    third[5] = LONG.encode() + b"^Testchild"  # PID-5: read, refused by the canonical schema
    messages[pids[2]] = b"|".join(third)
    body = b"\r\n".join(messages)  # one segment a line, as an editor shows an extract
    prepared = _prepare("health.hl7v2", body)
    assert len(prepared.events) == 1
    adapter, schema = prepared.rejections
    assert (adapter.record, adapter.field, adapter.line) == ("message 2", "PID-7", pids[1] + 1)  # the PID's line
    assert (schema.record, schema.line) == ("message 3", mshes[2] + 1)  # the message the event came from
    assert schema.field == "subject.child.family_name"


def test_an_ssda903_row_is_named_by_row_and_line() -> None:
    fmt = BY_NAME["social_care.ssda903"]
    header, good = fmt.make(1).decode().splitlines()[:2]
    home = postcode(1, "AA")  # record 1's home postcode (HOME_POST)
    quoted = good.replace(home, '"' + home.replace(" ", "\n") + '"')  # a quoted newline: the row spans lines 2, 3
    bad = good.replace("02/01/2000", "31/02/2000")
    prepared = _prepare("social_care.ssda903", "\n".join([header, quoted, bad, good]).encode() + b"\n")
    assert prepared.rejections == [Rejection("in.file", "row 2", "DECOM", "not a valid date (DD/MM/YYYY)", line=4)]


def test_a_cin_child_is_one_record_with_each_problem_on_its_line() -> None:
    text = BY_NAME["social_care.cin"].make(1, 2).decode()
    second = text.index("<Child>", text.index("<Child>") + 1)
    child = (text[second:].replace("<S47ActualStartDate>2000-01-13", "<S47ActualStartDate>2000-02-30", 1)
             .replace("<CPPstartDate>2000-01-31", "<CPPstartDate>2030-01-31", 1))
    text = text[:second] + child
    prepared = _prepare("social_care.cin", text.encode())
    assert {r.record for r in prepared.rejections} == {"Message/Children/Child[2]"}  # the Child is the record
    assert sorted((r.field, r.line) for r in prepared.rejections) == [
        ("CINdetails/ChildProtectionPlans/CPPstartDate", _line_of(text, "<ChildProtectionPlans>", 2)),
        ("CINdetails/Section47/S47ActualStartDate", _line_of(text, "<Section47>", 2))]
    assert "2030" not in str(prepared.rejections)


def test_a_ctf_pupil_is_named_by_path_and_line() -> None:
    text = BY_NAME["education.ctf"].make(1, 2, 3).decode()
    second = text.index("<Pupil>", text.index("<Pupil>") + 1)
    text = text[:second] + text[second:].replace("<DOB>2012-02-29", "<DOB>2012-02-30", 1)
    prepared = _prepare("education.ctf", text.encode())
    assert _where(prepared) == [("CTFpupilData/Pupil[2]", _line_of(text, "<Pupil>", 2))]
