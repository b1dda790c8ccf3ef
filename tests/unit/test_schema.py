"""The canonical schema: every leaf classified, valid 2020-12, value-free validation messages."""

from __future__ import annotations

import copy

import jsonschema_rs
import pytest

from broker.schema.classification import (
    CLASSIFICATIONS,
    CRIMINAL,
    SPECIAL,
    bad_markers,
    field_classes,
    markers_of,
    payload_schemas,
    unclassified_leaves,
)
from broker.schema.loader import load_schema
from broker.schema.validate import validate_event
from tests.conftest import assert_canonical

REQUIRED_TYPES = {
    "person.identified", "person.updated", "health.urgent_care_attendance", "health.safeguarding_flag",
    "health.child_protection_plan_notice", "education.attendance_concern", "education.child_missing_education",
    "education.exclusion", "police.incident_child_present", "police.domestic_abuse_notification",
    "police.public_protection_notice", "social_care.referral", "social_care.assessment",
    "social_care.section47_enquiry", "social_care.child_protection_plan_started",
    "social_care.child_protection_plan_reviewed", "social_care.child_protection_plan_ended",
    "social_care.looked_after_episode_started", "social_care.looked_after_episode_ended",
    "social_care.missing_from_care",
}


def test_schema_is_valid_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema_rs.Draft202012Validator(schema)  # compiles, or raises


def test_every_leaf_carries_a_known_classification() -> None:
    assert unclassified_leaves(load_schema()) == []


def test_the_coverage_check_catches_a_missing_label() -> None:
    broken = copy.deepcopy(load_schema())
    del broken["$defs"]["person"]["properties"]["family_name"]["classification"]
    missing = unclassified_leaves(broken)
    assert any(line.endswith("subject.child.family_name (None)") for line in missing)


def test_the_coverage_check_catches_an_unknown_label() -> None:
    broken = copy.deepcopy(load_schema())
    broken["$defs"]["payload_sc_missing"]["properties"]["kind"]["classification"] = "secret-ish"
    assert any("payload.kind (secret-ish)" in line for line in unclassified_leaves(broken))


def test_every_required_event_type_has_a_typed_payload() -> None:
    types = set(load_schema()["$defs"]["event_type"]["enum"])
    assert types >= REQUIRED_TYPES
    assert set(payload_schemas(load_schema())) == types


def test_labels_follow_inheritance_and_overrides() -> None:
    fc = field_classes("police.incident_child_present")
    assert fc["subject.child.nhs_number"] == "identity"
    assert fc["subject.child.pnc_id"] == "criminal"
    assert fc["payload.location.postcode"] == "location"  # the address def's own label beats the payload's
    assert fc["payload.summary"] == "narrative"  # a site label beats the inherited one
    assert fc["payload.incident_reference"] == "operational"
    assert fc["subject.linkage.token"] == "operational"
    assert set(fc.values()) <= set(CLASSIFICATIONS)


def test_fields_that_reveal_sensitive_facts_are_sensitive_operational() -> None:
    """1.2.0: the risk level, consent and objection, the source system and the source's asserted lawful basis are
    personal data that reveal something about the child: encrypted and released only by rule, not operational."""
    fc = field_classes("police.domestic_abuse_notification")
    for path in ("risk.level", "consent.status", "consent.objection", "source.system", "lawful_basis.article_6",
                 "subject.child.local_ids[].system"):
        assert fc[path] == "sensitive_operational", path
    assert fc["payload.dash_risk"] == "intelligence" and fc["payload.offences[].code"] == "criminal"
    assert field_classes("health.admission")["payload.visit_number"] == "identity"  # the hospital's id of a visit


def test_markers_are_well_formed_and_inherited() -> None:
    schema = load_schema()
    assert bad_markers(schema) == []
    marks = markers_of(schema, "social_care.assessment")
    assert marks["payload.factors[]"] == {SPECIAL, CRIMINAL}  # from the array onto its items
    assert marks["subject.related_people[].role"] == {CRIMINAL}
    assert "subject.child.family_name" not in marks


def test_the_marker_check_catches_a_malformed_marker() -> None:
    broken = copy.deepcopy(load_schema())
    broken["$defs"]["payload_education_pupil"]["properties"]["sen_needs"]["x-special-category"] = ["gossip"]
    broken["$defs"]["related_person"]["properties"]["role"]["x-criminal"] = "yes"
    assert len(bad_markers(broken)) == 2


@pytest.fixture
def patient_event(external_cases) -> dict:
    from adapters.health.fhir import ADAPTER
    from adapters.kit import AdaptContext

    data = (external_cases / "health" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes()
    return assert_canonical(ADAPTER.adapt(data, AdaptContext(source="patient.xml")).events)[0]


def test_validation_errors_name_the_field_and_never_the_value(patient_event: dict) -> None:
    bad = copy.deepcopy(patient_event)
    bad["subject"]["child"]["sex"] = "Richard SMITH"  # a value that must not be echoed
    bad["payload"]["surprise"] = "9912003888"
    problems = validate_event(bad)
    text = " ".join(str(p) for p in problems)
    assert "subject.child.sex" in text and "'surprise'" in text
    assert "Richard" not in text and "SMITH" not in text and "9912003888" not in text


def test_unknown_fields_are_rejected_fail_closed(patient_event: dict) -> None:
    bad = copy.deepcopy(patient_event)
    bad["subject"]["child"]["shoe_size"] = 5
    assert [p.field for p in validate_event(bad)] == ["subject.child"]
