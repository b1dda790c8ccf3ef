"""Children Missing Education transfer and School Census exclusions: mapping, partial success, whole-input errors."""

from __future__ import annotations

import pytest

from adapters.education.cme import ADAPTER as CME
from adapters.education.exclusions import ADAPTER as EXCLUSIONS
from adapters.kit.interface import AdapterInputError
from tests.adapters.education.helpers import INVALID_UPN, VALID_UPN, adapt, codes, fixture
from tests.adapters.grading import placed

CME_XML = fixture("cme.xml")
CENSUS = fixture("census_exclusions.xml")


def test_cme_maps_field_by_field() -> None:
    out = adapt(CME, CME_XML)
    [event] = out.events
    assert event["event_type"] == "education.child_missing_education"
    assert event["source"]["format"] == "cme-xml"
    assert event["source"]["system"] == "380-9999"
    assert event["source"]["record_id"].startswith("cme:")
    assert event["occurred_at"] == "2025-01-31"
    assert event["payload"] == {
        "reason": "B",
        "date_left": "2025-01-31",
        "last_school": {"la_code": "380", "urn": "999001", "name": "Testing Primary School (fictitious)"},
        "destination": "Family said to be moving abroad; country not given",
        "destination_school": {"la_code": "380", "urn": "999002", "name": "Example Academy (fictitious)"},
    }
    child = event["subject"]["child"]
    assert child["upn"] == "K380999924006"
    assert child["addresses"] == [
        {"lines": ["7 Example Close"], "postcode": "ZZ99 3AC", "use": "home"},
        {"lines": ["1 Future Lane"], "postcode": "ZZ99 3AD", "use": "other"},
    ]
    [parent] = event["subject"]["related_people"]
    assert (parent["role"], parent["parental_responsibility"]) == ("parent", True)
    assert parent["person"]["phones"] == ["07700 900003"]
    assert placed(event) == {"level": "medium", "categories": [], "graded": ["child_missing_education"]}


def test_cme_bad_leaving_date_rejects_only_that_pupil() -> None:
    out = adapt(CME, CME_XML)
    assert [(r.record, r.field, r.reason) for r in out.rejections] == [
        ("CMEpupilData/Pupil[2]", "LeavingDate", "not a valid date (YYYY-MM-DD)")]
    assert "31/01/2025" not in str(out.rejections[0])


def test_cme_without_leaving_date_warns() -> None:
    data = CME_XML.replace(b"<LeavingDate>2025-01-31</LeavingDate>", b"")
    event = adapt(CME, data).events[0]
    assert "date_left" not in event["payload"]
    assert "cme.date_left_missing" in codes(event)
    assert event["occurred_at"] == "2025-02-03T09:30:00+00:00"


def test_cme_in_ctf_pupil_container_is_read_when_the_document_says_cme() -> None:
    data = CME_XML.replace(b"CMEpupilData>", b"CTFpupilData>")
    assert CME.sniff(data)
    assert len(adapt(CME, data).events) == 1


def test_cme_refuses_a_plain_ctf() -> None:
    with pytest.raises(AdapterInputError) as info:
        adapt(CME, fixture("ctf25.xml"))
    assert info.value.rejection.field == "Header/DocumentName"


@pytest.fixture(scope="module")
def census():
    return adapt(EXCLUSIONS, CENSUS)


def test_exclusions_map_every_category(census) -> None:
    summary = sorted((e["subject"]["child"]["given_names"][0], e["payload"]["category"], e["payload"]["start_date"],
                      e["payload"].get("sessions"), e["payload"].get("reason")) for e in census.events)
    assert summary == [
        ("Alpha", "lunchtime", "2024-11-12", 0.5, "VP"),
        ("Alpha", "suspension", "2024-10-07", 4, "PP"),
        ("Nu", "suspension", "2024-09-20", 2, "DA"),  # FIXD: the pre-2022/23 name of a suspension
        ("Omicron", "permanent", "2024-11-29", None, "PA"),  # a pupil no longer on roll
    ]
    for e in census.events:
        assert e["event_type"] == "education.exclusion"
        assert e["source"]["format"] == "school-census-xml"
        assert e["source"]["system"] == "380-9999"
        assert e["source"]["record_version"] == "2025-01-16T16:45:00+00:00"
        assert e["occurred_at"] == e["payload"]["start_date"]
        assert e["payload"]["school"] == {"la_code": "380", "urn": "999001",
                                          "name": "Testing Primary School (fictitious)"}


def test_exclusions_are_graded_by_their_census_category(census) -> None:
    graded = sorted((e["payload"]["category"], placed(e)["graded"][0], placed(e)["level"]) for e in census.events)
    assert graded == [("lunchtime", "lunchtime_exclusion", "low"), ("permanent", "permanent_exclusion", "medium"),
                      ("suspension", "suspension", "low"), ("suspension", "suspension", "low")]


def test_pupils_without_exclusions_are_not_read(census) -> None:
    assert "Delta" not in {e["subject"]["child"]["given_names"][0] for e in census.events}


def test_exclusion_rejections_are_precise(census) -> None:
    assert [(r.record, r.field, r.reason) for r in census.rejections] == [
        ("Pupils/PupilOnRoll[4]", "PupilIdentifiers/DOB", "not a valid date (YYYY-MM-DD)"),
        ("Pupils/PupilOnRoll[3]/Exclusions/Exclusion[2]", "Category",
         "not a School Census exclusion category (PERM, FIXD, SUSP, LNCH)"),
    ]


def test_exclusion_warnings(census) -> None:
    by_name = {e["subject"]["child"]["given_names"][0]: e for e in census.events}
    assert by_name["Nu"]["subject"]["child"]["upn"] == INVALID_UPN
    assert codes(by_name["Nu"]) == ["identifier.upn_invalid"]
    assert by_name["Nu"]["data_quality"][0]["field"] == "PupilIdentifiers/UPN"
    assert codes(by_name["Omicron"]) == ["exclusion.further_reasons"]
    assert codes(by_name["Alpha"]) == []
    assert by_name["Alpha"]["subject"]["child"]["upn"] == VALID_UPN


def test_exclusion_ids_stable_and_distinct(census) -> None:
    ids = [e["event_id"] for e in census.events]
    assert len(set(ids)) == len(ids)
    assert ids == [e["event_id"] for e in adapt(EXCLUSIONS, CENSUS).events]


def test_duplicate_exclusion_is_rejected() -> None:
    data = CENSUS.replace(b"<StartDate>2024-11-12</StartDate>", b"<StartDate>2024-10-07</StartDate>").replace(
        b"<Category>LNCH</Category>", b"<Category>SUSP</Category>")
    out = adapt(EXCLUSIONS, data)
    assert ("Pupils/PupilOnRoll[1]/Exclusions/Exclusion[2]", "") in [(r.record, r.field) for r in out.rejections]


def test_exclusion_without_start_date_is_rejected() -> None:
    data = CENSUS.replace(b"<StartDate>2024-09-20</StartDate>", b"")
    out = adapt(EXCLUSIONS, data)
    assert ("Pupils/PupilOnRoll[3]/Exclusions/Exclusion[1]", "StartDate", "missing") in [
        (r.record, r.field, r.reason) for r in out.rejections]


@pytest.mark.parametrize(("data", "field", "reason"), [
    (b"<CTfile/>", "", "root element is not SchoolCensus"),
    (b"<SchoolCensus><Header/></SchoolCensus>", "Header/Source",
     "LEA and Estab are required to name the sending school"),
    (b"\xff\xfe<", "", "not well-formed XML"),
])
def test_census_whole_input_problems(data: bytes, field: str, reason: str) -> None:
    with pytest.raises(AdapterInputError) as info:
        adapt(EXCLUSIONS, data)
    assert (info.value.rejection.field, info.value.rejection.reason) == (field, reason)
