"""SSDA903 files in the DfE layouts (as DfE's 903 guidance and validator lay them out) and the CIN census 2025-26
additions (issue 22). Fixtures are written from the layouts, with fictitious children."""

from __future__ import annotations

import pytest

from adapters.kit.interface import AdapterInputError
from adapters.kit.registry import select
from adapters.social_care.cin import ADAPTER as CIN
from adapters.social_care.ssda903 import ADAPTER
from tests.adapters.social_care.builders import CSV_CTX, CTX, EPISODES_HEADER, child, csv_file, details, message
from tests.conftest import assert_canonical

DFE_MISSING = "CHILD,DOB,MISSING,MIS_START,MIS_END"


def convert(data: bytes):
    out = ADAPTER.adapt(data, CSV_CTX)
    return assert_canonical(out.events), out.rejections


def test_the_dfe_missing_file_with_its_dob_column_is_read() -> None:
    """Defect: the missing file in DfE's layout (with DOB) was refused as a whole."""
    events, rejections = convert(csv_file(DFE_MISSING, "TEST01,04/05/2012,M,03/01/2024,05/01/2024",
                                          "TEST02,01/09/2010,A,10/02/2024,"))
    assert rejections == []
    assert [(e["subject"]["child"], e["payload"]["kind"]) for e in events] == [
        ({"la_child_id": "TEST01", "date_of_birth": "2012-05-04"}, "missing"),
        ({"la_child_id": "TEST02", "date_of_birth": "2010-09-01"}, "away_from_placement"),
    ]


def test_a_bad_dob_in_the_missing_file_is_flagged_not_fatal() -> None:
    events, rejections = convert(csv_file(DFE_MISSING, "TEST01,31/02/2012,M,03/01/2024,"))
    assert rejections == [] and "date_of_birth" not in events[0]["subject"]["child"]
    assert "DOB" in [w["field"] for w in events[0]["data_quality"]]


def test_unknown_extra_columns_are_a_warning_not_a_refusal() -> None:
    """Defect: one local extra column (LA, YEAR as regional tools add) refused the whole file."""
    row = "TEST01,02/05/2023,S,C2,N1,U1,PR1,,,,LS17 7DF,LS1 4HR,SC000001,Testshire,2024"
    events, rejections = convert(csv_file(EPISODES_HEADER + ",LA,YEAR", row))
    assert rejections == [] and len(events) == 1
    [ignored] = [w for w in events[0]["data_quality"] if w["code"] == "column.unknown"]
    assert ignored["field"] == "columns 14, 15"
    assert "Testshire" not in str(events[0]["data_quality"]) and "LA" not in ignored["field"]


def test_a_duplicated_known_column_still_refuses_the_file() -> None:
    with pytest.raises(AdapterInputError) as info:
        convert(csv_file("CHILD,DOB,MISSING,MIS_START,MISSING", "TEST01,04/05/2012,M,03/01/2024,M"))
    assert info.value.rejection.field == "MISSING"


@pytest.mark.parametrize(("columns", "kind"), [
    ("CHILD,SEX,DOB,DUC", "UASC"),
    ("CHILD,DOB,SDQ_SCORE,SDQ_REASON,CONVICTED,HEALTH_CHECK,IMMUNISATIONS,TEETH_CHECK,HEALTH_ASSESSMENT,"
     "SUBSTANCE_MISUSE,INTERVENTION_RECEIVED,INTERVENTION_OFFERED", "OC2"),
    ("CHILD,DOB,IN_TOUCH,ACTIV,ACCOM", "OC3"),
    ("CHILD,DOB,DATE_INT,DATE_MATCH,FOSTER_CARE,NB_ADOPTR,SEX_ADOPTR,LS_ADOPTR", "AD1 (adoption)"),
    ("CHILD,DOB,DATE_PLACED,DATE_PLACED_CEASED,REASON_PLACED_CEASED", "placed for adoption"),
    ("CHILD,DOB,REVIEW,REVIEW_CODE", "reviews"),
    ("CHILD,DOB,PREV_PERM,LA_PERM,DATE_PERM", "previous permanence"),
    ("CHILD,SW_ID,SW_DECOM,SW_DEC,SW_REASON", "social worker episodes"),
])
def test_each_other_903_file_is_refused_naming_its_kind(columns: str, kind: str) -> None:
    """Defect: these got "no adapter accepts this file type" or, for UASC, the wrong name ("header file")."""
    data = csv_file(columns, ",".join(["TEST01", *["1"] * (columns.count(","))]))
    assert select("social_care", data, source="f.csv", filename="f.csv") is ADAPTER
    with pytest.raises(AdapterInputError) as info:
        ADAPTER.adapt(data, CSV_CTX)
    assert info.value.rejection.reason == f"SSDA903 {kind} file: not mapped; see adapters/social_care/README.md"
    assert "TEST01" not in str(info.value)


def test_cin_2025_26_pre_proceedings_block_is_reported_not_dropped() -> None:
    """Defect: the 2025-26 pre-proceedings / family group decision making block was ignored without a word."""
    block = ("<PreProceedings><PreProceedingsStartDate>2024-06-01</PreProceedingsStartDate></PreProceedings>"
             "<FamilyGroupDecisionMaking><FGDMdate>2024-06-10</FGDMdate></FamilyGroupDecisionMaking>")
    cin = details(closure=None, reason=None).replace("</CINdetails>", block + "</CINdetails>")
    out = CIN.adapt(message(child(None, None, cin), year=2026, reference="2026-03-31"), CTX)
    events = assert_canonical(out.events)
    referral = next(e for e in events if e["event_type"] == "social_care.referral")
    ignored = {w["field"] for w in referral["data_quality"] if w["code"] == "cin.element_not_mapped"}
    assert ignored == {"CINdetails/PreProceedings", "CINdetails/FamilyGroupDecisionMaking"}
    assert "2024-06-01" not in str(referral["data_quality"])


def test_cin_details_with_only_mapped_elements_carry_no_such_warning() -> None:
    out = CIN.adapt(message(), CTX)
    assert not [w for e in out.events for w in e["data_quality"] if w["code"] == "cin.element_not_mapped"]
