"""SSDA903 CSV: the real header and episodes files convert; synthetic rows map field by field; bad rows are
rejected as "line N" naming the column while the others flow; unusable files are refused as a whole."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from adapters.kit.interface import AdaptContext, AdapterInputError, Rejection
from adapters.social_care.ssda903 import ADAPTER
from tests.adapters.grading import placed
from tests.adapters.social_care.builders import (
    BAD_CHECK_UPN,
    CSV_CTX,
    EPISODES_HEADER,
    HEADER_HEADER,
    MISSING_HEADER,
    VALID_UPN,
    csv_file,
)
from tests.conftest import assert_canonical

EPISODE = "TEST01,02/05/2023,S,C2,N1,U1,PR1,,,,ls17 7df,LS1 4HR,SC000001"
CLOSED_EPISODE = "TEST01,02/05/2023,S,C2,N1,U1,PR1,20/09/2023,E13,,LS17 7DF,LS1 4HR,SC000001"


def convert(data: bytes, ctx: AdaptContext = CSV_CTX) -> tuple[list[dict], list[Rejection]]:
    out = ADAPTER.adapt(data, ctx)
    return assert_canonical(out.events), out.rejections


def real(external_cases: Path, name: str) -> tuple[list[dict], list[Rejection]]:
    data = (external_cases / "social_care" / name).read_bytes()
    return convert(data, dataclasses.replace(CSV_CTX, source=name))


def test_real_header_file(external_cases: Path) -> None:
    events, rejections = real(external_cases, "903-header.csv")
    assert rejections == []
    assert len(events) == 2675 and {e["event_type"] for e in events} == {"person.identified"}
    first = events[0]
    assert first["subject"]["child"] == {"la_child_id": "566910", "sex": "female", "date_of_birth": "2008-03-27",
                                         "ethnicity": "WROM", "upn": "D051910639385"}
    assert first["source"]["record_id"] == "566910" and first["source"]["system"] == "999"
    # every UPN in this validator fixture fails its check letter: kept, flagged, linkage falls back to the LA id
    assert Counter(w["code"] for e in events for w in e["data_quality"]) == {"identifier.upn_invalid": 2675}
    assert {e["subject"]["linkage"]["basis"] for e in events} == {"la_child_id"}
    mothers = [e for e in events if e["subject"]["related_people"]]
    assert [(e["source"]["record_id"], e["subject"]["related_people"]) for e in mothers] == [
        ("6389", [{"role": "other", "relationship": "child_of_subject", "person": {"date_of_birth": "2016-08-27"}}])]
    assert Counter(e["subject"]["child"]["sex"] for e in events) == {"female": 1342, "male": 1333}


def test_real_episodes_file(external_cases: Path) -> None:
    events, rejections = real(external_cases, "903-episodes.csv")
    assert rejections == []
    kinds = Counter(e["event_type"] for e in events)
    assert kinds == {"social_care.looked_after_episode_started": 5050, "social_care.looked_after_episode_ended": 3637}
    assert len({e["event_id"] for e in events}) == 8687
    first, second = events[0], events[2]  # line 2 has an end date (events 0 and 1), line 3 does not
    assert first["payload"] == {"start_date": "2016-02-15", "reason_new_episode": "L", "legal_status": "C2",
                                "category_of_need": "N3", "placement_type": "T2", "placement_provider": "PR0",
                                "reason_place_change": "CLOSE", "placement_urn": "4244474"}
    assert first["source"]["record_id"] == "566910:episode:2016-02-15"
    assert events[1]["event_type"] == "social_care.looked_after_episode_ended"
    assert events[1]["payload"]["end_date"] == "2017-08-14" and events[1]["payload"]["reason_episode_ceased"] == "X1"
    # X1: a new episode begins the same day, so the child is still looked after
    assert placed(events[1]) == {"level": "medium", "categories": [], "graded": ["looked_after"]}
    assert second["payload"]["home_postcode"] == "EG19 7TT" and second["payload"]["placement_postcode"] == "WV27 9FW"
    # The deliberately inconsistent rows: a reason the episode ceased, but no end date (1413 open episodes).
    flagged = [e for e in events if e["data_quality"]]
    assert len(flagged) == 1413
    assert {(w["code"], w["field"]) for e in flagged for w in e["data_quality"]} == {
        ("episode.reason_ceased_without_end", "REC")}
    assert all("reason_episode_ceased" not in e["payload"] for e in flagged)


def test_real_2020_episodes_file(external_cases: Path) -> None:
    events, rejections = real(external_cases, "SSDA903_2020_episodes.csv")
    assert rejections == []
    assert [(e["event_type"].rsplit("_", 1)[1], e["occurred_at"]) for e in events] == [
        ("started", "2018-12-11"), ("ended", "2019-07-18"), ("started", "2018-12-02"), ("ended", "2019-05-16"),
        ("started", "2019-05-16"), ("ended", "2019-09-26"), ("started", "2019-03-30"), ("ended", "2019-04-10"),
        ("started", "2019-04-10"), ("ended", "2019-06-24")]
    assert events[1]["payload"] == {"start_date": "2018-12-11", "end_date": "2019-07-18", "reason_new_episode": "P",
                                    "legal_status": "V4", "category_of_need": "N4", "placement_type": "K2",
                                    "placement_provider": "PR4", "reason_episode_ceased": "E15",
                                    "home_postcode": "Y8 5KZ", "placement_postcode": "T28 2WB",
                                    "placement_urn": "6834366"}
    assert placed(events[1]) == {"level": "low", "categories": [], "graded": ["left_care"]}  # E15
    assert events[9]["payload"]["reason_place_change"] == "CREQB"


def test_synthetic_episode_maps_every_field() -> None:
    events, rejections = convert(csv_file(EPISODES_HEADER, EPISODE, CLOSED_EPISODE.replace("TEST01", "TEST02")))
    assert rejections == []
    assert [e["event_type"] for e in events] == ["social_care.looked_after_episode_started",
                                                 "social_care.looked_after_episode_started",
                                                 "social_care.looked_after_episode_ended"]
    started = events[0]
    assert started["occurred_at"] == "2023-05-02"
    assert started["subject"]["child"] == {"la_child_id": "TEST01"}
    assert started["payload"] == {"start_date": "2023-05-02", "reason_new_episode": "S", "legal_status": "C2",
                                  "category_of_need": "N1", "placement_type": "U1", "placement_provider": "PR1",
                                  "home_postcode": "LS17 7DF", "placement_postcode": "LS1 4HR",
                                  "placement_urn": "SC000001"}
    assert placed(started) == {"level": "medium", "categories": [], "graded": ["looked_after"]}
    ended = events[2]
    assert ended["occurred_at"] == "2023-09-20"
    assert ended["payload"]["end_date"] == "2023-09-20" and ended["payload"]["reason_episode_ceased"] == "E13"
    assert ended["source"]["record_id"] == events[1]["source"]["record_id"] == "TEST02:episode:2023-05-02"


def test_synthetic_header_row() -> None:
    rows = [f"TEST01,1,15/06/2010,AIND,{VALID_UPN},,", "TEST02,2,01/02/2008,XXXX,UN4,1,03/04/2024",
            f"TEST03,3,31/02/2009,WBRI,{BAD_CHECK_UPN},7,"]
    events, rejections = convert(csv_file(HEADER_HEADER, *rows))
    assert rejections == []
    one, two, three = events
    assert one["subject"]["child"] == {"la_child_id": "TEST01", "sex": "male", "date_of_birth": "2010-06-15",
                                       "ethnicity": "AIND", "upn": VALID_UPN}
    assert one["subject"]["linkage"]["basis"] == "upn" and one["data_quality"] == []
    assert two["subject"]["child"] == {"la_child_id": "TEST02", "sex": "female", "date_of_birth": "2008-02-01",
                                       "ethnicity": "XXXX"}
    assert two["subject"]["related_people"] == [{"role": "other", "relationship": "child_of_subject",
                                                 "person": {"date_of_birth": "2024-04-03"}}]
    assert {(w["code"], w["field"]) for w in two["data_quality"]} == {("code.unrecognised", "ETHNIC"),
                                                                        ("identifier.upn_unknown", "UPN")}
    assert {(w["code"], w["field"]) for w in three["data_quality"]} == {
        ("sex.unrecognised", "SEX"), ("date.invalid", "DOB"), ("identifier.upn_invalid", "UPN"),
        ("code.unrecognised", "MOTHER")}
    assert three["subject"]["child"] == {"la_child_id": "TEST03", "ethnicity": "WBRI", "upn": BAD_CHECK_UPN}


def test_missing_file() -> None:
    rows = ["TEST01,M,03/01/2024,05/01/2024", "TEST01,a,10/02/2024,", "TEST02,X,10/02/2024,",
            "TEST03,M,10/02/2024,01/02/2024", "TEST04,M,,"]
    events, rejections = convert(csv_file(MISSING_HEADER, *rows))
    assert [(e["payload"], placed(e)) for e in events] == [
        ({"kind": "missing", "start_date": "2024-01-03", "end_date": "2024-01-05"},
         {"level": "high", "categories": ["missing"], "graded": ["missing_from_care"]}),
        ({"kind": "away_from_placement", "start_date": "2024-02-10"},
         {"level": "medium", "categories": ["missing"], "graded": ["away_from_placement"]}),
        ({"kind": "missing", "start_date": "2024-02-10"},
         {"level": "high", "categories": ["missing"], "graded": ["missing_from_care"]})]
    assert {(w["code"], w["field"]) for w in events[2]["data_quality"]} == {("date.order", "MIS_END")}
    assert events[0]["event_type"] == "social_care.missing_from_care"
    assert rejections == [
        Rejection("903.csv", "row 3", "MISSING", "missing or not M (missing) or A (away from placement without "
                                                 "authorisation)", line=4),
        Rejection("903.csv", "row 5", "MIS_START", "missing", line=6)]


def test_bad_rows_are_rejected_precisely_and_the_rest_flow() -> None:
    rows = [EPISODE,                                                      # line 2: fine
            EPISODE.replace("02/05/2023", "2023-05-02"),                  # line 3: ISO, not DD/MM/YYYY
            EPISODE.replace("02/05/2023", "02/05/2030"),                  # line 4: future
            EPISODE.replace("TEST01", ""),                                # line 5: no child id
            CLOSED_EPISODE.replace("20/09/2023", "31/09/2023"),           # line 6: bad DEC: started still flows
            CLOSED_EPISODE.replace("20/09/2023", "01/01/2023"),           # line 7: DEC before DECOM
            EPISODE + ",extra",                                           # line 8: too many cells
            "",                                                           # line 9: blank, skipped
            '"TEST05",02/05/2023,S,C2,N1,U1,PR1,,,,"LS17\n7DF",LS1 4HR,1']  # lines 10-11: quoted newline
    events, rejections = convert(csv_file(EPISODES_HEADER, *rows))
    assert rejections == [
        Rejection("903.csv", "row 2", "DECOM", "not a valid date (DD/MM/YYYY)", line=3),
        Rejection("903.csv", "row 3", "DECOM", "date is after the day the file was received", line=4),
        Rejection("903.csv", "row 4", "CHILD", "missing: the local authority child id identifies the record", line=5),
        Rejection("903.csv", "row 5", "DEC", "not a valid date (DD/MM/YYYY)", line=6),
        Rejection("903.csv", "row 6", "DEC", "before the episode's start date (DECOM)", line=7),
        Rejection("903.csv", "row 7", "", "row has 14 cells, the header has 13", line=8),
    ]
    assert [(e["subject"]["child"]["la_child_id"], e["event_type"].rsplit("_", 1)[1]) for e in events] == [
        ("TEST01", "started"), ("TEST01", "started"), ("TEST01", "started"), ("TEST05", "started")]
    assert events[-1]["payload"]["home_postcode"] == "LS17 7DF"
    assert not any("02/05/2030" in str(r) or "31/09/2023" in str(r) for r in rejections)


def test_ids_are_stable_and_closing_an_episode_keeps_the_started_event() -> None:
    open_ids = [e["event_id"] for e in ADAPTER.adapt(csv_file(EPISODES_HEADER, EPISODE), CSV_CTX).events]
    again = [e["event_id"] for e in ADAPTER.adapt(csv_file(EPISODES_HEADER, EPISODE), dataclasses.replace(
        CSV_CTX, received_at="2025-01-01T00:00:00Z")).events]
    closed = ADAPTER.adapt(csv_file(EPISODES_HEADER, CLOSED_EPISODE.replace("LS17 7DF", "ls17 7df")), CSV_CTX).events
    assert open_ids == again
    assert closed[0]["event_id"] == open_ids[0] and len(closed) == 2


def test_header_is_matched_case_insensitively_with_a_bom_and_column_order_free() -> None:
    data = b"\xef\xbb\xbf" + csv_file("mis_start, child ,Missing", "03/01/2024,TEST01,M")
    events, rejections = convert(data)
    assert rejections == [] and events[0]["payload"] == {"kind": "missing", "start_date": "2024-01-03"}


@pytest.mark.parametrize(("data", "record", "field", "reason"), [
    (csv_file("CHILD,DOB,REVIEW,REVIEW_CODE", "TEST01,01/01/2010,01/01/2024,PN1"), "", "",
     "SSDA903 reviews file: not mapped; see adapters/social_care/README.md"),
    (csv_file("TEST01,02/05/2023,S"), "line 1", "", "header row is not that of an SSDA903 header, episodes or "
                                                    "missing file"),
    (csv_file("CHILD,SEX,DOB,DUC", "TEST01,1,01/01/2010,01/01/2028"), "", "",
     "SSDA903 UASC file: not mapped; see adapters/social_care/README.md"),
    (csv_file("CHILD,MISSING,MIS_START,CHILD", "TEST01,M,01/01/2024,X"), "line 1", "CHILD",
     "column appears more than once"),
    (b"", "line 1", "", "header row is not that of an SSDA903 header, episodes or missing file"),
    (b"CHILD,SEX,DOB\r\n\xff\xfe,1,2\r\n", "", "", "not UTF-8 text"),
    (b"CHILD,SEX,DOB\r\nA\x00,1,2\r\n", "", "", "contains NUL characters: not a CSV text file"),
    (b'CHILD,SEX,DOB\r\n"TEST01"x,1,01/01/2010\r\n', "line 2", "", "malformed CSV"),
    (b"<Message><Children/></Message>", "line 1", "", "header row is not that of an SSDA903 header, episodes or "
                                                      "missing file"),
])
def test_unusable_files_are_refused(data: bytes, record: str, field: str, reason: str) -> None:
    with pytest.raises(AdapterInputError) as info:
        ADAPTER.adapt(data, CSV_CTX)
    assert (info.value.rejection.record, info.value.rejection.field, info.value.rejection.reason) == (
        record, field, reason)
    assert "TEST01" not in str(info.value)


def test_the_sending_authority_must_be_named() -> None:
    with pytest.raises(AdapterInputError) as info:
        ADAPTER.adapt(csv_file(EPISODES_HEADER, EPISODE), dataclasses.replace(CSV_CTX, system=None))
    assert "give the sending system (HTTP: the X-Source-System header; convert: --system)" in \
        info.value.rejection.reason


def test_sniff() -> None:
    assert ADAPTER.sniff(csv_file(EPISODES_HEADER, EPISODE))
    assert ADAPTER.sniff(b"\xef\xbb\xbfchild,missing,mis_start\n")
    assert ADAPTER.sniff(b"CHILD,DOB,REVIEW\n")  # a 903 file, so this adapter refuses it by name (not "no adapter")
    assert not ADAPTER.sniff(b"CHILD,DOB,COLOUR\n")
    assert not ADAPTER.sniff(b"<Message/>")
