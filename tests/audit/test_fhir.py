"""The FHIR AuditEvent export (broker/audit/fhir.py) as an auditor receiving it would check it: every resource valid
FHIR (fhir.resources), a withholding coded unlike a disclosure, the rule and lawful basis as codings under the
partnership's own base URL, and the chain head and checkpoint signature carried in a Provenance that verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.provenance import Provenance
from typer.testing import CliRunner

from broker.audit.checkpoint import checkpoint_signature_ok
from broker.audit.fhir import FhirBaseError, audit_event, fhir_bundle
from broker.audit.store import AuditStore, open_audit_store
from broker.cli.audit import app
from tests.audit.conftest import seed_records

NOW = "2026-03-05T09:00:00.000Z"
BASE = "https://ig.testpartnership.example/fhir"


@pytest.fixture
def seeded(sqlite_store: AuditStore) -> AuditStore:
    sqlite_store.append(seed_records())
    return sqlite_store


def _validated(bundle: dict) -> tuple[dict[str, AuditEvent], list[Provenance]]:
    """Every resource through fhir.resources: the Bundle, and each entry as its own resource type."""
    Bundle.model_validate(bundle)
    events, provenances = {}, []
    for item in bundle["entry"]:
        resource = item["resource"]
        if resource["resourceType"] == "AuditEvent":
            events[resource["id"]] = AuditEvent.model_validate(resource)
        else:
            assert resource["resourceType"] == "Provenance"
            provenances.append(Provenance.model_validate(resource))
    return events, provenances


def _record(decision_id: str, kind: str = "decision") -> dict:
    return next(r for r in seed_records() if r.get("decision_id") == decision_id and r["kind"] == kind)


def _codes(codings) -> dict[str, str]:
    return {c.system: c.code for c in codings}


def test_a_withholding_is_not_coded_as_an_export(seeded: AuditStore) -> None:
    """Before, a withholding and a disclosure were both DICOM Export with outcome success."""
    events, _ = _validated(fhir_bundle(seeded.entries(), NOW, base=BASE))
    shared, withheld = events[_record("dec-0001")["record_id"]], events[_record("dec-0002")["record_id"]]
    assert (shared.type.code, shared.outcome) == ("110106", "0")
    assert (withheld.type.system, withheld.type.code, withheld.outcome) == (
        f"{BASE}/CodeSystem/audit-event-type", "withhold", "4")
    assert _codes(shared.subtype)[f"{BASE}/CodeSystem/decision-outcome"] == "deliver"
    assert _codes(withheld.subtype)[f"{BASE}/CodeSystem/decision-outcome"] == "withhold"
    assert _codes(shared.subtype)["http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"] == "disclose"
    assert "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle" not in _codes(withheld.subtype)


def test_the_rule_and_lawful_basis_are_codings(seeded: AuditStore) -> None:
    events, _ = _validated(fhir_bundle(seeded.entries(), NOW, base=BASE))
    decision = _record("dec-0001")
    event = events[decision["record_id"]]
    assert _codes(event.subtype)[f"{BASE}/CodeSystem/rule"] == "health-to-front-door"
    basis = [p.coding[0] for p in event.purposeOfEvent if p.coding[0].system == f"{BASE}/CodeSystem/lawful-basis"]
    assert [c.code for c in basis] == decision["lawful_basis"]
    assert all(c.display for c in basis)  # in words, from the protocol's code list


def test_every_code_system_of_ours_sits_under_the_configured_base(seeded: AuditStore) -> None:
    text = json.dumps(fhir_bundle(seeded.entries(), NOW, base=BASE + "/"))
    assert "mash-broker.example" not in text and f"{BASE}/CodeSystem/audit-kind" in text
    assert f"{BASE}//" not in text


@pytest.mark.parametrize("base", ["ftp://x.example/fhir", "not a url", "https://", "https://x.example/?q=1"])
def test_a_base_that_is_no_url_is_refused_by_setting_name(seeded: AuditStore, base: str) -> None:
    entry = next(iter(seeded.entries()))
    with pytest.raises(FhirBaseError) as caught:
        audit_event(entry, base)
    assert "MASH_FHIR_CODE_SYSTEM_BASE" in str(caught.value) and base not in str(caught.value)


def test_the_provenance_carries_a_head_and_signature_that_verify(seeded: AuditStore) -> None:
    cp = seeded.checkpoint("on_demand")
    entries = list(seeded.entries())
    bundle = fhir_bundle(entries, NOW, base=BASE, checkpoint=cp)
    events, [prov] = _validated(bundle)
    # the head it names is the last AuditEvent's chain entry
    seq, head_hash = prov.entity[0].what.identifier.value.split(":")
    last = bundle["entry"][-2]["resource"]
    assert int(seq) == entries[-1]["seq"] and head_hash == entries[-1]["hash"]
    assert {d["type"]: d["valueString"] for d in last["entity"][-1]["detail"]}["hash"] == head_hash
    assert {t.reference for t in prov.target} == {f"urn:uuid:{i}" for i in events}
    # an auditor rebuilds the checkpoint from the Provenance alone and checks it with the published key
    sig = prov.signature[0]
    rebuilt = {"seq": int(seq), "hash": head_hash, "time": bundle["entry"][-1]["resource"]["signature"][0]["when"],
               "purpose": prov.activity.coding[0].code, "key_id": sig.who.identifier.value,
               "signature": bundle["entry"][-1]["resource"]["signature"][0]["data"]}
    assert checkpoint_signature_ok(rebuilt, seeded.public_key)
    assert not checkpoint_signature_ok({**rebuilt, "hash": "0" * 64}, seeded.public_key)


def test_kafka_reads_and_positions_are_exported(sqlite_store: AuditStore) -> None:
    from broker.audit.kafka_reads import Committed, read_up_to_records

    records, _ = read_up_to_records({}, [Committed("eh-case-system", "sg.deliver.early_help", 0, 4)],
                                    {"sg.deliver.early_help": "early_help"}, time=NOW)
    sqlite_store.append(records)
    events, _ = _validated(fhir_bundle(sqlite_store.entries(), NOW, base=BASE))
    [event] = events.values()
    place = {d.type: d.valueString for d in event.entity[0].detail}
    assert place == {"topic": "sg.deliver.early_help", "partition": "0", "offset": "4", "group": "eh-case-system"}
    assert event.action == "R" and event.agent[1].requestor


def test_the_cli_export_is_vouched_for_and_uses_the_setting(tmp_path: Path, monkeypatch) -> None:
    store = open_audit_store(tmp_path, create_key=True, checkpoint_every=5)
    store.append(seed_records())
    store.close()
    monkeypatch.setenv("MASH_FHIR_CODE_SYSTEM_BASE", BASE)
    out = tmp_path / "bundle.json"
    result = CliRunner().invoke(app, ["export", "--format", "fhir", "--out", str(out), "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    bundle = json.loads(out.read_text())
    events, [prov] = _validated(bundle)
    assert len(events) == len(seed_records()) and len(prov.target) == len(events)
    assert f"{BASE}/CodeSystem/audit-kind" in out.read_text()
    store = open_audit_store(tmp_path)
    try:
        [cp] = [c for c in store.checkpoints() if c["purpose"] == "on_demand"]
        assert bundle["entry"][-1]["resource"]["signature"][0]["data"] == cp["signature"]
    finally:
        store.close()
