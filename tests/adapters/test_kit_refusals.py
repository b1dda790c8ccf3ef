"""Issue 23: a refused input is told the real cause (what the body is, what the agency's adapters expect, which agency
would read it), never a value from it."""

from __future__ import annotations

import orjson
import pytest

from adapters.kit.registry import NoAdapter, body_kind, select

WRONG_HEADER_CSV = b"CHILD_ID,GENDER,BIRTH\r\n999001,1,01/02/2015\r\n"
POLICE_JSON = orjson.dumps({"force_code": "99", "event_type": "incident_child_present",
                            "child": {"name": "Testchild Example"}})


def refusal(agency: str, data: bytes, **how: str) -> NoAdapter:
    with pytest.raises(NoAdapter) as caught:
        select(agency, data, source="input", **how)
    return caught.value


def test_a_csv_with_the_wrong_header_is_told_so_and_what_header_is_expected() -> None:
    exc = refusal("social_care", WRONG_HEADER_CSV, content_type="text/csv")
    reason = exc.rejection.reason
    assert exc.kind == "body"
    assert reason.startswith("the body is CSV but its header is not a known social_care file: expected ")
    assert "CHILD,SEX,DOB" in reason and "social_care.ssda903" in reason
    assert "999001" not in reason and "CHILD_ID" not in reason  # neither a value nor the sender's own column names


def test_police_json_sent_as_health_names_the_agency_that_reads_it() -> None:
    exc = refusal("health", POLICE_JSON, content_type="application/json")
    reason = exc.rejection.reason
    assert exc.kind == "body"  # health.fhir lists application/json: not "no health adapter accepts application/json"
    assert "the body is JSON but not a known health format" in reason
    assert "resourceType" in reason  # what health.fhir looks for
    assert "looks like a police record" in reason
    assert "Testchild" not in reason


def test_a_content_type_no_adapter_lists_names_the_ones_listed_and_a_likelier_agency() -> None:
    ssda903 = b"CHILD,SEX,DOB\r\n999001,1,01/02/2015\r\n"
    exc = refusal("police", ssda903, content_type="text/csv; charset=utf-8")
    reason = exc.rejection.reason
    assert exc.kind == "media_type"
    assert reason.startswith("no police adapter accepts content type 'text/csv' (police adapters accept ")
    assert "application/json" in reason and "looks like a social_care record" in reason
    assert "999001" not in reason


def test_a_file_name_is_never_repeated() -> None:
    exc = refusal("police", b"x", filename="Testchild-Example.csv")
    assert "Testchild" not in exc.rejection.reason and ".json" in exc.rejection.reason


@pytest.mark.parametrize(("data", "kind"), [
    (b"\xef\xbb\xbf  {\"a\": 1}", "JSON"), (b"<Patient/>", "XML"), (b"MSH|^~\\&|", "HL7 v2"),
    (b"A,B\nc,d", "CSV"), (b"plain words", None),
])
def test_body_kind(data: bytes, kind: str | None) -> None:
    assert body_kind(data) == kind


class _BreakingSniff:
    name, agency, formats = "third.breaks", "education", ("Breaks",)
    content_types, extensions = ("application/x-breaks",), (".brk",)

    def sniff(self, data: bytes) -> bool:
        raise RuntimeError("a third-party bug")


def test_a_third_party_sniff_that_raises_does_not_break_the_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.kit import registry

    real = registry.all_adapters()
    monkeypatch.setattr(registry, "all_adapters", lambda: (*real, _BreakingSniff()))
    exc = refusal("police", WRONG_HEADER_CSV, content_type="text/csv")
    assert exc.kind == "media_type"
