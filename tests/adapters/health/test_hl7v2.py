"""HL7 v2 ADT: every trigger event, field-by-field mapping, framing, several messages, bad messages."""

from __future__ import annotations

import hashlib

import pytest

from adapters.health.hl7v2 import ADAPTER
from adapters.kit.interface import AdaptContext, AdapterInputError
from tests.adapters.health.builders import INVALID_NHS, VALID_NHS, hl7_message
from tests.conftest import assert_canonical


def adapt(text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    out = ADAPTER.adapt(data, AdaptContext(source="adt.hl7", received_at="2024-03-02T00:00:00Z"))
    assert_canonical(out.events)
    return out


def one(text: str) -> dict:
    out = adapt(text)
    assert out.rejections == []
    [event] = out.events
    return event


@pytest.mark.parametrize(("event", "patient_class", "event_type", "setting"), [
    ("A01", "I", "health.admission", "inpatient"),
    ("A01", "E", "health.urgent_care_attendance", "emergency"),
    ("A03", "I", "health.admission", "inpatient"),
    ("A03", "E", "health.urgent_care_attendance", "emergency"),
    ("A04", "E", "health.urgent_care_attendance", "emergency"),
    ("A04", "O", "health.attendance", "outpatient"),
])
def test_encounter_events(event: str, patient_class: str, event_type: str, setting: str) -> None:
    discharge = "20240305120000" if event == "A03" else ""
    result = one(hl7_message(event, patient_class=patient_class, discharge=discharge))
    assert result["event_type"] == event_type
    assert result["payload"]["setting"] == setting
    assert result["payload"]["class_code"] == patient_class
    assert result["source"]["record_id"] == f"MSG0001:{event}"


def test_discharge_has_period_end_and_occurs_then() -> None:
    result = one(hl7_message("A03", discharge="20240305120000"))
    assert result["payload"]["period_start"] == "2024-03-01T10:00:00+00:00"
    assert result["payload"]["period_end"] == "2024-03-05T12:00:00+00:00"
    assert result["payload"]["status"] == "finished"
    assert result["payload"]["discharge_disposition"]["code"] == "01"
    assert result["occurred_at"] == "2024-03-05T12:00:00+00:00"


def test_discharge_without_time_uses_event_time_and_warns() -> None:
    result = one(hl7_message("A03"))
    assert result["payload"]["period_end"] == "2024-03-01T10:15:00+00:00"
    assert "discharge.time_missing" in [w["code"] for w in result["data_quality"]]


def test_summer_time_offset_applied_to_local_times() -> None:
    result = one(hl7_message("A01", admit="20240701100000"))
    assert result["payload"]["period_start"] == "2024-07-01T10:00:00+01:00"


def test_update_is_person_updated() -> None:
    result = one(hl7_message("A08", pv1=False))
    assert result["event_type"] == "person.updated"
    assert result["payload"] == {"record_kind": "HL7v2 ADT^A08"}
    assert result["occurred_at"] == "2024-03-01T10:15:00+00:00"


def test_merge_names_the_superseded_identity() -> None:
    result = one(hl7_message("A40", pv1=False, extra="MRG|9990000026^^^NHS^NH~OLD1^^^RXX^MR||||||Oldname^Testchild"))
    assert result["event_type"] == "person.merged"
    assert result["payload"]["record_kind"] == "HL7v2 ADT^A40 merge"
    superseded = result["payload"]["superseded"]
    assert superseded["nhs_number"] == "9990000026"
    assert superseded["local_ids"] == [{"system": "RXX01/RXX", "value": "OLD1"}]
    assert superseded["family_name"] == "Oldname"
    assert result["subject"]["child"]["nhs_number"] == VALID_NHS


def test_merge_without_mrg_is_rejected() -> None:
    out = adapt(hl7_message("A40", pv1=False))
    assert out.events == []
    assert [(r.record, r.field) for r in out.rejections] == [("message 1", "MRG")]


def test_field_by_field_mapping() -> None:
    message = hl7_message("A01")
    result = one(message)
    digest = hashlib.sha256(message.rstrip("\r").encode()).hexdigest()[:32]  # MSH-7 and the message's own digest
    assert result["source"] == {"agency": "health", "system": "RXX01", "record_id": "MSG0001:A01",
                                "record_version": f"20240301101500/sha256:{digest}", "format": "hl7v2"}
    child = result["subject"]["child"]
    assert child["nhs_number"] == VALID_NHS  # PID-3, authority NHS, type NH
    assert child["local_ids"] == [{"system": "RXX01/RXX", "value": "H123456"}]  # PID-3 other repetition
    assert child["given_names"] == ["Testchild", "Middle"]  # PID-5.2, PID-5.3
    assert child["family_name"] == "Example"  # PID-5.1
    assert child["date_of_birth"] == "2015-01-02"  # PID-7
    assert child["sex"] == "female"  # PID-8
    assert child["addresses"] == [{"lines": ["1 Test Street", "Flat 2"], "city": "Leeds",  # PID-11
                                   "district": "West Yorkshire", "postcode": "LS1 4HR", "use": "home"}]
    assert child["phones"] == ["0113 000 0000"]  # PID-13
    payload = result["payload"]
    assert payload["location"] == "RXX01/WARD1/BAY2/BED3"  # PV1-3
    assert payload["visit_number"] == "V0001"  # PV1-19
    assert payload["admission_source"]["code"] == "19"  # PV1-14
    assert payload["period_start"] == "2024-03-01T10:00:00+00:00"  # PV1-44
    [nk] = result["subject"]["related_people"]  # NK1
    assert (nk["role"], nk["relationship"], nk["parental_responsibility"]) == ("parent", "MTH", True)
    assert nk["person"]["family_name"] == "Example"
    assert nk["person"]["addresses"][0]["postcode"] == "LS1 4HR"


def test_sending_application_when_no_facility() -> None:
    text = hl7_message("A08", pv1=False).replace("|PAS|RXX01^1.2.3^ISO|", "|PAS||")
    assert one(text)["source"]["system"] == "PAS"


def test_hn_type_and_nhs_oid_authority_accepted() -> None:
    text = hl7_message("A08", pv1=False).replace("^^^NHS^NH", "^^^&2.16.840.1.113883.2.1.4.1&ISO^HN")
    assert one(text)["subject"]["child"]["nhs_number"] == VALID_NHS


def test_nhs_number_needs_nhs_authority() -> None:
    text = hl7_message("A08", pv1=False).replace("^^^NHS^NH", "^^^RXX^NH")
    child = one(text)["subject"]["child"]
    assert "nhs_number" not in child
    assert {"system": "RXX01/RXX", "value": VALID_NHS} in child["local_ids"]


def test_invalid_nhs_number_is_flagged_not_dropped() -> None:
    result = one(hl7_message("A01", nhs=INVALID_NHS))
    assert result["subject"]["child"]["nhs_number"] == INVALID_NHS
    assert [(w["code"], w["field"]) for w in result["data_quality"]] == [
        ("identifier.nhs_number_invalid", "PID-3[1]")]
    assert INVALID_NHS not in str(result["data_quality"])


def test_bad_message_rejected_rest_flow() -> None:
    stream = hl7_message(control="M1") + hl7_message(control="M2", dob="20151399") + hl7_message(control="M3")
    out = adapt(stream)
    assert [e["source"]["record_id"] for e in out.events] == ["M1:A01", "M3:A01"]
    [rejection] = out.rejections
    assert (rejection.record, rejection.field) == ("message 2", "PID-7")
    assert "20151399" not in str(rejection)


@pytest.mark.parametrize(("text", "field"), [
    (hl7_message("A02"), "MSH-9"),
    (hl7_message("A01").replace("ADT^A01", "ORU^R01"), "MSH-9"),
    (hl7_message("A01", control=""), "MSH-10"),
    (hl7_message("A01", pv1=False), "PV1"),
    (hl7_message("A01", admit="2024"), "PV1-44"),
    ("\r".join(s for s in hl7_message("A01").split("\r") if not s.startswith("PID")), "PID"),
])
def test_precise_rejections(text: str, field: str) -> None:
    out = adapt(text)
    assert out.events == []
    assert [r.field for r in out.rejections] == [field]


@pytest.mark.parametrize("frame", ["mllp", "lf", "crlf"])
def test_framing_and_line_ends_tolerated(frame: str) -> None:
    messages = [hl7_message(control=f"M{i}") for i in (1, 2)]
    if frame == "mllp":
        data = b"".join(b"\x0b" + m.encode() + b"\x1c\r" for m in messages)
    else:
        ending = "\n" if frame == "lf" else "\r\n"
        data = "".join(m.replace("\r", ending) for m in messages).encode()
    out = adapt(data)
    assert out.rejections == []
    assert [e["source"]["record_id"] for e in out.events] == ["M1:A01", "M2:A01"]


def test_resend_gets_the_same_event_id() -> None:
    assert one(hl7_message())["event_id"] == one(hl7_message())["event_id"]


def test_sniff() -> None:
    assert ADAPTER.sniff(hl7_message().encode())
    assert ADAPTER.sniff(b"\x0b" + hl7_message().encode())
    assert not ADAPTER.sniff(b'{"resourceType": "Patient"}')


@pytest.mark.parametrize("data", [b"", b"PID|1||x\r", b'{"resourceType": "Patient"}', b"\x0b\x1c\r"])
def test_not_hl7_is_an_input_error(data: bytes) -> None:
    with pytest.raises(AdapterInputError):
        ADAPTER.adapt(data, AdaptContext(source="x"))


def test_a_malformed_escape_rejects_its_message_by_field(caplog) -> None:
    bad = hl7_message(control="BAD1").replace("Example^Testchild", "Example\\.spx\\^Testchild")
    with caplog.at_level("DEBUG"):
        out = adapt(bad + hl7_message(control="GOOD2"))  # one stream, two messages: the good one is still adapted
    assert len(out.events) == 1
    [rejection] = out.rejections
    assert (rejection.record, rejection.field, rejection.reason) == ("message 1", "PID-5", "malformed escape sequence")
    assert "Example" not in caplog.text


def test_an_unreadable_hex_escape_never_reaches_the_logs(caplog) -> None:
    """python-hl7 logs the whole field when a hex escape is not hex; that logger is silenced."""
    with caplog.at_level("DEBUG"):
        adapt(hl7_message().replace("Example^Testchild", "Example\\XZZ\\^Testchild"))
    assert "Example" not in caplog.text and "XZZ" not in caplog.text


@pytest.mark.parametrize(("escape", "reason"), [
    ("\\XZZ\\", "malformed escape sequence"),  # not hex: python-hl7 drops it without a word
    ("\\X4\\", "malformed escape sequence"),  # half a byte: python-hl7 makes a control character of it
    ("\\X\\", "malformed escape sequence"),
    ("\\Q\\", "malformed escape sequence"),
    ("\\Zabc\\", "unsupported escape sequence (Z: locally defined or a character-set switch)"),
    ("\\C2842\\", "unsupported escape sequence (C: locally defined or a character-set switch)"),
    ("\\M2442\\", "unsupported escape sequence (M: locally defined or a character-set switch)"),
    ("\\", "unterminated escape sequence"),
])
def test_an_escape_python_hl7_would_drop_rejects_its_message_by_field(escape: str, reason: str) -> None:
    """A name must not silently lose part of itself: the message is refused, naming the field and the kind."""
    bad = hl7_message(control="BAD1").replace("Example^Testchild", f"Exa{escape}mple^Testchild")
    out = adapt(bad + hl7_message(control="GOOD2"))
    assert len(out.events) == 1
    [rejection] = out.rejections
    assert (rejection.record, rejection.field, rejection.reason) == ("message 1", "PID-5", reason)
    assert "Exa" not in repr(rejection)


@pytest.mark.parametrize(("escape", "decoded"), [("\\X41\\", "A"), ("\\E\\", "\\"), ("\\S\\", "^"), ("\\T\\", "&"),
                                               ("\\H\\", ""), ("\\N\\", "")])  # highlighting is not data
def test_the_escapes_hl7_defines_are_decoded(escape: str, decoded: str) -> None:
    event = one(hl7_message().replace("Example^Testchild", f"Exa{escape}mple^Testchild"))
    assert event["subject"]["child"]["family_name"] == f"Exa{decoded}mple"


def _declaring(message: str, charset: str) -> str:
    """The message with MSH-18 (its character set) set: MSH-13 to MSH-17 left empty."""
    return message.replace("|P|2.4\r", f"|P|2.4||||||{charset}\r", 1)


def _named(family: str, charset: str | None = None, encoding: str = "utf-8", control: str = "MSG0001") -> bytes:
    text = hl7_message(control=control).replace("Example^Testchild", f"{family}^Testchild")
    return (_declaring(text, charset) if charset else text).encode(encoding)


@pytest.mark.parametrize(("charset", "encoding"), [("8859/1", "latin-1"), ("UNICODE UTF-8", "utf-8"),
                                                   ("8859/15", "iso8859_15"), (None, "utf-8")])
def test_a_message_is_read_in_the_character_set_msh18_declares(charset: str | None, encoding: str) -> None:
    event = one(_named("Examplé", charset, encoding))
    assert event["subject"]["child"]["family_name"] == "Examplé"
    assert event["data_quality"] == []


@pytest.mark.parametrize("escape", ["\\XC3A9\\", "\\XC3\\\\XA9\\"])  # one character over two escapes, too
def test_hex_escapes_are_bytes_in_the_declared_character_set(escape: str) -> None:
    event = one(_named(f"Exampl{escape}", "UNICODE UTF-8").decode())
    assert event["subject"]["child"]["family_name"] == "Examplé"  # python-hl7 alone gives "ExamplÃ©"
    latin = one(_named("Exampl\\XE9\\", "8859/1").decode())
    assert latin["subject"]["child"]["family_name"] == "Examplé"


def test_an_undeclared_character_set_that_is_not_utf8_is_read_as_windows_1252_and_flagged() -> None:
    event = one(_named("O’Example", None, "cp1252"))  # a curly apostrophe: byte 0x92 in Windows-1252
    assert event["subject"]["child"]["family_name"] == "O’Example"
    assert [w["code"] for w in event["data_quality"]] == ["hl7.character_set_guessed"]
    hexed = one(_named("Exampl\\XE9\\").decode())  # \XE9\ is not UTF-8 either
    assert hexed["subject"]["child"]["family_name"] == "Examplé"
    assert [w["field"] for w in hexed["data_quality"]] == ["MSH-18"]


@pytest.mark.parametrize(("message", "field", "reason"), [
    (_named("Examplé", "UNICODE UTF-8", "latin-1"), "MSH-18", "the message is not valid text in its character set"),
    (_named("Examplé", "ASCII", "latin-1"), "MSH-18", "the message is not valid text in its character set"),
    (_named("Example", "UNICODE UTF-16"), "MSH-18", "character set not supported"),
    (_named("Exampl\\XE9\\", "UNICODE UTF-8"), "PID-5", "hex escape is not text in the message's character set"),
    (_named("Exampl\\XE9\\", "ASCII"), "PID-5", "hex escape is not text in the message's character set"),
])
def test_text_that_is_not_what_msh18_declares_is_refused_by_field(message: bytes, field: str, reason: str) -> None:
    out = adapt(message + hl7_message(control="GOOD2").encode())
    assert len(out.events) == 1  # the next message of the batch still flows
    [rejection] = out.rejections
    assert (rejection.record, rejection.field) == ("message 1", field) and rejection.reason.startswith(reason)
    assert "Exampl" not in repr(rejection)


def test_each_message_of_a_batch_is_read_in_its_own_character_set() -> None:
    out = adapt(_named("Examplé", "8859/1", "latin-1", control="L1") + _named("Examplé", "UNICODE UTF-8", control="U2"))
    assert out.rejections == []
    assert [e["subject"]["child"]["family_name"] for e in out.events] == ["Examplé", "Examplé"]
