"""Fixtures for the audit tests: synthetic audit records (fictitious tokens and ids), stores on SQLite and on the
throwaway PostgreSQL cluster of tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import audit_record
from broker.audit.store import AuditStore, open_audit_store

# Fictitious linkage tokens (the real ones are keyed HMACs; these only have the shape).
CHILD_A = "lt1_TestchildExampleAaaaaaaaaaaaa"
CHILD_B = "lt1_TestchildExampleBbbbbbbbbbbbb"
SHA = "5f" * 32


def _eid(n: int) -> str:
    return str(uuid.UUID(int=0x5AFE_0000_0000_4000_8000_0000_0000_0000 + n))


def seed_records() -> list[dict]:
    """A small day in the broker: two children, deliveries, a withholding, a read, a dead letter, protocol history."""
    t = "2026-03-0{}T{:02d}:00:00Z"
    recs = [
        audit_record("protocol_change", time=t.format(1, 8), actor="admin", protocol_id="sample-partnership",
                     protocol_version="1", content_sha256=SHA),
        audit_record("record_received", time=t.format(2, 9), actor="intake:health", agency="health", system="RX1",
                     size=2048, content_sha256=SHA, adapter="health-fhir"),
        audit_record("event_published", time=t.format(2, 9), actor="intake:health", agency="health", system="RX1",
                     event_id=_eid(1), event_type="health.urgent_care_attendance", subject=CHILD_A,
                     content_sha256=SHA),
        audit_record("decision", time=t.format(2, 10), actor="share", subject=CHILD_A, event_id=_eid(1),
                     event_type="health.urgent_care_attendance", subscriber="csc-front-door",
                     decision_id="dec-0001", outcome="deliver", rule_id="health-to-front-door",
                     purpose="safeguarding", lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_h",
                                                           "children_act_2004_s11"],
                     protocol_id="sample-partnership", protocol_version="1",
                     fields_released=["payload.attendance_reason", "subject.child.given_names[]"],
                     fields_masked={"subject.child.birth_date": "age_band"},
                     fields_withheld=["payload.clinical_notes"]),
        audit_record("delivered", time=t.format(2, 10), actor="share", subject=CHILD_A, subscriber="csc-front-door",
                     event_id=_eid(1), decision_id="dec-0001"),
        audit_record("decision", time=t.format(2, 10), actor="share", subject=CHILD_A, event_id=_eid(1),
                     event_type="health.urgent_care_attendance", subscriber="school-dsl", decision_id="dec-0002",
                     outcome="withhold", reason="no rule releases this event type to this subscriber",
                     protocol_id="sample-partnership", protocol_version="1"),
        audit_record("delivery_read", time=t.format(2, 11), actor="subscriber:csc-front-door",
                     subscriber="csc-front-door", event_id=_eid(1), decision_id="dec-0001"),
        audit_record("record_received", time=t.format(3, 9), actor="intake:police", agency="police", size=512,
                     content_sha256=SHA, adapter="police-pole"),
        audit_record("deadlettered", time=t.format(3, 9), actor="intake:police", agency="police",
                     deadletter_id=_eid(900), reason="required property 'incident' is missing", position="record 1",
                     field="incident", content_sha256=SHA),
        audit_record("event_published", time=t.format(3, 12), actor="intake:education", agency="education",
                     event_id=_eid(2), event_type="education.attendance_concern", subject=CHILD_B,
                     content_sha256=SHA),
        audit_record("decision", time=t.format(3, 12), actor="share", subject=CHILD_B, event_id=_eid(2),
                     event_type="education.attendance_concern", subscriber="csc-front-door",
                     decision_id="dec-0003", outcome="deliver", rule_id="education-to-front-door",
                     purpose="safeguarding", lawful_basis=["uk_gdpr_art6_1_e", "education_act_2002_s175"],
                     protocol_id="sample-partnership", protocol_version="1",
                     fields_released=["payload.attendance_rate"]),
        audit_record("delivered", time=t.format(3, 12), actor="share", subject=CHILD_B, subscriber="csc-front-door",
                     event_id=_eid(2), decision_id="dec-0003"),
        audit_record("key_unwrap", time=t.format(4, 8), actor="share", key_id="kek-health-v1",
                     classification="health"),
        audit_record("protocol_change", time=t.format(4, 9), actor="admin", protocol_id="sample-partnership",
                     protocol_version="2", previous_version="1", content_sha256=SHA),
    ]
    return [{**r, "record_id": _eid(1000 + i)} for i, r in enumerate(recs)]  # stable ids across calls


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[AuditStore]:
    store = open_audit_store(tmp_path, create_key=True, checkpoint_every=5)
    yield store
    store.close()


@pytest.fixture
def pg_store(pg_database: str, tmp_path: Path) -> Iterator[AuditStore]:
    """A fresh database per test on the session's cluster."""
    store = open_audit_store(tmp_path, pg_database, create_key=True, checkpoint_every=5)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> AuditStore:
    return request.getfixturevalue("sqlite_store" if request.param == "sqlite" else "pg_store")
