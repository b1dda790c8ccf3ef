"""The audit record builder and its schema: valid records per kind, and no door for personal data."""

from __future__ import annotations

import jsonschema
import pytest

from broker.audit import KINDS, AuditRecordError, audit_record, validate_record
from broker.schema.loader import load_schema
from tests.audit.conftest import CHILD_A, SHA, seed_records

T = "2026-03-02T10:00:00Z"


def test_schema_is_valid_draft_2020_12_and_names_every_kind() -> None:
    schema = load_schema("audit-record.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert tuple(schema["properties"]["kind"]["enum"]) == KINDS


def test_seed_covers_valid_records_of_many_kinds() -> None:
    records = seed_records()
    assert {r["kind"] for r in records} >= {"record_received", "event_published", "decision", "delivered",
                                            "delivery_read", "deadlettered", "protocol_change", "key_unwrap"}
    assert all(validate_record(r) == [] for r in records)


@pytest.mark.parametrize(("kind", "fields"), [
    ("record_adapted", {"agency": "health", "adapter": "health-fhir", "content_sha256": SHA, "count": 3}),
    ("record_rejected", {"agency": "education", "content_sha256": SHA, "reason": "not a CTF file"}),
    ("key_shred", {"key_id": "dek-lt1-0001", "classification": "health"}),
    ("admin_action", {"action": "deadletter.reprocess", "target": "0b6c2d7e-0000-4000-8000-000000000001"}),
])
def test_each_kind_builds(kind: str, fields: dict) -> None:
    record = audit_record(kind, time=T, actor="admin", **fields)
    assert record["kind"] == kind and validate_record(record) == []


def test_time_is_normalised_to_utc_milliseconds_and_id_assigned() -> None:
    r = audit_record("key_unwrap", time="2026-06-01T10:00:00.123456+01:00", actor="share", key_id="kek-1")
    assert r["time"] == "2026-06-01T09:00:00.123Z"
    assert len(r["record_id"]) == 36
    same = audit_record("key_unwrap", time=T, actor="share", key_id="kek-1", record_id=r["record_id"])
    assert same["record_id"] == r["record_id"]  # a producer resending keeps the id, so the store drops the copy


def test_none_fields_are_left_out_and_tuples_become_lists() -> None:
    r = audit_record("decision", time=T, actor="share", subject=CHILD_A, event_id=seed_records()[2]["event_id"],
                     subscriber="csc-front-door", decision_id="d1", outcome="deliver", rule_id="r1",
                     lawful_basis=("uk_gdpr_art6_1_e",), reason=None)
    assert "reason" not in r and r["lawful_basis"] == ["uk_gdpr_art6_1_e"]


@pytest.mark.parametrize("field", ["name", "given_names", "nhs_number", "date_of_birth", "address", "notes"])
def test_no_field_can_carry_personal_data(field: str) -> None:
    with pytest.raises(AuditRecordError) as err:
        audit_record("key_unwrap", time=T, actor="share", key_id="kek-1", **{field: "Testchild Example"})
    assert "Testchild" not in str(err.value) and field in str(err.value)


@pytest.mark.parametrize(("field", "value"), [
    ("reason", "NHS number 9990000018 failed Modulus 11"),  # an identifier smuggled into free text
    ("reason", "contact testparent@example.invalid"),
    ("reason", "line one\nline two"),
    ("subject", "Testchild Example"),  # the subject is a linkage token, nothing else
    ("actor", "Dr Test Example"),
])
def test_value_free_fields_refuse_values_without_repeating_them(field: str, value: str) -> None:
    base = {"time": T, "actor": "intake:health", "agency": "health", "content_sha256": SHA, "reason": "bad input",
            "subject": CHILD_A}
    base[field] = value
    with pytest.raises(AuditRecordError) as err:
        audit_record("record_rejected", **base)
    message = str(err.value)
    assert value not in message and "9990000018" not in message and field in message


def test_required_fields_per_kind() -> None:
    with pytest.raises(AuditRecordError, match="'content_sha256' is missing"):
        audit_record("record_received", time=T, actor="intake:health", agency="health", size=1)
    with pytest.raises(AuditRecordError, match="'rule_id' is missing"):
        audit_record("decision", time=T, actor="share", event_id=seed_records()[2]["event_id"],
                     subscriber="csc-front-door", decision_id="d1", outcome="deliver", lawful_basis=["consent"])
    # a withholding needs no rule (nothing matched: default deny)
    audit_record("decision", time=T, actor="share", event_id=seed_records()[2]["event_id"],
                 subscriber="csc-front-door", decision_id="d1", outcome="withhold")


@pytest.mark.parametrize("time", ["2026-03-02T10:00:00", "yesterday", ""])
def test_time_needs_a_zone(time: str) -> None:
    with pytest.raises(AuditRecordError, match="time"):
        audit_record("key_unwrap", time=time, actor="share", key_id="kek-1")


def test_unknown_kind_refused() -> None:
    with pytest.raises(AuditRecordError, match="kind"):
        audit_record("record_deleted", time=T, actor="share")


def test_records_as_the_pipeline_builds_them() -> None:
    """The shapes the share stage, intake and admin API emit (broker/service, broker/api) fit the schema."""
    from broker.policy.decision import ConsentOverride, Decision, decision_id

    event_id = seed_records()[2]["event_id"]
    deliver = Decision(decision_id(event_id, "csc-front-door", "sample-partnership", "3"), event_id,
                       "health.urgent_care_attendance", "csc-front-door", "deliver", "health-to-front-door",
                       ("uk_gdpr_art6_1_e", "children_act_1989_s47"), "safeguarding",
                       ("payload.reason",), (("subject.child.birth_date", "age_band"),), ("payload.notes",),
                       "sample-partnership", "3", "delivered under rule health-to-front-door for purpose safeguarding"
                       "; consent withdrawn overridden by children_act_1989_s47",
                       ConsentOverride("withdrawn", None, "children_act_1989_s47"))
    withhold = Decision(decision_id(event_id, "school-dsl", "sample-partnership", "3", "withhold"), event_id,
                        "health.urgent_care_attendance", "school-dsl", "withhold", None, (), None, (), (), (),
                        "sample-partnership", "3",
                        "withheld: no rule applied (health-to-school: risk below medium; r2: case not open)")
    for decision in (deliver, withhold):
        fields = {k: v for k, v in decision.to_record().items() if v is not None}  # as Runtime.audit_record does
        record = audit_record("decision", time=T, actor="share", subject=CHILD_A, **fields)
        assert record["outcome"] == decision.outcome
    audit_record("key_shred", time=T, actor="admin", subject=CHILD_A, count=4, reason="crypto-shredding on request")
    audit_record("admin_action", time=T, actor="admin", subject=CHILD_A, action="consent.record",
                 reason="consent withdrawn, objection recorded")
    audit_record("deadlettered", time=T, actor="share", agency="unknown", deadletter_id=seed_records()[8]
                 ["deadletter_id"], reason="undecodable event (JSONDecodeError)", position="sg.events/3/1048576",
                 field="", content_sha256=SHA)
