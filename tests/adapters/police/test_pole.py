"""POLE JSON: each event type, field-by-field mapping, risk, identifiers, stable ids, partial success."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from adapters.kit.interface import AdaptContext, AdapterOutput
from adapters.kit.registry import select
from adapters.police.pole import ADAPTER
from tests.adapters.police.builders import (
    FAKE_CRO,
    FAKE_PNC,
    FORCE,
    INVALID_NHS,
    INVALID_UPN,
    VALID_NHS,
    VALID_UPN,
    as_json,
    as_jsonl,
    child,
    mother,
    record,
    submission,
    suspect,
)
from tests.conftest import assert_canonical

CTX = AdaptContext(source="pole.json", received_at="2024-03-02T08:00:00Z")
SAMPLE_PROTOCOL = Path(__file__).resolve().parents[3] / "deploy" / "protocols" / "sample-partnership.yaml"


def adapt(data: bytes) -> AdapterOutput:
    out = ADAPTER.adapt(data, CTX)
    assert_canonical(out.events)
    return out


def events_of(*records: dict[str, Any]) -> list[dict]:
    out = adapt(as_json(submission(*records)))
    assert out.rejections == []
    return out.events


def only(rec: dict[str, Any]) -> dict:
    [event] = events_of(rec)
    return event


def codes(event: dict) -> list[str]:
    return [w["code"] for w in event["data_quality"]]


@pytest.mark.parametrize(("event_type", "canonical"), [
    ("incident_child_present", "police.incident_child_present"),
    ("domestic_abuse", "police.domestic_abuse_notification"),
    ("public_protection_notice", "police.public_protection_notice"),
])
def test_each_event_type(event_type: str, canonical: str) -> None:
    event = only(record(event_type))
    assert event["event_type"] == canonical
    assert event["source"] == {"agency": "police", "system": f"{FORCE}/testrms", "record_id": "INC-0001",
                               "record_version": "1", "format": "pole-json"}
    assert event["occurred_at"] == "2024-03-01T22:15:00Z"
    assert event["subject"]["child"]["nhs_number"] == VALID_NHS


def test_incident_payload_field_by_field() -> None:
    payload = only(record())["payload"]
    assert payload == {
        "incident_reference": "INC-0001", "force_code": FORCE,
        "occurred_start": "2024-03-01T22:15:00Z", "occurred_end": "2024-03-01T23:40:00Z",
        "location": {"lines": ["1 Fictional Road"], "city": "Testtown", "district": "Testshire",
                     "postcode": "LS1 4HR", "use": "incident"},
        "incident_types": [
            {"system": "urn:mash-broker:code:nsir-nicl", "code": "Domestic Incident"},
            {"system": "urn:mash-broker:code:nsir-qualifier", "code": "Domestic Abuse"},
            {"system": f"urn:mash-broker:code:police:{FORCE}:incident", "code": "DOM01", "display": "Domestic"},
        ],
        "offences": [
            {"system": "urn:mash-broker:code:home-office-offence", "code": "008/01", "display": "Assault with injury"},
            {"system": "urn:mash-broker:code:cjs-offence", "code": "OF61131", "display": "Assault with injury"},
        ],
        "child_role": "victim", "children_present": 2, "summary": "Fictitious test summary.",
    }


def test_child_field_by_field() -> None:
    assert only(record())["subject"]["child"] == {
        "given_names": ["Testchild", "Middle"], "family_name": "Example", "date_of_birth": "2015-01-02",
        "sex": "female", "nhs_number": VALID_NHS, "upn": VALID_UPN,
        "local_ids": [{"system": f"police:{FORCE}:nominal", "value": "NOM-0001"}],
        "addresses": [{"lines": ["1 Fictional Road"], "city": "Testtown", "postcode": "LS1 4HR", "use": "home"}],
    }


def test_child_pnc_and_cro_are_carried_and_classified_criminal() -> None:
    from broker.schema.classification import classify

    event = only(record(persons=[child(pnc_id=" 99/0000001z ", cro_number=FAKE_CRO), mother()]))
    assert event["subject"]["child"]["pnc_id"] == FAKE_PNC  # spaces stripped, upper-cased
    assert event["subject"]["child"]["cro_number"] == FAKE_CRO
    assert classify(event, "subject.child.pnc_id") == "criminal"
    assert classify(event, "subject.child.cro_number") == "criminal"


def test_related_people_roles_and_relationships() -> None:
    related = only(record())["subject"]["related_people"]
    assert related == [
        {"role": "victim", "relationship": "mother", "parental_responsibility": True,
         "person": {"given_names": ["Testparent"], "family_name": "Example", "date_of_birth": "1990-06-07",
                    "sex": "female"}},
        {"role": "suspect", "relationship": "partner_of_parent",
         "person": {"given_names": ["Testsuspect"], "family_name": "Sample", "date_of_birth": "1988-03-04",
                    "sex": "male", "pnc_id": FAKE_PNC, "cro_number": FAKE_CRO}},
    ]


@pytest.mark.parametrize(("roles", "role", "relationship"), [
    (["suspect", "parent"], "suspect", "parent"),  # the event role outranks the family tie, which is kept
    (["offender"], "offender", None),
    (["witness", "sibling"], "witness", "sibling"),
    (["parent_or_guardian"], "parent", "parent_or_guardian"),
    (["guardian"], "guardian", None),
    (["carer"], "carer", None),
    (["household_member"], "household_member", None),
    (["child_present"], "other", None),
    (["reporting_person"], "other", None),
])
def test_related_role_precedence(roles: list[str], role: str, relationship: str | None) -> None:
    person = {"person_id": "P9", "roles": roles, "surname": "Sample"}
    [related] = only(record(persons=[child(), person]))["subject"]["related_people"]
    assert (related["role"], related.get("relationship")) == (role, relationship)


@pytest.mark.parametrize(("roles", "child_role"), [
    (["subject_child", "victim", "witness"], "victim"),
    (["subject_child", "offender"], "suspect"),
    (["subject_child", "reported_missing", "witness"], "reported_missing"),
    (["subject_child", "witness"], "witness"),
    (["subject_child", "child_present"], "present"),
    (["subject_child"], None),
])
def test_child_role(roles: list[str], child_role: str | None) -> None:
    payload = only(record(persons=[child(roles=roles)]))["payload"]
    assert payload.get("child_role") == child_role


def test_subject_named_by_subject_person_id() -> None:
    persons = [mother(), child(person_id="C7", roles=["child_present"])]
    event = only(record(persons=persons, subject_person_id="C7"))
    assert event["subject"]["child"]["family_name"] == "Example"
    assert event["subject"]["child"]["date_of_birth"] == "2015-01-02"
    assert [r["role"] for r in event["subject"]["related_people"]] == ["victim"]
    assert event["payload"]["child_role"] == "present"


def test_domestic_abuse_notification() -> None:
    event = only(record("domestic_abuse"))
    assert event["payload"]["dash_risk"] == "high"
    # the officer's grading on its own scale; the protocol's risk_scales place it (tests/policy/test_thresholds.py)
    assert event["risk"] == {"level": "unknown", "categories": ["domestic_abuse"],
                             "agency_levels": [{"scale": "police_dash", "level": "high"}]}
    assert "dash.missing" not in codes(event)


def test_domestic_abuse_without_dash_warns_and_flows() -> None:
    rec = record("domestic_abuse")
    del rec["dash_risk"]
    event = only(rec)
    assert event["risk"]["level"] == "unknown"
    assert "agency_levels" not in event["risk"]
    assert "dash.missing" in codes(event)


def test_public_protection_notice_payload() -> None:
    rec = record("public_protection_notice", reference="PPN-0042", dash_risk="standard",
                 vulnerability={"concerns": ["child_sexual_exploitation", "county_lines", "radicalisation",
                                             "missing_person"], "grading": "high"})
    event = only(rec)
    assert event["payload"] == {
        "notice_reference": "PPN-0042", "force_code": FORCE,
        "concerns": ["child_sexual_exploitation", "other", "missing_person"],
        "assessment": "high", "child_role": "victim", "dash_risk": "standard",
        "location": {"lines": ["1 Fictional Road"], "city": "Testtown", "district": "Testshire",
                     "postcode": "LS1 4HR", "use": "incident"},
        "summary": "Fictitious test summary.",
    }
    assert event["risk"] == {"level": "unknown",
                             "categories": ["child_sexual_exploitation", "county_lines", "missing", "radicalisation"],
                             "agency_levels": [{"scale": "police_dash", "level": "standard"},
                                               {"scale": "police_vulnerability", "level": "high"}]}


def test_vulnerability_assessment_on_an_incident_also_yields_a_notice() -> None:
    rec = record(vulnerability={"concerns": ["child_criminal_exploitation"], "grading": "medium"})
    incident, notice = events_of(rec)
    assert incident["event_type"] == "police.incident_child_present"
    assert notice["event_type"] == "police.public_protection_notice"
    assert incident["event_id"] != notice["event_id"]
    assert notice["source"] == incident["source"]
    assert notice["payload"]["concerns"] == ["child_criminal_exploitation"]
    assert notice["payload"]["assessment"] == "medium"
    for event in (incident, notice):
        assert event["risk"] == {"level": "unknown", "categories": ["child_criminal_exploitation"],
                                 "agency_levels": [{"scale": "police_vulnerability", "level": "medium"}]}


@pytest.mark.parametrize(("dash", "grading", "level"), [
    (None, None, "unknown"),
    ("standard", None, "low"),
    ("medium", None, "medium"),
    ("high", None, "high"),
    (None, "standard", "low"),
    ("standard", "high", "high"),
    ("medium", "standard", "medium"),
])
def test_risk_level_is_the_higher_assessment(dash: str | None, grading: str | None, level: str) -> None:
    """The adapter gives the gradings as recorded; under the sample protocol's risk_scales the common level is the
    higher of the two (the mapping is the partnership's data, not the adapter's)."""
    from broker.policy import load_protocol
    from broker.policy.thresholds import assess

    extra: dict[str, Any] = {}
    if dash:
        extra["dash_risk"] = dash
    if grading:
        extra["vulnerability"] = {"concerns": ["child_concern"], "grading": grading}
    event = events_of(record(**extra))[0]
    assert event["risk"]["level"] == "unknown"  # the adapter places nothing on the common scale
    scales = load_protocol(SAMPLE_PROTOCOL).risk_scales
    assert assess(scales, event).level == level
    assert event["risk"]["categories"] == []  # child_concern adds no category


def test_objects_are_carried() -> None:
    objects = [{"kind": "vehicle", "vehicle_registration": "ab12 cde"},
               {"kind": "weapon", "weapon_type": "knife", "description": "Fictitious kitchen knife."}]
    payload = only(record(objects=objects))["payload"]
    assert payload["objects"] == [{"kind": "vehicle", "vehicle_registration": "AB12CDE"},
                                  {"kind": "weapon", "weapon_type": "knife",
                                   "description": "Fictitious kitchen knife."}]


def test_invalid_nhs_number_is_a_warning_and_the_record_flows() -> None:
    event = only(record(persons=[child(nhs_number=INVALID_NHS), mother()]))
    assert event["subject"]["child"]["nhs_number"] == INVALID_NHS
    [w] = [w for w in event["data_quality"] if w["code"] == "identifier.nhs_number_invalid"]
    assert w["field"] == "persons[0].nhs_number"
    assert INVALID_NHS not in w["message"]


def test_nhs_number_with_spaces_is_compacted() -> None:
    event = only(record(persons=[child(nhs_number="999 000 0018")]))
    assert event["subject"]["child"]["nhs_number"] == VALID_NHS
    assert codes(event) == []


@pytest.mark.parametrize(("person", "code", "field"), [
    (child(upn=INVALID_UPN), "identifier.upn_invalid", "persons[0].upn"),
    (child(pnc_id="not-a-pnc"), "identifier.pnc_id_invalid", "persons[0].pnc_id"),
    (child(cro_number="12345"), "identifier.cro_number_invalid", "persons[0].cro_number"),
    (child(address={"postcode": "NOWHERE"}), "identifier.postcode_invalid", "persons[0].address.postcode"),
])
def test_identifier_problems_are_warnings(person: dict, code: str, field: str) -> None:
    event = only(record(persons=[person]))
    assert (code, field) in [(w["code"], w["field"]) for w in event["data_quality"]]


def test_related_persons_identifiers_are_checked_too() -> None:
    event = only(record(persons=[child(), mother(nhs_number=INVALID_NHS)]))
    assert ("identifier.nhs_number_invalid", "persons[1].nhs_number") in [
        (w["code"], w["field"]) for w in event["data_quality"]]


def test_postcodes_are_normalised() -> None:
    event = only(record(location={"postcode": " ls177df "}))
    assert event["payload"]["location"]["postcode"] == "LS17 7DF"
    assert event["subject"]["child"]["addresses"][0]["postcode"] == "LS1 4HR"


def test_age_warnings() -> None:
    adult = only(record(persons=[child(date_of_birth="2000-01-01")]))
    assert "subject.not_a_child" in codes(adult)
    future = only(record(persons=[child(date_of_birth="2030-01-01")]))
    assert "person.date_of_birth_in_future" in codes(future)
    seventeen = only(record(persons=[child(date_of_birth="2006-03-02")]))
    assert codes(seventeen) == []


def test_end_before_start_is_a_warning() -> None:
    event = only(record(occurred={"start": "2024-03-01", "end": "2024-02-28T10:00:00+00:00"}))
    assert "occurred.end_before_start" in codes(event)
    assert event["occurred_at"] == "2024-03-01"


def test_event_ids_are_stable_and_follow_the_version() -> None:
    first = only(record())
    again = only(record())
    assert first["event_id"] == again["event_id"]
    assert only(record(version=2))["event_id"] != first["event_id"]
    assert only(record(version=2))["source"]["record_version"] == "2"


def test_json_lines_and_submission_give_the_same_ids() -> None:
    out = adapt(as_jsonl(record(), record("domestic_abuse", "DA-1")))
    assert out.rejections == []
    by_submission = adapt(as_json(submission(record(), record("domestic_abuse", "DA-1"), system=None))).events
    assert [e["event_id"] for e in out.events] == [e["event_id"] for e in by_submission]
    assert out.events[0]["source"]["system"] == FORCE


def test_one_bad_record_among_good_ones() -> None:
    bad = record(reference="INC-0002", persons=[child(), mother(), suspect(date_of_birth="1988-02-30")])
    out = adapt(as_json(submission(record(), bad, record("public_protection_notice", "PPN-3"))))
    assert [e["source"]["record_id"] for e in out.events] == ["INC-0001", "PPN-3"]
    [rejection] = out.rejections
    assert rejection.to_dict() == {"source": "pole.json", "record": "record 2", "field": "persons[2].date_of_birth",
                                   "reason": "not a valid date", "line": 1}  # compact JSON: one line
    assert "1988" not in str(rejection)


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"event_type": "burglary"}, "event_type", "value is not one of the allowed codes"),
    ({"occurred": {"start": "yesterday"}}, "occurred.start", "value does not match the required pattern"),
    ({"occurred": {"start": "2024-02-30"}}, "occurred.start", "not a real calendar date or time"),
    ({"persons": []}, "persons", "violates minItems 1"),
    ({"version": 1.5}, "version", "wrong type, expected integer/string"),
    ({"offences": [{"home_office_code": "assault"}]}, "offences[0].home_office_code",
     "value does not match the required pattern"),
    ({"summary": 7}, "summary", "wrong type, expected string"),
    ({"nickname": "x"}, "", "1 unknown field(s) here (not in the POLE input schema)"),
])
def test_record_errors_are_precise(change: dict, field: str, reason: str) -> None:
    out = adapt(as_json(submission(record(**change))))
    assert out.events == []
    [rejection] = out.rejections
    assert (rejection.record, rejection.field, rejection.reason) == ("record 1", field, reason)


@pytest.mark.parametrize(("persons", "extra", "field", "reason"), [
    ([mother()], {}, "persons", "no person has role subject_child and no subject_person_id is given"),
    ([child(), child(person_id="P4")], {}, "persons[1].roles",
     "more than one person has role subject_child: send one record per child"),
    ([child(), mother(person_id="P1")], {}, "persons[1].person_id", "duplicate person_id within the record"),
    ([child()], {"subject_person_id": "P404"}, "subject_person_id", "names no person_id in persons"),
    ([child(), mother()], {"subject_person_id": "P2"}, "subject_person_id",
     "names a different person from the one with role subject_child"),
])
def test_subject_must_be_explicit_and_unique(persons: list, extra: dict, field: str, reason: str) -> None:
    out = adapt(as_json(submission(record(persons=persons, **extra))))
    [rejection] = out.rejections
    assert (rejection.field, rejection.reason) == (field, reason)


def test_notice_needs_an_assessment_and_refuses_incident_fields() -> None:
    rec = record("public_protection_notice")
    del rec["vulnerability"]
    with_offences = record("public_protection_notice", offences=[{"home_office_code": "008/01"}])
    out = adapt(as_json(submission(rec, with_offences)))
    assert [(r.record, r.field, r.reason) for r in out.rejections] == [
        ("record 1", "", "required property 'vulnerability' is missing"),
        ("record 2", "offences", "not allowed for this event_type"),
    ]


def test_record_force_code_must_match_the_submission() -> None:
    out = adapt(as_json(submission(record(force_code="98"), record(reference="INC-2", force_code=FORCE))))
    assert [(r.record, r.field, r.reason) for r in out.rejections] == [
        ("record 1", "force_code", "differs from the submission's force_code")]
    assert len(out.events) == 1


def test_records_that_are_not_objects_are_rejected_one_by_one() -> None:
    doc = submission(record())
    doc["records"].extend([7, "text", None])
    out = adapt(as_json(doc))
    assert len(out.events) == 1
    assert [(r.record, r.reason) for r in out.rejections] == [
        ("record 2", "not a JSON object"), ("record 3", "not a JSON object"), ("record 4", "not a JSON object")]


def test_json_lines_positions_count_every_line() -> None:
    good = as_jsonl(record())
    no_force = as_jsonl(record(reference="INC-2"), force_code=None)
    data = good + b"\n" + b'{"reference": broken\n' + no_force + b"[1, 2]\n"
    out = adapt(data)
    assert len(out.events) == 1
    assert [(r.record, r.field, r.reason) for r in out.rejections] == [
        ("line 3", "", "not valid JSON (at column 15)"),
        ("line 4", "force_code", "missing: in JSON Lines every record carries its force_code"),
        ("line 5", "", "not a JSON object"),
    ]


def test_a_single_record_object_is_json_lines_of_one() -> None:
    out = adapt(as_json({**record(), "force_code": FORCE}))
    assert out.rejections == []
    assert out.events[0]["source"]["system"] == FORCE


def test_messages_never_carry_values() -> None:
    secret_name, secret_number = "Secretname", "9990000019"
    bad_records = [
        record(persons=[child(forenames=[secret_name], date_of_birth="2015-13-01")]),
        record(persons=[child(nhs_number=secret_number, gender=secret_name)]),
        record(summary={"text": secret_name}),
        record(location={"postcode": secret_name * 3}),
        record(reference=secret_name + " !"),
    ]
    out = adapt(as_json(submission(*bad_records)))
    assert len(out.rejections) == len(bad_records)
    for rejection in out.rejections:
        assert secret_name not in str(rejection)
        assert secret_number not in str(rejection)


def test_sniff_and_registry_selection() -> None:
    data = as_json(submission(record()))
    assert ADAPTER.sniff(data)
    assert ADAPTER.sniff(as_jsonl(record()))
    assert not ADAPTER.sniff(b'{"resourceType": "Patient"}')
    assert not ADAPTER.sniff(b"MSH|^~\\&|")
    assert select("police", data, source="x", content_type="application/vnd.mash.pole+json") is ADAPTER
    assert select("police", data, source="x", filename="incidents.jsonl") is ADAPTER


def test_input_is_not_changed() -> None:
    rec = record(vulnerability={"concerns": ["fgm"]})
    before = copy.deepcopy(rec)
    events_of(rec)
    assert rec == before


def test_a_related_person_without_details_is_left_out_with_a_warning() -> None:
    event = only(record(persons=[child(), {"person_id": "P5", "roles": ["suspect"]}, mother()]))
    assert [r["role"] for r in event["subject"]["related_people"]] == ["victim"]
    assert ("person.no_details", "persons[1]") in [(w["code"], w["field"]) for w in event["data_quality"]]


def test_system_comes_from_the_data_else_the_transport() -> None:
    data = as_jsonl(record())
    plain = ADAPTER.adapt(data, CTX).events[0]["source"]["system"]
    named = ADAPTER.adapt(data, AdaptContext(source="x", system="viaheader")).events[0]["source"]["system"]
    in_data = ADAPTER.adapt(as_json(submission(record())), AdaptContext(source="x", system="viaheader"))
    assert (plain, named) == (FORCE, f"{FORCE}/viaheader")
    assert in_data.events[0]["source"]["system"] == f"{FORCE}/testrms"
