"""The share plan builds its audit records without the schema check (broker/audit/record.py `built_record`): this is
where they are checked instead. Every record the plan builds over the bench's mix must be one the audit store
accepts, and the store, which reads records from outside, must still refuse one that is not."""

from __future__ import annotations

import pytest

from broker.audit.record import AuditRecordError, audit_record, built_record, validate_record
from broker.audit.store import open_audit_store
from broker.audit.withheld import expand
from broker.bench.share_mix import share_mix
from broker.policy.decision import delivered_record_id

T = "2026-12-01T12:00:00Z"
EVENT_ID = "0b6c2d7e-0000-4000-8000-000000000001"
RECORD_ID = "0b6c2d7e-0000-4000-8000-000000000002"


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    with share_mix(tmp_path_factory.mktemp("share-mix"), records=120) as m:
        yield list(m.plan_all())


def test_every_record_the_share_plan_builds_over_the_mix_is_schema_valid(plans) -> None:
    audits = [r for p in plans for r in p.audits]
    kinds = {r["kind"] for r in audits}
    assert {"decision", "delivered"} <= kinds  # the mix decides and delivers: the check covers both shapes
    assert any(r["kind"] == "decision" and r["outcome"] == "deliver" and r["fields_released"] for r in audits)
    assert [(i, p) for i, r in enumerate(audits) if (p := validate_record(r))] == []


def test_a_delivery_is_audited_under_an_id_derived_from_its_decision_and_subscriber(plans) -> None:
    """So a re-run that audits the same delivery again (outside a Kafka transaction) is kept once by the store."""
    sent = [r for p in plans for r in p.audits if r["kind"] == "delivered"]
    assert sent and all(r["record_id"] == delivered_record_id(r["decision_id"], r["subscriber"]) for r in sent)
    assert len({r["record_id"] for r in sent}) == len(sent)  # one delivery, one id: none shares another's


def test_the_store_chains_the_plans_records(plans, tmp_path) -> None:
    store = open_audit_store(tmp_path, create_key=True)
    audits = [r for p in plans for r in p.audits]
    refused: list[int] = []
    # a group of withholds is chained as one decision per subscriber (broker/audit/withheld.py)
    stored = [r for a in audits for r in expand(a)]
    assert len(store.append(audits, on_invalid=lambda i, _: refused.append(i))) == len(stored) > len(audits)
    assert refused == [] and store.verify().ok


def test_an_unchecked_record_with_a_field_the_schema_lacks_never_enters_the_store(tmp_path) -> None:
    # what the indexer reads from Kafka is checked, whoever built it: a field for a name is refused by name, no value
    record = built_record("delivered", time=T, actor="share", subscriber="mash_hub", given_names="Testchild")
    store = open_audit_store(tmp_path, create_key=True)
    with pytest.raises(AuditRecordError) as refused:
        store.append([record])
    assert "given_names" in str(refused.value) and "Testchild" not in str(refused.value)
    skipped: list[list[str]] = []
    assert store.append([record], on_invalid=lambda _, problems: skipped.append(problems)) == []
    assert skipped and store.head()[0] == 0


def test_built_record_is_audit_record_without_the_check() -> None:
    fields: dict[str, object] = {
        "subject": "lt1_" + "A" * 32, "subscriber": "mash_hub", "event_id": EVENT_ID, "decision_id": "d1",
        "lawful_basis": ("uk_gdpr_art6_1_e",), "fields_withheld": frozenset({"b", "a"}), "reason": None}

    checked = audit_record("delivered", time=T, actor="share", record_id=RECORD_ID, **fields)
    assert built_record("delivered", time=T, actor="share", record_id=RECORD_ID, **fields) == checked
    assert checked["lawful_basis"] == ["uk_gdpr_art6_1_e"] and checked["fields_withheld"] == ["a", "b"]
