"""Exports: verifiable JSON Lines, CSV, FHIR AuditEvent Bundle, subject access report."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from broker.audit.export import (
    CSV_COLUMNS,
    ExportFormatError,
    embedded_public_key,
    read_jsonl,
    write_csv,
    write_jsonl,
)
from broker.audit.fhir import fhir_bundle
from broker.audit.store import AuditStore
from broker.audit.verify import verify
from tests.audit.conftest import CHILD_A, seed_records

NOW = "2026-03-06T12:00:00.000Z"


@pytest.fixture
def seeded(sqlite_store: AuditStore) -> AuditStore:
    sqlite_store.append(seed_records())
    sqlite_store.prune({"record_received": 1}, now="2026-03-03T12:00:00Z")  # one tombstone in every export
    sqlite_store.checkpoint()
    return sqlite_store


def jsonl(store: AuditStore) -> str:
    out = io.StringIO()
    assert store.public_key is not None
    write_jsonl(out, store.entries(), store.checkpoints(), store.public_key, NOW)
    return out.getvalue()


def test_jsonl_export_verifies_standalone(seeded: AuditStore) -> None:
    header, entries, checkpoints = read_jsonl(jsonl(seeded).splitlines())
    assert header["key_id"].startswith("ed25519:") and "SHA-256" in header["hash_rule"]
    assert len(entries) == 15 and checkpoints
    result = verify(entries, checkpoints, embedded_public_key(header))
    assert result.ok and result.checked == 15 and result.unsigned_tail == 0


def test_jsonl_export_edit_is_caught(seeded: AuditStore) -> None:
    lines = jsonl(seeded).splitlines()
    lines[5] = lines[5].replace("csc-front-door", "police-ppu")
    header, entries, checkpoints = read_jsonl(lines)
    result = verify(entries, checkpoints, embedded_public_key(header))
    assert not result.ok and result.first_bad_seq == json.loads(lines[5])["seq"]


@pytest.mark.parametrize("text", ["", "not json\n", '{"type": "entry"}\n', '[1]\n'])
def test_unusable_exports_are_refused(text: str) -> None:
    with pytest.raises(ExportFormatError):
        read_jsonl(text.splitlines())


def test_csv_opens_with_the_right_columns(seeded: AuditStore) -> None:
    out = io.StringIO()
    assert write_csv(out, seeded.entries()) == 15
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0].keys()) == CSV_COLUMNS and len(rows) == 15
    decision = next(r for r in rows if r["decision_id"] == "dec-0001" and r["kind"] == "decision")
    assert decision["lawful_basis"] == "uk_gdpr_art6_1_e; uk_gdpr_art9_2_h; children_act_2004_s11"
    assert decision["subject"] == CHILD_A and decision["rule_id"] == "health-to-front-door"
    tomb = next(r for r in rows if r["seq"] == "2")
    assert tomb["kind"] == "record_received" and tomb["pruned_at"] and tomb["actor"] == ""


def test_csv_cells_never_become_formulas() -> None:
    from broker.audit.chain import extend

    record = {**seed_records()[8], "reason": "-1 records: =SUM(A1) not allowed"}
    out = io.StringIO()
    write_csv(out, extend(0, "0" * 64, [record]))
    row = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["reason"].startswith("'-1")


def test_fhir_bundle_validates(seeded: AuditStore) -> None:
    bundle = fhir_bundle(seeded.entries(), NOW)
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection" and len(parsed.entry) == 14  # the tombstone has no body to show
    events = {e.resource.id: e.resource for e in parsed.entry}
    decision = next(r for r in seed_records() if r.get("decision_id") == "dec-0001" and r["kind"] == "decision")
    event = events[decision["record_id"]]
    assert event.type.code == "110106" and event.outcomeDesc == "delivered under rule health-to-front-door"
    assert [p.coding[0].code for p in event.purposeOfEvent][:3] == decision["lawful_basis"]
    assert event.entity[0].what.identifier.value == CHILD_A
    assert {a.who.identifier.value for a in event.agent} == {"share", "csc-front-door"}


# The subject access report's tests: tests/audit/test_sar.py
