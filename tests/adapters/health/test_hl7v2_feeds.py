"""HL7 v2 ADT as hospitals really send it (issue 22): stored as .txt, batched, explicit nulls, thin NK1s, resent
control ids, country-only addresses, SAD street lines, implausible dates.

Fixtures are written from HL7 v2.4/2.5 chapter 2 (batch protocol 2.10, XAD/SAD data types, the `""` null) and the
shape of public ADT corpora; every identifier is fictitious.
"""

from __future__ import annotations

import pytest

from adapters.health.hl7v2 import ADAPTER
from adapters.kit.interface import AdaptContext
from broker.pipeline.identify import LinkageKey
from broker.pipeline.intake import prepare
from tests.adapters.health.builders import VALID_NHS, hl7_message
from tests.conftest import assert_canonical

CTX = AdaptContext(source="adt-extract.txt", received_at="2024-03-10T00:00:00Z")
KEY = LinkageKey(1, b"k" * 32)


def adapt(data: str | bytes):
    out = ADAPTER.adapt(data.encode() if isinstance(data, str) else data, CTX)
    assert_canonical(out.events)
    return out


def one(data: str | bytes) -> dict:
    out = adapt(data)
    assert out.rejections == []
    [event] = out.events
    return event


def codes(event: dict) -> dict[str, str]:
    return {w["code"]: w["field"] for w in event["data_quality"]}


def pid(**fields: str) -> str:
    """A PID segment with the given fields (PID-n by number) over a fictitious child."""
    values = {3: f"{VALID_NHS}^^^NHS^NH", 5: "Example^Testchild^^^^^L", 7: "20150102", 8: "F"}
    values.update({int(k[1:]): v for k, v in fields.items()})
    return "|".join(["PID", *(values.get(n, "") for n in range(1, max(values) + 1))])


def message(pid_segment: str, event: str = "A08", control: str = "MSG0001", extra: str = "") -> str:
    msh = f"MSH|^~\\&|PAS|RXX01|MASH|MASH|20240301101500||ADT^{event}^ADT_{event}|{control}|P|2.4"
    return "\r".join(x for x in (msh, f"EVN|{event}|20240301101500", pid_segment, extra) if x) + "\r"


BATCH = ("FHS|^~\\&|PAS|RXX01|MASH|MASH|20240301120000||extract-1\r"
         "BHS|^~\\&|PAS|RXX01|MASH|MASH|20240301120000||batch-1\r"
         + hl7_message("A01", control="MSG0001") + hl7_message("A08", control="MSG0002", pv1=False)
         + "BTS|2\rFTS|1\r")


@pytest.mark.parametrize(("filename", "content_type"), [
    ("adt-extract.txt", None), ("ADT_A01.dat", None), (None, "text/plain"), (None, "application/octet-stream"),
])
def test_hl7_is_chosen_by_content_whatever_the_name_or_label(filename, content_type) -> None:
    """Defect: a .txt ADT extract was refused with "no health adapter accepts this file type"."""
    prepared = prepare("health", hl7_message("A01").encode(), CTX, KEY, filename=filename, content_type=content_type)
    assert prepared.rejections == [] and prepared.adapter == "health.hl7v2"
    assert [e["event_type"] for e in prepared.events] == ["health.admission"]


def test_a_fhir_body_under_a_wrong_label_is_still_refused() -> None:
    """Only formats that announce themselves are chosen by content: JSON under text/plain stays a 415."""
    prepared = prepare("health", b'{"resourceType": "Patient"}', CTX, KEY, content_type="text/plain")
    assert prepared.events == [] and prepared.refused == "media_type"


@pytest.mark.parametrize("framing", ["plain", "mllp", "lf"])
def test_batch_envelopes_are_read_message_by_message(framing: str) -> None:
    """Defect: FHS/BHS ... BTS/FTS batches were refused whole because the sniff wanted MSH first."""
    data = BATCH
    if framing == "mllp":
        data = "\x0b" + BATCH + "\x1c\r"
    elif framing == "lf":
        data = BATCH.replace("\r", "\n")
    assert ADAPTER.sniff(data.encode())
    out = adapt(data)
    assert out.rejections == []
    assert [e["source"]["record_id"] for e in out.events] == ["MSG0001:A01", "MSG0002:A08"]


def test_a_batch_with_no_message_is_empty_not_refused() -> None:
    assert adapt("BHS|^~\\&|PAS|RXX01\rBTS|0\r").events == []


@pytest.mark.parametrize("field", ["PID-7", "PID-29", "PV1-45", "PID-8"])
def test_explicit_null_is_no_value_never_a_rejection(field: str) -> None:
    """Defect: `""` (HL7's explicit null) in a date field rejected the whole message."""
    text = hl7_message("A03", discharge='""' if field == "PV1-45" else "20240305120000")
    if field == "PID-7":
        text = text.replace("|20150102|", '|""|')
    elif field == "PID-8":
        text = text.replace("|20150102|F|", '|20150102|""|')
    elif field == "PID-29":
        text = text.replace("|0113 000 0000", "|0113 000 0000" + "|" * 16 + '""')
    event = one(text)
    child = event["subject"]["child"]
    assert "sex.unrecognised" not in codes(event)
    if field == "PID-7":
        assert "date_of_birth" not in child
    if field == "PID-8":
        assert "sex" not in child
    if field == "PID-29":
        assert "date_of_death" not in child and child["date_of_birth"] == "2015-01-02"
    if field == "PV1-45":
        assert codes(event)["discharge.time_missing"] == "PV1-45"  # no value, explicitly: the event time is used


def test_next_of_kin_with_only_a_relationship_is_kept() -> None:
    """Defect: an NK1 with nothing but NK1-3 made an invalid event and sank the message."""
    event = one(message(pid(), extra="NK1|1||FTH^Father^HL70063"))
    assert event["subject"]["related_people"] == [{"role": "parent", "relationship": "FTH",
                                                    "parental_responsibility": True, "person": {}}]


def test_same_control_id_and_time_with_different_content_get_different_ids() -> None:
    """Defect: the second of two different messages sharing MSH-10 and MSH-7 was dropped downstream as a duplicate."""
    first = one(message(pid()))
    corrected = one(message(pid(p7="20150103")))
    assert first["source"]["record_id"] == corrected["source"]["record_id"]
    assert first["event_id"] != corrected["event_id"]
    assert first["source"]["record_version"].startswith("20240301101500/sha256:")


def test_a_resend_of_the_same_message_keeps_its_id_whatever_the_framing() -> None:
    text = message(pid())
    ids = {one(data)["event_id"] for data in (text, "\x0b" + text + "\x1c\r", text.replace("\r", "\r\n"))}
    assert len(ids) == 1


def test_country_only_address_is_left_out_with_a_warning() -> None:
    """Defect: PID-11 `^^^^^ENGLAND^L` became an empty address."""
    event = one(message(pid(p11="^^^^^ENGLAND^L")))
    assert "addresses" not in event["subject"]["child"]
    assert codes(event)["address.country_only"] == "PID-11[1]"


def test_a_country_only_repetition_beside_a_real_address_keeps_the_real_one() -> None:
    event = one(message(pid(p11="^^^^^ENGLAND^L~1 Test Street^^Leeds^^LS1 4HR^GBR^H")))
    assert event["subject"]["child"]["addresses"] == [{"lines": ["1 Test Street"], "city": "Leeds",
                                                       "postcode": "LS1 4HR", "use": "home"}]
    assert codes(event)["address.country_only"] == "PID-11[1]"


@pytest.mark.parametrize(("xad1", "line"), [
    ("12 Test Street&Test Street&12", "12 Test Street"),  # SAD-1 given: the whole line
    ("&Test Street&12", "12 Test Street"),  # street name and dwelling number only
])
def test_sub_component_separators_never_stay_in_address_text(xad1: str, line: str) -> None:
    event = one(message(pid(p11=f"{xad1}^Flat&2^Leeds^West&Yorkshire^LS1 4HR^^H")))
    [address] = event["subject"]["child"]["addresses"]
    assert address["lines"] == [line, "Flat 2"] and address["district"] == "West Yorkshire"
    assert "&" not in str(address)


@pytest.mark.parametrize("birth", ["10130102", "20250101"])
def test_an_implausible_birth_date_is_flagged(birth: str) -> None:
    """Defect: a birth date in the year 1013 passed without a warning (one after the message is flagged too)."""
    event = one(message(pid(p7=birth)))
    assert codes(event)["date.implausible"] == "PID-7"
    assert event["subject"]["child"]["date_of_birth"] == f"{birth[:4]}-{birth[4:6]}-{birth[6:]}"  # kept as sent


def test_a_plausible_birth_date_is_not_flagged() -> None:
    assert "date.implausible" not in codes(one(message(pid(p7="19400101"))))


def test_discharge_before_admission_is_flagged() -> None:
    """Defect: an A03 whose end precedes its start was not flagged."""
    event = one(hl7_message("A03", admit="20240305120000", discharge="20240301090000"))
    assert codes(event)["date.order"] == "PV1-45"
    assert "date.order" not in codes(one(hl7_message("A03", discharge="20240305120000")))
