"""The real CIN census sample (liia-tools cin-2022.xml) converts to the right events; the DfE XSDs, when given, pass
the real sample and refuse precisely what breaks them."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.kit.interface import AdaptContext, Rejection
from adapters.social_care.cin import ADAPTER, CinAdapter
from adapters.social_care.cin_xsd import load_schema
from tests.adapters.grading import placed
from tests.adapters.social_care.builders import CTX, child, identifiers, message
from tests.conftest import assert_canonical

WARNED_UPNS = [("identifier.upn_invalid", "ChildIdentifiers/UPN"),
               ("identifier.upn_invalid", "ChildIdentifiers/FormerUPN"),
               ("identifier.upn_unknown", "ChildIdentifiers/UPNunknown")]


@pytest.fixture(scope="module")
def sample(external_cases: Path) -> bytes:
    return (external_cases / "social_care" / "cin-2022.xml").read_bytes()


@pytest.fixture(scope="module")
def schemas(external_cases: Path) -> dict[int, object]:
    folder = external_cases / "social_care"
    return {2022: load_schema(folder / "CIN_schema_2022.xsd"), 2024: load_schema(folder / "CIN_schema_2024.xsd")}


def by_type(events: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in events:
        out.setdefault(e["event_type"], []).append(e)
    return out


def test_sample_converts_to_eight_events(sample: bytes) -> None:
    out = ADAPTER.adapt(sample, AdaptContext(source="cin-2022.xml", received_at="2024-05-01T09:00:00Z"))
    assert out.rejections == []
    events = assert_canonical(out.events)
    kinds = by_type(events)
    assert {k: len(v) for k, v in kinds.items()} == {
        "person.identified": 1, "social_care.referral": 1, "social_care.assessment": 1,
        "social_care.section47_enquiry": 1, "social_care.child_protection_plan_started": 1,
        "social_care.child_protection_plan_reviewed": 1, "social_care.child_protection_plan_ended": 1,
        "social_care.case_closed": 1}
    for e in events:
        assert e["source"]["system"] == "201"  # Header/Source/LEA
        assert e["source"]["format"] == "cin-census-xml"
        assert e["subject"]["linkage"]["basis"] == "la_child_id"  # both UPNs in the sample fail their check letter
        assert [(w["code"], w["field"]) for w in e["data_quality"]] == WARNED_UPNS


def test_sample_child_and_event_values(sample: bytes) -> None:
    kinds = by_type(ADAPTER.adapt(sample, CTX).events)
    person = kinds["person.identified"][0]
    assert person["subject"]["child"] == {
        "la_child_id": "DfEX0000001", "upn": "A123456789123", "former_upns": ["X98765432123B"],
        "date_of_birth": "1966-03-24", "expected_date_of_birth": "1966-03-22", "sex": "male",
        "date_of_death": "1980-10-08", "ethnicity": "WBRI", "disabilities": ["HAND", "HEAR"]}
    assert person["occurred_at"] == "2022-03-31"  # the census reference date
    assert person["source"]["record_id"] == "DfEX0000001"
    referral = kinds["social_care.referral"][0]
    assert referral["source"]["record_id"] == "DfEX0000001:1970-10-06"
    assert referral["payload"] == {
        "referral_date": "1970-10-06", "referral_source": "1A", "primary_need_code": "N4", "referral_nfa": False,
        "cin_plan_start_dates": ["1971-01-24"], "cin_plan_end_dates": ["1971-01-26"],
        "initial_cp_conference_date": "1970-12-06"}
    assert placed(referral) == {"level": "low", "categories": [], "graded": ["need_family_in_acute_stress"]}  # N4
    assessment = kinds["social_care.assessment"][0]
    assert assessment["payload"] == {"actual_start_date": "1970-06-03", "internal_review_date": "1970-06-22",
                                     "authorisation_date": "1971-07-18", "factors": ["2A", "2B"]}
    assert placed(assessment) == {"level": "medium", "categories": ["parental_substance_misuse", "substance_misuse"],
                                  "graded": ["concern_factors"]}
    s47 = kinds["social_care.section47_enquiry"][0]
    assert s47["payload"] == {"actual_start_date": "1970-06-02", "initial_cp_conference_target_date": "1970-06-23",
                              "initial_cp_conference_date": "1970-06-17", "icpc_not_required": False}
    assert placed(s47) == {"level": "high", "categories": [], "graded": ["child_protection"]}
    started = kinds["social_care.child_protection_plan_started"][0]
    assert started["occurred_at"] == "1970-02-17"
    assert started["payload"] == {"start_date": "1970-02-17", "initial_category_of_abuse": "PHY",
                                  "number_of_previous_cpp": 10}
    assert placed(started) == {"level": "high", "categories": ["physical_abuse"], "graded": ["child_protection"]}
    reviewed = kinds["social_care.child_protection_plan_reviewed"][0]
    assert (reviewed["occurred_at"], reviewed["payload"]) == ("1971-02-15", {"start_date": "1970-02-17",
                                                                              "review_dates": ["1971-02-15"]})
    ended = kinds["social_care.child_protection_plan_ended"][0]
    assert ended["occurred_at"] == "1971-03-14"
    assert ended["payload"]["latest_category_of_abuse"] == "PHY" and ended["payload"]["end_date"] == "1971-03-14"
    assert placed(ended) == {"level": "medium", "categories": ["physical_abuse"],
                             "graded": ["child_protection_plan_ended"]}
    closed = kinds["social_care.case_closed"][0]
    assert (closed["occurred_at"], closed["payload"]) == ("1971-02-27", {"closure_date": "1971-02-27",
                                                                          "reason_for_closure": "RC1"})


def test_sample_resent_gives_the_same_event_ids(sample: bytes) -> None:
    first = ADAPTER.adapt(sample, CTX).events
    again = ADAPTER.adapt(sample.replace(b"    ", b"  "), AdaptContext(source="resend.xml",
                                                                       received_at="2025-01-01T00:00:00Z")).events
    assert [e["event_id"] for e in first] == [e["event_id"] for e in again]
    assert len({e["event_id"] for e in first}) == 8


def test_sample_is_valid_against_the_2022_xsd(sample: bytes, schemas: dict) -> None:
    out = CinAdapter(schemas=schemas).adapt(sample, CTX)
    assert out.rejections == [] and len(out.events) == 8


def test_synthetic_2022_message_is_valid_against_the_2022_xsd(schemas: dict) -> None:
    out = CinAdapter(schemas=schemas).adapt(message(child(), year=2022), CTX)
    assert out.rejections == [] and len(out.events) == 9  # two plan reviews


def test_xsd_refuses_the_breaking_child_by_element_and_never_quotes_the_value(schemas: dict) -> None:
    bad = child(identifiers(la_id="TESTCHILD02", upn="NOTAUPN1"))  # fails the XSD upntype pattern
    out = CinAdapter(schemas=schemas).adapt(message(child(), bad, year=2024), CTX)
    assert out.rejections == [Rejection(
        "cin.xml", "Message/Children/Child[2]", "ChildIdentifiers/UPN",  # the Child is the record
        "does not conform to the CIN 2024 XML schema (SCHEMAV_CVC_PATTERN_VALID)", line=2)]
    assert {e["subject"]["child"]["la_child_id"] for e in out.events} == {"TESTCHILD01"}
    assert "NOTAUPN1" not in str(out.rejections)


def test_xsd_is_used_only_for_a_year_it_covers(schemas: dict) -> None:
    bad = child(identifiers(upn="NOTAUPN1"))
    out = CinAdapter(schemas=schemas).adapt(message(bad, year=2026), CTX)
    assert out.rejections == []  # no 2026 XSD: structural checks in code only; the bad UPN is flagged instead
    assert ("identifier.upn_invalid", "ChildIdentifiers/UPN") in {
        (w["code"], w["field"]) for w in out.events[0]["data_quality"]}


def test_xsd_folder_setting_turns_on_validation_for_matching_years(external_cases) -> None:
    from adapters.kit.interface import AdaptContext
    from adapters.social_care.cin import CinAdapter
    from adapters.social_care.cin_xsd import schemas_from_dir

    schemas = schemas_from_dir(external_cases / "social_care")
    assert sorted(schemas) == [2022, 2024]
    assert schemas_from_dir(None) == {}
    data = (external_cases / "social_care" / "cin-2022.xml").read_bytes()
    validated = CinAdapter(schemas).adapt(data, AdaptContext(source="cin-2022.xml"))
    plain = CinAdapter().adapt(data, AdaptContext(source="cin-2022.xml"))
    assert validated.rejections == []  # the real 2022 sample is valid against the 2022 XSD
    assert [e["event_id"] for e in validated.events] == [e["event_id"] for e in plain.events]
    assert len(plain.events) == 8
