"""CIN census mapping, field by field, for each year variant; precise rejections; hostile and unusable inputs."""

from __future__ import annotations

import dataclasses

import pytest

from adapters.kit.interface import AdaptContext, AdapterInputError, Rejection
from adapters.social_care.cin import ADAPTER
from tests.adapters.grading import common_level, placed
from tests.adapters.social_care.builders import (
    BAD_CHECK_UPN,
    CHILD_ID,
    CTX,
    OTHER_VALID_UPN,
    VALID_UPN,
    assessment,
    characteristics,
    child,
    details,
    full_details,
    identifiers,
    message,
    plan,
)
from tests.conftest import assert_canonical

FUTURE = "2030-01-01"  # after CTX.received_at


def events_of(data: bytes, ctx: AdaptContext = CTX) -> tuple[dict[str, list[dict]], list[Rejection]]:
    out = ADAPTER.adapt(data, ctx)
    kinds: dict[str, list[dict]] = {}
    for e in assert_canonical(out.events):
        kinds.setdefault(e["event_type"], []).append(e)
    return kinds, out.rejections


def codes_of(event: dict) -> set[tuple[str, str]]:
    return {(w["code"], w["field"]) for w in event["data_quality"]}


def test_2022_variant_maps_every_field() -> None:
    ids = identifiers(former=OTHER_VALID_UPN, dob="2014-06-15", sex_element="GenderCurrent", sex="2")
    kinds, rejections = events_of(message(child(ids, characteristics("MWBA", ("HEAR", "AUT"))), year=2022))
    assert rejections == []
    assert {k: len(v) for k, v in kinds.items()} == {
        "person.identified": 1, "social_care.referral": 1, "social_care.assessment": 1,
        "social_care.section47_enquiry": 1, "social_care.child_protection_plan_started": 1,
        "social_care.child_protection_plan_reviewed": 2, "social_care.child_protection_plan_ended": 1,
        "social_care.case_closed": 1}
    person = kinds["person.identified"][0]
    assert person["subject"]["child"] == {"la_child_id": CHILD_ID, "upn": VALID_UPN, "former_upns": [OTHER_VALID_UPN],
                                          "date_of_birth": "2014-06-15", "sex": "female", "ethnicity": "MWBA",
                                          "disabilities": ["HEAR", "AUT"]}
    assert person["subject"]["linkage"]["basis"] == "upn"
    assert person["source"] == {"agency": "social_care", "system": "999", "record_id": CHILD_ID,
                                "record_version": person["source"]["record_version"], "format": "cin-census-xml"}
    assert person["data_quality"] == []
    referral = kinds["social_care.referral"][0]
    assert referral["payload"] == {"referral_date": "2023-05-02", "referral_source": "5A", "primary_need_code": "N1",
                                   "referral_nfa": False, "cin_plan_start_dates": ["2023-05-20"],
                                   "cin_plan_end_dates": ["2023-05-29"]}
    assert placed(referral) == {"level": "medium", "categories": [], "graded": ["need_abuse_or_neglect"]}  # N1
    assert referral["source"]["record_id"] == f"{CHILD_ID}:2023-05-02"
    a = kinds["social_care.assessment"][0]
    assert a["payload"] == {"actual_start_date": "2023-05-10", "internal_review_date": "2023-05-24",
                            "authorisation_date": "2023-06-20", "factors": ["16A", "3A"]}
    assert placed(a) == {"level": "high", "categories": ["domestic_abuse", "neglect"], "graded": ["harm_factors"]}
    assert a["occurred_at"] == "2023-05-10"
    s47 = kinds["social_care.section47_enquiry"][0]
    assert s47["payload"] == {"actual_start_date": "2023-05-12", "initial_cp_conference_target_date": "2023-06-02",
                              "initial_cp_conference_date": "2023-05-30", "icpc_not_required": False}
    started = kinds["social_care.child_protection_plan_started"][0]
    assert started["payload"] == {"start_date": "2023-05-30", "initial_category_of_abuse": "NEG",
                                  "number_of_previous_cpp": 1}
    assert placed(s47) == {"level": "high", "categories": [], "graded": ["child_protection"]}
    assert placed(started) == {"level": "high", "categories": ["neglect"], "graded": ["child_protection"]}
    reviews = kinds["social_care.child_protection_plan_reviewed"]
    assert [(r["occurred_at"], r["payload"]["review_dates"]) for r in reviews] == [
        ("2023-08-30", ["2023-08-30"]), ("2024-01-15", ["2024-01-15"])]
    assert {tuple(r["risk"]["categories"]) for r in reviews} == {("emotional_abuse",)}  # the latest category
    assert {common_level(r) for r in reviews} == {"high"}
    ended = kinds["social_care.child_protection_plan_ended"][0]
    assert ended["payload"] == {"start_date": "2023-05-30", "end_date": "2024-02-20",
                                "initial_category_of_abuse": "NEG", "latest_category_of_abuse": "EMO",
                                "number_of_previous_cpp": 1, "review_dates": ["2023-08-30", "2024-01-15"]}
    assert placed(ended) == {"level": "medium", "categories": ["emotional_abuse"],
                             "graded": ["child_protection_plan_ended"]}
    closed = kinds["social_care.case_closed"][0]
    assert closed["payload"] == {"closure_date": "2024-03-01", "reason_for_closure": "RC7"}
    assert closed["occurred_at"] == "2024-03-01"
    assert placed(closed) == {"level": "low", "categories": [], "graded": ["case_closed"]}


def test_2025_variant_reads_sex() -> None:
    ids = identifiers(sex_element="Sex", sex="M")
    kinds, rejections = events_of(message(child(ids), year=2025, reference="2025-03-31"))
    assert rejections == []
    person = kinds["person.identified"][0]
    assert person["subject"]["child"]["sex"] == "male"
    assert person["data_quality"] == []
    assert person["occurred_at"] == "2025-03-31"


@pytest.mark.parametrize(("element", "value", "sex"), [
    ("GenderCurrent", "1", "male"), ("GenderCurrent", "2", "female"), ("GenderCurrent", "0", "unknown"),
    ("GenderCurrent", "9", "other"), ("Sex", "M", "male"), ("Sex", "F", "female"), ("Sex", "U", "unknown"),
    ("Sex", "f", "female"),
])
def test_sex_codes(element: str, value: str, sex: str) -> None:
    year = 2025 if element == "Sex" else 2024
    kinds, _ = events_of(message(child(identifiers(sex_element=element, sex=value)), year=year))
    assert kinds["person.identified"][0]["subject"]["child"]["sex"] == sex


@pytest.mark.parametrize(("element", "value", "year"), [("GenderCurrent", "2", 2026), ("Sex", "F", 2022)])
def test_an_element_of_another_year_is_read_and_flagged(element: str, value: str, year: int) -> None:
    kinds, _ = events_of(message(child(identifiers(sex_element=element, sex=value)), year=year))
    person = kinds["person.identified"][0]
    assert person["subject"]["child"]["sex"] == "female"
    assert codes_of(person) == {("cin.element_for_other_year", f"ChildIdentifiers/{element}")}


def test_unrecognised_sex_is_left_out_and_flagged() -> None:
    kinds, _ = events_of(message(child(identifiers(sex="7"))))
    person = kinds["person.identified"][0]
    assert "sex" not in person["subject"]["child"]
    assert codes_of(person) == {("sex.unrecognised", "ChildIdentifiers/GenderCurrent")}


def test_bad_upn_check_letter_is_kept_flagged_and_the_child_flows() -> None:
    kinds, rejections = events_of(message(child(identifiers(upn=BAD_CHECK_UPN))))
    assert rejections == []
    assert len(kinds["person.identified"]) == 1 and len(kinds["social_care.referral"]) == 1
    for e in (e for group in kinds.values() for e in group):
        assert e["subject"]["child"]["upn"] == BAD_CHECK_UPN
        assert ("identifier.upn_invalid", "ChildIdentifiers/UPN") in codes_of(e)
        assert e["subject"]["linkage"]["basis"] == "la_child_id"


def test_upn_unknown_reason_is_flagged_without_its_code() -> None:
    kinds, _ = events_of(message(child(identifiers(upn=None, unknown="UN1"))))
    person = kinds["person.identified"][0]
    assert "upn" not in person["subject"]["child"]
    assert person["data_quality"] == [{"code": "identifier.upn_unknown", "field": "ChildIdentifiers/UPNunknown",
                                       "message": "no UPN: the local authority gave a reason code"}]


def test_unborn_child_keeps_a_future_expected_birth_date() -> None:
    ids = identifiers(upn=None, unknown="UN1", dob=None, expected="2024-07-01", sex="0")
    kinds, _ = events_of(message(child(ids)))
    assert kinds["person.identified"][0]["subject"]["child"]["expected_date_of_birth"] == "2024-07-01"


def test_future_birth_date_is_left_out_and_flagged() -> None:
    kinds, rejections = events_of(message(child(identifiers(dob=FUTURE))))
    assert rejections == []
    person = kinds["person.identified"][0]
    assert "date_of_birth" not in person["subject"]["child"]
    assert ("date.in_future", "ChildIdentifiers/PersonBirthDate") in codes_of(person)


def test_future_plan_start_refuses_that_plan_only() -> None:
    cin = details(assessments=[assessment()], plans=[plan(start=FUTURE, end=None, reviews=())])
    kinds, rejections = events_of(message(child(None, None, cin)))
    assert rejections == [Rejection("cin.xml", "Message/Children/Child",
                                    "CINdetails/ChildProtectionPlans/CPPstartDate",
                                    "date is after the day the file was received", line=2)]  # the Child is the record
    assert set(kinds) == {"person.identified", "social_care.referral", "social_care.assessment",
                          "social_care.case_closed"}


def test_future_review_date_refuses_that_review_only() -> None:
    cin = details(plans=[plan(end=None, reviews=("2023-08-30", FUTURE, "2024-01-15"))])
    kinds, rejections = events_of(message(child(None, None, cin)))
    assert rejections == [Rejection("cin.xml", "Message/Children/Child",
                                    "CINdetails/ChildProtectionPlans/Reviews/CPPreviewDate[2]",
                                    "date is after the day the file was received", line=2)]
    assert [e["occurred_at"] for e in kinds["social_care.child_protection_plan_reviewed"]] == [
        "2023-08-30", "2024-01-15"]
    assert len(kinds["social_care.child_protection_plan_started"]) == 1


def test_plan_ending_before_it_started_refuses_the_ended_event() -> None:
    cin = details(plans=[plan(start="2023-05-30", end="2023-05-01", reviews=())])
    kinds, rejections = events_of(message(child(None, None, cin)))
    assert rejections == [Rejection("cin.xml", "Message/Children/Child",
                                    "CINdetails/ChildProtectionPlans/CPPendDate", "before the plan's start date",
                                    line=2)]
    assert "social_care.child_protection_plan_ended" not in kinds
    assert len(kinds["social_care.child_protection_plan_started"]) == 1


def test_bad_referral_date_refuses_that_episode_and_the_others_flow() -> None:
    bad = details(referral="2023-02-30")
    good = details(referral="2023-09-01", closure=None, reason=None)
    kinds, rejections = events_of(message(child(None, None, bad, good)))
    assert rejections == [Rejection("cin.xml", "Message/Children/Child", "CINdetails[1]/CINreferralDate",
                                    "not a valid date (YYYY-MM-DD)", line=2)]
    assert [e["payload"]["referral_date"] for e in kinds["social_care.referral"]] == ["2023-09-01"]
    assert len(kinds["person.identified"]) == 1


def test_child_without_la_child_id_is_refused_and_the_next_child_flows() -> None:
    nameless = child(identifiers(la_id=None, upn=OTHER_VALID_UPN))
    kinds, rejections = events_of(message(child(), nameless))
    assert rejections == [Rejection("cin.xml", "Message/Children/Child[2]", "ChildIdentifiers/LAchildID",
                                    "missing: the local authority child id identifies the record", line=2)]
    assert {e["subject"]["child"]["la_child_id"] for g in kinds.values() for e in g} == {CHILD_ID}


def test_duplicated_la_child_id_is_a_structural_rejection() -> None:
    doubled = child(identifiers(extra="<LAchildID>TESTCHILD09</LAchildID>"))
    _, rejections = events_of(message(doubled))
    assert rejections == [Rejection("cin.xml", "Message/Children/Child", "ChildIdentifiers/LAchildID",
                                    "appears more than once (the CIN schema allows one)", line=2)]


def test_secondary_values_that_are_bad_are_left_out_and_flagged() -> None:
    cin = details(need="N77", nfa="maybe", assessments=[assessment(authorised="2023-13-01", factors=("16A", "99Z"))],
                  plans=[plan(previous="-1", latest="XYZ", reviews=())])
    kinds, rejections = events_of(message(child(None, None, cin)))
    assert rejections == []
    referral = kinds["social_care.referral"][0]
    assert "referral_nfa" not in referral["payload"] and referral["payload"]["primary_need_code"] == "N77"
    # an unknown need code is kept in the payload but never becomes a grading of its own: not stated
    assert placed(referral) == {"level": "low", "categories": [], "graded": ["need_not_stated"]}
    assert {("code.unrecognised", "CINdetails/PrimaryNeedCode"), ("value.invalid", "CINdetails/ReferralNFA")} <= \
        codes_of(referral)
    a = kinds["social_care.assessment"][0]
    assert "authorisation_date" not in a["payload"] and a["payload"]["factors"] == ["16A", "99Z"]
    assert {("date.invalid", "CINdetails/Assessments/AssessmentAuthorisationDate"),
            ("code.unrecognised", "CINdetails/Assessments/FactorsIdentifiedAtAssessment/AssessmentFactors[2]")} <= \
        codes_of(a)
    # an unrecognised factor is a concern; neglect (16A) is harm, and the gravest kind is listed first
    assert placed(a) == {"level": "high", "categories": ["neglect", "other"],
                         "graded": ["harm_factors", "concern_factors"]}
    ended = kinds["social_care.child_protection_plan_ended"][0]
    assert "number_of_previous_cpp" not in ended["payload"]
    assert ended["risk"]["categories"] == ["other"]  # an unknown category of abuse is still a plan


@pytest.mark.parametrize(("need", "nfa", "grading", "common"), [
    ("N1", "true", "referral_nfa", "low"),  # no further action is the referral's outcome, whatever its need
    ("N1", "false", "need_abuse_or_neglect", "medium"),
    ("N2", "false", "need_disability", "low"),
    (None, "false", "need_not_stated", "low"),
])
def test_a_referral_is_graded_by_its_primary_need_or_no_further_action(need: str | None, nfa: str, grading: str,
                                                                       common: str) -> None:
    kinds, _ = events_of(message(child(None, None, details(need=need, nfa=nfa))))
    [referral] = kinds["social_care.referral"]
    assert placed(referral) == {"level": common, "categories": [], "graded": [grading]}


def test_no_factor_assessment_is_no_risk_and_missing_factors_unknown() -> None:
    cin = details(assessments=[assessment(factors=("21",)), assessment(start="2023-06-01", factors=())])
    kinds, _ = events_of(message(child(None, None, cin)))
    no_factors, none_given = kinds["social_care.assessment"]
    assert placed(no_factors) == {"level": "none", "categories": [], "graded": ["no_factors"]}
    assert none_given["risk"] == {"level": "unknown", "categories": []}  # no grading: the source gave none


def test_messages_never_carry_record_values() -> None:
    secret = "TESTSECRET42"
    bad_children = [child(identifiers(la_id=secret * 5)),  # too long
                    child(identifiers(la_id=secret), None, details(referral=secret)),
                    child(identifiers(la_id=secret, dob=secret, upn=secret + "X"), None,
                          details(plans=[plan(start="2023-05-01", end=secret, reviews=(secret,))]))]
    out = ADAPTER.adapt(message(*bad_children), CTX)
    assert len(out.rejections) == 4
    texts = [str(r) for r in out.rejections] + [w["message"] + w["field"] for e in out.events
                                                 for w in e["data_quality"]]
    assert texts and not any(secret in t for t in texts)


def test_same_key_date_twice_still_gives_distinct_event_ids() -> None:
    cin = details(assessments=[assessment(), assessment(factors=("1B",))])
    kinds, _ = events_of(message(child(None, None, cin)))
    ids = [e["event_id"] for e in kinds["social_care.assessment"]]
    assert len(ids) == 2 and len(set(ids)) == 2


def test_event_ids_are_stable_and_a_new_review_adds_one_event() -> None:
    before = {e["event_id"]: e["event_type"] for e in ADAPTER.adapt(message(child()), CTX).events}
    resent = {e["event_id"] for e in ADAPTER.adapt(message(child()), dataclasses.replace(
        CTX, received_at="2024-06-01T00:00:00Z")).events}
    assert set(before) == resent
    more = full_details()
    more = more.replace("<CPPreviewDate>2024-01-15</CPPreviewDate>",
                        "<CPPreviewDate>2024-01-15</CPPreviewDate><CPPreviewDate>2024-02-10</CPPreviewDate>")
    after = {e["event_id"]: e["event_type"] for e in ADAPTER.adapt(message(child(None, None, more)), CTX).events}
    new = {i: t for i, t in after.items() if i not in before}
    gone = {i: t for i, t in before.items() if i not in after}
    # the added review is a new event; the ended plan now lists it, so it is a new version; nothing else changes
    assert sorted(new.values()) == ["social_care.child_protection_plan_ended",
                                    "social_care.child_protection_plan_reviewed"]
    assert list(gone.values()) == ["social_care.child_protection_plan_ended"]


def test_transport_system_wins_over_the_lea_and_one_of_them_is_needed() -> None:
    out = ADAPTER.adapt(message(child()), dataclasses.replace(CTX, system="la-test"))
    assert {e["source"]["system"] for e in out.events} == {"la-test"}
    with pytest.raises(AdapterInputError) as info:
        ADAPTER.adapt(message(child(), lea=None), CTX)
    assert info.value.rejection.field == "Header/Source/LEA"
    assert ADAPTER.adapt(message(child(), lea=None), dataclasses.replace(CTX, system="la-test")).events


def test_without_a_clock_no_date_counts_as_future() -> None:
    cin = details(plans=[plan(start=FUTURE, end=None, reviews=())])
    out = ADAPTER.adapt(message(child(None, None, cin)), AdaptContext(source="cin.xml"))
    assert out.rejections == []
    assert "social_care.child_protection_plan_started" in {e["event_type"] for e in out.events}


def test_child_without_cin_details_gives_identity_and_a_rejection() -> None:
    bare = "<Child>" + identifiers() + characteristics() + "</Child>"
    kinds, rejections = events_of(message(bare))
    assert set(kinds) == {"person.identified"}
    assert rejections == [Rejection("cin.xml", "Message/Children/Child", "CINdetails",
                                    "missing: a child in the census has at least one episode of need", line=2)]


def test_default_namespace_is_tolerated() -> None:
    data = message(child()).replace(b"<Message>", b'<Message xmlns="urn:example:cin">')
    kinds, rejections = events_of(data)
    assert rejections == [] and len(kinds["person.identified"]) == 1


HOSTILE = [
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><Message>&lol2;</Message>',
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Message>&xxe;</Message>',
    b'<!doctype Message SYSTEM "http://example.invalid/cin.dtd"><Message/>',
]


@pytest.mark.parametrize("data", HOSTILE)
def test_hostile_xml_is_refused(data: bytes) -> None:
    with pytest.raises(AdapterInputError) as info:
        ADAPTER.adapt(data, CTX)
    assert info.value.rejection.reason == "DOCTYPE/ENTITY declarations are refused (XXE protection)"


@pytest.mark.parametrize(("data", "field", "reason"), [
    (b"CHILD,SEX,DOB\r\n", "", "not well-formed XML"),
    (b"<Message><Children>", "", "not well-formed XML"),
    (b"<Pupils><Children/></Pupils>", "", "root element is not a CIN census Message"),
    (b"<Message><Header/></Message>", "Children", "missing"),
    (b"<Message><Children/><Children/></Message>", "Children", "appears more than once"),
])
def test_unusable_inputs_are_refused(data: bytes, field: str, reason: str) -> None:
    with pytest.raises(AdapterInputError) as info:
        ADAPTER.adapt(data, CTX)
    assert (info.value.rejection.field, info.value.rejection.reason) == (field, reason)


def test_sniff() -> None:
    assert ADAPTER.sniff(message(child()))
    assert ADAPTER.sniff(b'<?xml version="1.0"?>\n<Message>')
    assert not ADAPTER.sniff(b"CHILD,SEX,DOB\r\n")
    assert not ADAPTER.sniff(b"<Bundle xmlns='http://hl7.org/fhir'/>")


def test_a_flood_of_warnings_is_capped_at_the_schema_limit() -> None:
    cin = details(assessments=[assessment(factors=[f"Z{n}" for n in range(150)])])
    kinds, rejections = events_of(message(child(None, None, cin)))
    assert rejections == []
    a = kinds["social_care.assessment"][0]
    assert len(a["data_quality"]) == 100 and a["data_quality"][-1]["code"] == "data_quality.truncated"
    assert len(a["payload"]["factors"]) == 60
