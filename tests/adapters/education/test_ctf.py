"""CTF 23/24/25: field-by-field mapping, partial success, identifiers, attendance threshold, stable event ids."""

from __future__ import annotations

import pytest

from adapters.education.ctf import ADAPTER
from adapters.kit.interface import AdapterInputError
from tests.adapters.education.helpers import INVALID_UPN, RECEIVED, VALID_UPN, adapt, by_type, codes, fixture
from tests.adapters.grading import placed

CTF25 = fixture("ctf25.xml")


def pupil_events(out, upn: str | None = None, given: str | None = None) -> dict[str, dict]:
    """The events of one pupil, by event type."""
    found = {}
    for e in out.events:
        child = e["subject"]["child"]
        if (upn and child.get("upn") == upn) or (given and given in child.get("given_names", [])):
            found[e["event_type"]] = e
    return found


@pytest.fixture(scope="module")
def out25():
    return adapt(ADAPTER, CTF25)


def test_each_pupil_yields_identity_and_pupil_record(out25) -> None:
    assert len(by_type(out25, "person.identified")) == 3
    assert len(by_type(out25, "education.pupil_record")) == 3
    for e in by_type(out25, "person.identified"):
        assert e["payload"] == {"record_kind": "Pupil"}
    for e in out25.events:
        assert e["source"]["agency"] == "education"
        assert e["source"]["format"] == "ctf-xml"
        assert e["source"]["system"] == "380-9999"
        assert e["lawful_basis"]["statutory_gateways"] == ["education_act_2002_s175"]
        assert e["occurred_at"] == "2025-07-18T14:30:00+01:00"  # header DateTime, British Summer Time


def test_child_identity_fields(out25) -> None:
    child = pupil_events(out25, VALID_UPN)["education.pupil_record"]["subject"]["child"]
    assert child == {
        "upn": VALID_UPN,
        "former_upns": ["T380999924003"],
        "family_name": "Testpupil",
        "given_names": ["Alpha", "Example", "Middle"],
        "date_of_birth": "2015-03-14",
        "sex": "female",
        "ethnicity": "WBRI",
        "language": "ENG",
        "addresses": [{"lines": ["Flat 1", "12 Example Street", "Testville"], "city": "Sampletown",
                       "district": "Fictshire", "postcode": "ZZ99 3AA", "use": "home"}],
        "phones": ["01632 960001"],
        "emails": ["family.testpupil@example.org"],
        "school": {"la_code": "380", "urn": "999001", "name": "Testing Primary School (fictitious)"},
    }


def test_pupil_record_payload_fields(out25) -> None:
    payload = pupil_events(out25, VALID_UPN)["education.pupil_record"]["payload"]
    assert payload["ctf_version"] == "25.0"
    assert payload["source_school"] == {"la_code": "380", "urn": "999001",
                                        "name": "Testing Primary School (fictitious)"}
    assert payload["destination_school"] == {"la_code": "380", "urn": "999002",
                                             "name": "Example Academy (fictitious)"}
    assert payload["looked_after"] is True
    assert payload["fsm_history"] == [{"start": "2021-09-01", "end": "2022-07-22", "uk_country": "ENG"},
                                      {"start": "2023-01-09", "uk_country": "ENG"}]
    assert payload["sen_provision"] == "K"  # the latest SEN entry by start date
    assert payload["sen_needs"] == ["SLCN", "SEMH"]  # in rank order
    assert payload["school_history"] == [
        {"school": {"la_code": "380", "name": "Sample Infant School (fictitious)"}, "entry_date": "2019-09-04",
         "leaving_date": "2022-07-22", "leaving_reason": "MOVE"},
        {"school": {"la_code": "380", "urn": "999001", "name": "Testing Primary School (fictitious)"},
         "entry_date": "2022-09-05"},
    ]
    assert payload["attendance"] == [
        {"year": "2023", "sessions_possible": 380, "sessions_authorised": 4, "sessions_unauthorised": 0,
         "attendance_rate": 0.9895},
        {"year": "2024", "sessions_possible": 300, "sessions_authorised": 20, "sessions_unauthorised": 15,
         "attendance_rate": 0.8833},
    ]


def test_contacts_become_related_people_in_order(out25) -> None:
    related = pupil_events(out25, VALID_UPN)["education.pupil_record"]["subject"]["related_people"]
    assert [r["relationship"] for r in related] == ["CAR", "PAR"]  # <Order> 1 then 2, not document order
    carer, parent = related
    assert carer["role"] == "carer"
    assert carer["parental_responsibility"] is False
    assert carer["person"]["addresses"][0]["postcode"] == "ZZ99 3AA"  # AddressAsPupil
    assert parent == {"role": "parent", "relationship": "PAR", "parental_responsibility": True,
                      "person": {"family_name": "Testparent", "given_names": ["Beta"], "sex": "male",
                                 "phones": ["07700 900002"], "emails": ["beta.testparent@example.org"]}}


def test_attendance_concern_for_latest_year_below_threshold(out25) -> None:
    concerns = by_type(out25, "education.attendance_concern")
    assert len(concerns) == 1
    [concern] = concerns
    assert concern["subject"]["child"]["upn"] == VALID_UPN
    assert concern["payload"] == {
        "attendance": {"year": "2024", "sessions_possible": 300, "sessions_authorised": 20,
                       "sessions_unauthorised": 15, "attendance_rate": 0.8833},
        "threshold": 0.9,
        "school": {"la_code": "380", "urn": "999001", "name": "Testing Primary School (fictitious)"},
    }
    assert concern["subject"]["related_people"] == []


def test_attendance_concern_is_graded_by_the_dfe_absence_measure_not_given_a_common_level(out25) -> None:
    """35 of 300 sessions missed (11.7%) is persistent absence on the school's scale; the sample protocol places it."""
    [concern] = by_type(out25, "education.attendance_concern")
    assert placed(concern) == {"level": "low", "categories": [], "graded": ["persistent_absence"]}


@pytest.mark.parametrize(("authorised", "unauthorised", "threshold", "grading", "common"), [
    (5, 4, 0.95, "below_attendance_threshold", "low"),  # 9% missed: under the partnership's 95%, not persistent
    (6, 4, 0.95, "persistent_absence", "low"),  # exactly 10% missed is persistently absent (DfE: 10% or more)
    (30, 19, 0.9, "persistent_absence", "low"),  # 49%
    (30, 20, 0.9, "severe_absence", "medium"),  # exactly 50% is severe absence (DfE: 50% or more)
    (60, 40, 0.9, "severe_absence", "medium"),  # no sessions attended
])
def test_attendance_gradings_at_the_dfe_boundaries(authorised: int, unauthorised: int, threshold: float,
                                                   grading: str, common: str) -> None:
    data = (fixture("ctf24.xml").replace(b"<SessionsAuthorised>5<", f"<SessionsAuthorised>{authorised}<".encode())
            .replace(b"<SessionsUnauthorised>4<", f"<SessionsUnauthorised>{unauthorised}<".encode()))
    [concern] = by_type(adapt(ADAPTER, data, attendance_threshold=threshold), "education.attendance_concern")
    assert placed(concern) == {"level": common, "categories": [], "graded": [grading]}


def test_invalid_upn_is_kept_and_flagged_not_rejected(out25) -> None:
    events = pupil_events(out25, INVALID_UPN)
    assert set(events) == {"person.identified", "education.pupil_record"}
    for e in events.values():
        assert e["subject"]["child"]["upn"] == INVALID_UPN
        assert e["data_quality"] == [{"code": "identifier.upn_invalid", "field": "UPN",
                                      "message": "UPN fails its check letter or format rule"}]


def test_one_bad_pupil_does_not_sink_the_file(out25) -> None:
    assert [(r.record, r.field) for r in out25.rejections] == [
        ("CTFpupilData/Pupil[3]", "DOB"), ("CTFpupilData/Pupil[4]", "UPN")]
    assert out25.rejections[0].reason == "not a valid date (YYYY-MM-DD)"
    assert "cannot be identified" in out25.rejections[1].reason
    assert all(r.source == "test.xml" for r in out25.rejections)
    assert pupil_events(out25, given="Zeta")  # the pupil after the bad ones still flows


def test_rejections_and_warnings_carry_no_values(out25) -> None:
    text = " ".join(str(r) for r in out25.rejections)
    text += " ".join(str(w) for e in out25.events for w in e["data_quality"])
    for secret in ("2015-13-45", "Epsilon", "Testpupil", "Z380999924007", INVALID_UPN, "2016-01-01"):
        assert secret not in text


def test_pupil_without_upn_is_keyed_by_name_and_birth_date(out25) -> None:
    events = pupil_events(out25, given="Zeta")
    child = events["person.identified"]["subject"]["child"]
    assert "upn" not in child
    assert child["sex"] == "unknown"
    record_id = events["person.identified"]["source"]["record_id"]
    assert record_id.startswith("pupil:")
    assert "Zeta" not in record_id and "Testpupil" not in record_id


def test_record_ids_do_not_depend_on_position() -> None:
    first = adapt(ADAPTER, CTF25)
    swapped = (CTF25.replace(b"<UPN>P380999924001</UPN>", b"<UPN>TMP</UPN>")
               .replace(b"<UPN>A380999924002</UPN>", b"<UPN>P380999924001</UPN>")
               .replace(b"<UPN>TMP</UPN>", b"<UPN>A380999924002</UPN>"))
    second = adapt(ADAPTER, swapped)
    ids = {e["subject"]["child"].get("upn"): e["source"]["record_id"] for e in first.events}
    assert ids == {e["subject"]["child"].get("upn"): e["source"]["record_id"] for e in second.events}


@pytest.mark.parametrize(("threshold", "expected"), [
    (0.9, False),  # rate exactly 0.9 (20 of 200 sessions missed) is not below 0.9
    (0.9000001, True),
    (0.95, True),
    (0.0, False),
])
def test_attendance_threshold_boundary(threshold: float, expected: bool) -> None:
    out = adapt(ADAPTER, CTF25, attendance_threshold=threshold)
    concerned = {e["subject"]["child"].get("upn") for e in by_type(out, "education.attendance_concern")}
    assert (INVALID_UPN in concerned) is expected
    for e in by_type(out, "education.attendance_concern"):
        assert e["payload"]["threshold"] == threshold


def test_only_the_latest_year_decides() -> None:
    data = fixture("ctf24.xml").replace(b"</Attendance>", b"""<YearData><Year>2022</Year>
        <SessionsPossible>100</SessionsPossible><SessionsAuthorised>40</SessionsAuthorised>
        <SessionsUnauthorised>10</SessionsUnauthorised></YearData></Attendance>""")
    out = adapt(ADAPTER, data)  # 2022: 50% but 2023: 91%
    assert by_type(out, "education.attendance_concern") == []
    assert [y["year"] for y in by_type(out, "education.pupil_record")[0]["payload"]["attendance"]] == ["2022", "2023"]


def test_attendance_counts_that_make_no_rate_raise_no_concern() -> None:
    data = fixture("ctf24.xml").replace(b"<SessionsAuthorised>5</SessionsAuthorised>",
                                        b"<SessionsAuthorised>500</SessionsAuthorised>")
    out = adapt(ADAPTER, data, attendance_threshold=1.0)
    [record] = by_type(out, "education.pupil_record")
    assert "attendance_rate" not in record["payload"]["attendance"][0]
    assert "attendance.rate_unavailable" in codes(record)
    assert by_type(out, "education.attendance_concern") == []


def test_non_numeric_sessions_are_dropped_with_a_warning() -> None:
    data = fixture("ctf24.xml").replace(b"<SessionsPossible>100", b"<SessionsPossible>lots")
    out = adapt(ADAPTER, data)
    [record] = by_type(out, "education.pupil_record")
    assert "sessions_possible" not in record["payload"]["attendance"][0]
    assert "number.invalid" in codes(record)


def test_ctf23_gender_address_lines_and_unknown_destination() -> None:
    out = adapt(ADAPTER, fixture("ctf23.xml"))
    assert out.rejections == []
    [record] = by_type(out, "education.pupil_record")
    child = record["subject"]["child"]
    assert child["upn"] == "G380999924004"  # upper-cased
    assert child["sex"] == "female"  # <Gender>
    assert child["addresses"] == [{"lines": ["3 Sample Row", "Testville"], "postcode": "ZZ99 3AB", "use": "home"}]
    assert record["payload"]["ctf_version"] == "23.0"
    assert "destination_school" not in record["payload"]  # MMM/MMMM: the lost pupils database
    assert record["occurred_at"] == "2023-03-02T09:05:00+00:00"  # GMT in March
    assert "attendance_rate" not in record["payload"]["attendance"][0]  # no sessions possible
    [guardian] = record["subject"]["related_people"]  # the empty contact is left out
    assert guardian["role"] == "other"
    assert guardian["relationship"] == "ZZZ"
    assert guardian["parental_responsibility"] is True
    assert codes(record) == ["code.unknown", "contact.empty"]
    assert [w["field"] for w in record["data_quality"]] == ["Contacts/Contact[1]/Relationship", "Contacts/Contact[2]"]


def test_ctf24_maps() -> None:
    out = adapt(ADAPTER, fixture("ctf24.xml"))
    [record] = by_type(out, "education.pupil_record")
    assert record["source"]["system"] == "380-9998"
    assert record["payload"]["looked_after"] is False
    assert record["payload"]["destination_school"] == {"la_code": "380"}
    assert record["subject"]["child"]["date_of_birth"] == "2012-02-29"
    assert by_type(out, "education.attendance_concern") == []  # 91%


def test_event_ids_are_stable_for_a_resent_file() -> None:
    first = [e["event_id"] for e in adapt(ADAPTER, CTF25).events]
    again = [e["event_id"] for e in adapt(ADAPTER, CTF25).events]
    assert first == again
    assert len(set(first)) == len(first)
    later = CTF25.replace(b"2025-07-18T14:30:00", b"2025-07-19T08:00:00")
    assert set(first).isdisjoint(e["event_id"] for e in adapt(ADAPTER, later).events)


def test_transport_system_name_wins() -> None:
    out = adapt(ADAPTER, CTF25, system="mis-gateway-1")
    assert {e["source"]["system"] for e in out.events} == {"mis-gateway-1"}


def test_without_header_datetime_version_is_a_content_hash() -> None:
    data = CTF25.replace(b"<DateTime>2025-07-18T14:30:00</DateTime>", b"")
    out = adapt(ADAPTER, data)
    versions = {e["source"]["record_version"] for e in by_type(out, "education.pupil_record")}
    assert len(versions) == 3 and all(v.startswith("sha256:") for v in versions)
    assert {e["occurred_at"] for e in out.events} == {RECEIVED}
    assert [e["event_id"] for e in out.events] == [e["event_id"] for e in adapt(ADAPTER, data).events]


def test_duplicate_pupil_in_one_file_is_rejected() -> None:
    data = CTF25.replace(b"<UPN>A380999924002</UPN>", b"<UPN>P380999924001</UPN>")
    out = adapt(ADAPTER, data)
    assert ("CTFpupilData/Pupil[2]", "") in [(r.record, r.field) for r in out.rejections]
    assert len(by_type(out, "education.pupil_record")) == 2


def test_bad_detail_date_is_dropped_with_warning() -> None:
    data = CTF25.replace(b"<FSMendDate>2022-07-22</FSMendDate>", b"<FSMendDate>22/07/2022</FSMendDate>")
    out = adapt(ADAPTER, data)
    record = by_type(out, "education.pupil_record")[0]
    assert record["payload"]["fsm_history"][0] == {"start": "2021-09-01", "uk_country": "ENG"}
    assert {"code": "date.invalid", "field": "FSMhistory/FSMinstance[1]/FSMendDate",
            "message": "not a valid date (YYYY-MM-DD); left out"} in record["data_quality"]


def test_overlong_name_rejects_the_pupil_naming_the_field() -> None:
    data = CTF25.replace(b"<Forename>Delta</Forename>", b"<Forename>" + b"D" * 101 + b"</Forename>")
    out = adapt(ADAPTER, data)
    assert ("CTFpupilData/Pupil[2]", "Forename", "longer than 100 characters") in [
        (r.record, r.field, r.reason) for r in out.rejections]


def test_names_may_sit_in_basic_details() -> None:
    data = fixture("ctf24.xml").replace(b"<Surname>Testpupil</Surname>", b"").replace(
        b"<LookedAfter>", b"<BasicDetails><LegalSurname>Testpupil</LegalSurname></BasicDetails><LookedAfter>")
    [record] = by_type(adapt(ADAPTER, data), "education.pupil_record")
    assert record["subject"]["child"]["family_name"] == "Testpupil"


@pytest.mark.parametrize(("data", "field", "reason"), [
    (b"this is not xml", "", "not well-formed XML"),
    (b"<SchoolCensus><Header/></SchoolCensus>", "", "root element is not CTfile"),
    (b"<CTfile><CTFpupilData/></CTfile>", "Header", "missing"),
    (CTF25.replace(b"<CTFversion>25.0</CTFversion>", b""), "Header/CTFversion", "missing"),
    (CTF25.replace(b"<CTFversion>25.0", b"<CTFversion>22.0"), "Header/CTFversion",
     "CTF version not supported (expected 23 to 25)"),
    (CTF25.replace(b"<CTFversion>25.0", b"<CTFversion>\xd9\xa2\xd9\xa5"), "Header/CTFversion",
     "CTF version not supported (expected 23 to 25)"),
    (CTF25.replace(b"<Estab>9999</Estab>", b"", 1), "Header/SourceSchool",
     "LEA and Estab are required to name the sending school"),
    (CTF25.replace(b"<DateTime>2025-07-18T14:30:00", b"<DateTime>yesterday"), "Header/DateTime",
     "not a valid date-time (YYYY-MM-DDThh:mm:ss)"),
    (CTF25.replace(b"<DateTime>2025-07-18T14:30:00", b"<DateTime>0001-01-01T00:00:00"), "Header/DateTime",
     "not a valid date-time (out of range)"),  # London's offset in year 1 is local mean time, not hh:mm
    (CTF25.replace(b"Common Transfer File</DocumentName>", b"Children Missing Education</DocumentName>"),
     "Header/DocumentName", "a Children Missing Education transfer, not a CTF"),
])
def test_whole_input_problems_raise(data: bytes, field: str, reason: str) -> None:
    with pytest.raises(AdapterInputError) as info:
        adapt(ADAPTER, data)
    assert info.value.rejection.field == field
    assert info.value.rejection.reason == reason
    assert info.value.rejection.source == "test.xml"


def test_threshold_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(AdapterInputError):
        adapt(ADAPTER, CTF25, attendance_threshold=90)
