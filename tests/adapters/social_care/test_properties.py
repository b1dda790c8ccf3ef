"""Property tests: arbitrary bytes, or valid CIN XML and SSDA903 CSV mutated, make `adapt` return AdapterOutput or
raise AdapterInputError, nothing else; and whatever events come out are schema-valid."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput
from adapters.social_care.cin import ADAPTER as CIN
from adapters.social_care.ssda903 import ADAPTER as SSDA903
from tests.adapters.fuzzing import mutated
from tests.adapters.social_care.builders import (
    EPISODES_HEADER,
    HEADER_HEADER,
    MISSING_HEADER,
    assessment,
    child,
    csv_file,
    details,
    full_details,
    identifiers,
    message,
    plan,
)
from tests.conftest import assert_canonical

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTEXTS = [AdaptContext(source="fuzz"), AdaptContext(source="fuzz", received_at="2024-05-01T09:00:00Z",
                                                      system="999")]
CIN_SEEDS = [message(child()),
             message(child(identifiers(sex_element="Sex", sex="F")), child(None, None, full_details(),
                     details(referral="2023-09-01", assessments=[assessment(factors=("10A",))],
                             plans=[plan(end=None)])), year=2025)]
CSV_SEEDS = [csv_file(EPISODES_HEADER, "TEST01,02/05/2023,S,C2,N1,U1,PR1,20/09/2023,E13,,LS17 7DF,LS1 4HR,1"),
             csv_file(HEADER_HEADER, "TEST01,1,15/06/2010,AIND,Y201000000001,1,03/04/2024"),
             csv_file(MISSING_HEADER, "TEST01,M,03/01/2024,05/01/2024", "TEST02,A,04/01/2024,")]
INSERTS = [b"<", b">", b"</", b"<Child>", b"<CINdetails>", b"<!DOCTYPE x>", b"&amp;", b"\x00", b"\xff", b",",
           b'"', b"\r\n", b"\n", b"2099-12-31", b"31/12/2099", b"9" * 60, b"<Reviews><CPPreviewDate>x", b"UN1"]


def _holds(adapter, data: bytes) -> None:
    for ctx in CONTEXTS:
        try:
            out = adapter.adapt(data, ctx)
        except AdapterInputError as exc:
            assert exc.rejection.source == "fuzz"
            continue
        assert isinstance(out, AdapterOutput)
        assert_canonical(out.events)




@SETTINGS
@given(st.binary(max_size=600))
def test_cin_any_bytes(data: bytes) -> None:
    _holds(CIN, data)


@SETTINGS
@given(mutated(CIN_SEEDS, INSERTS, max_ops=6, max_delete=30))
def test_cin_mutated(data: bytes) -> None:
    _holds(CIN, data)


@SETTINGS
@given(st.binary(max_size=600))
def test_ssda903_any_bytes(data: bytes) -> None:
    _holds(SSDA903, data)


@SETTINGS
@given(mutated(CSV_SEEDS, INSERTS, max_ops=6, max_delete=30))
def test_ssda903_mutated(data: bytes) -> None:
    _holds(SSDA903, data)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=4, max_size=4))
def test_ssda903_arbitrary_cell_text(cells: list[str]) -> None:
    row = ",".join('"' + c.replace('"', '""') + '"' for c in cells)
    _holds(SSDA903, csv_file(MISSING_HEADER, row))
