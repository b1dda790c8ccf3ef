"""Guarantee: what IG staff see is the truth, provably untampered.

Each test is an insider with write access to the audit database (raw sqlite3 on the file, the signing key out of
reach) changing one fact IG reads: a child's timeline, a subscriber's disclosures, the subject access report, search
results, the dead-letter list. It first shows the edit changes what IG sees, then that verification (the IG API's
/verification, the report's own banner, `mash-broker audit verify`) fails and names the record, and never the
value."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from broker.audit.store import AuditStore, open_audit_store
from broker.cli.audit import app as audit_cli
from tests.audit.conftest import CHILD_A, CHILD_B, seed_records
from tests.audit.igapp import build_ig_app

OTHER = "lt1_TestchildExampleCccccccccccccc"


@pytest.fixture
def ig(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], AuditStore, Path]]:
    store = open_audit_store(tmp_path, create_key=True, checkpoint_every=5)
    store.append(seed_records())
    built = build_ig_app(store, tmp_path)
    with TestClient(built.app) as client:
        yield client, {"Authorization": f"Bearer {built.ig_key}"}, store, tmp_path
    store.close()


def raw(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    with sqlite3.connect(data_dir / "audit.sqlite") as db:
        db.execute(sql, params)


def seqs(entries: list[dict[str, Any]], kind: str) -> list[int]:
    return [e["seq"] for e in entries if (e.get("record") or {}).get("kind") == kind]


def verification(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    r = client.get("/v1/ig/verification", headers=headers)
    assert r.status_code == 200
    return r.json()


def assert_caught(client: TestClient, headers: dict[str, str], data_dir: Path, seq: int, *hidden: str) -> None:
    found = verification(client, headers)
    assert found["ok"] is False and found["first_bad_seq"] == seq, found["reason"]
    for value in hidden:
        assert value not in found["reason"]
    result = CliRunner().invoke(audit_cli, ["verify", "--data-dir", str(data_dir), "--checkpoint-every", "5"])
    assert result.exit_code == 1 and f"seq {seq}" in result.stdout


def test_a_childs_timeline_cannot_be_emptied_unseen(ig) -> None:
    """Promise: a child's timeline is what the chain says; moving its rows to another child is caught."""
    client, headers, _, data_dir = ig
    before = client.get(f"/v1/ig/children/{CHILD_A}/timeline", headers=headers).json()
    assert len(before["entries"]) == 5 and len(before["disclosures"]) == 1
    first = before["entries"][0]["seq"]
    raw(data_dir, "UPDATE audit_entry SET subject = ? WHERE subject = ?", (OTHER, CHILD_A))
    after = client.get(f"/v1/ig/children/{CHILD_A}/timeline", headers=headers).json()
    assert after["entries"] == [] and after["disclosures"] == []
    assert_caught(client, headers, data_dir, first, CHILD_A, OTHER)


def test_a_subscribers_disclosures_cannot_be_hidden_unseen(ig) -> None:
    """Promise: the disclosure log per subscriber is what the chain says; re-addressing a decision row is caught."""
    client, headers, _, data_dir = ig
    url = "/v1/ig/subscribers/csc-front-door/disclosures"
    before = client.get(url, headers=headers).json()["disclosures"]
    assert [d["decision_id"] for d in before] == ["dec-0001", "dec-0003"]
    target = before[1]["seq"]
    raw(data_dir, "UPDATE audit_entry SET subscriber = 'school-dsl' WHERE seq = ?", (target,))
    assert [d["decision_id"] for d in client.get(url, headers=headers).json()["disclosures"]] == ["dec-0001"]
    assert_caught(client, headers, data_dir, target, "school-dsl", "csc-front-door")


def test_the_subject_access_report_cannot_say_verified_over_an_edited_index(ig) -> None:
    """Promise: a subject access report never prints "Audit chain verified" over disclosures removed from view."""
    client, headers, _, data_dir = ig
    report = client.get(f"/v1/ig/children/{CHILD_A}/report", headers=headers).text
    assert "1 disclosure(s)" in report and "Audit chain verified" in report
    rows = seqs(client.get(f"/v1/ig/children/{CHILD_A}/timeline", headers=headers).json()["entries"], "decision")
    raw(data_dir, "UPDATE audit_entry SET subject = NULL WHERE kind IN ('decision', 'delivered') AND subject = ?",
        (CHILD_A,))
    report = client.get(f"/v1/ig/children/{CHILD_A}/report", headers=headers).text
    assert "0 disclosure(s)" in report
    assert "Audit chain verified" not in report and f"FAILED at record {rows[0]}" in report
    assert_caught(client, headers, data_dir, rows[0], CHILD_A)


def test_search_results_cannot_lose_a_record_to_a_forged_tombstone(ig) -> None:
    """Promise: a record leaves search results only through a logged prune; a hand-made tombstone is caught."""
    client, headers, _, data_dir = ig
    found = client.get("/v1/ig/search", params={"subject": CHILD_B}, headers=headers).json()["entries"]
    decision = seqs(found, "decision")[0]
    raw(data_dir, "UPDATE audit_entry SET body = NULL, pruned_at = '2026-04-15T00:00:00.000Z', subject = NULL,"
                  " subscriber = NULL, event_id = NULL, event_type = NULL, rule_id = NULL, decision_id = NULL,"
                  " outcome = NULL WHERE seq = ?", (decision,))
    after = client.get("/v1/ig/search", params={"subject": CHILD_B}, headers=headers).json()["entries"]
    assert decision not in [e["seq"] for e in after]
    assert_caught(client, headers, data_dir, decision, CHILD_B)


def test_search_results_cannot_lose_their_newest_record_unseen(ig) -> None:
    """Promise: the end of the log cannot be cut off: the head row still names the deleted last record."""
    client, headers, _, data_dir = ig
    newest = client.get("/v1/ig/search", params={"limit": 1}, headers=headers).json()["entries"][0]["seq"]
    raw(data_dir, "DELETE FROM audit_checkpoint WHERE seq >= ?", (newest,))
    raw(data_dir, "DELETE FROM audit_entry WHERE seq = ?", (newest,))
    assert client.get("/v1/ig/search", params={"limit": 1}, headers=headers).json()["entries"][0]["seq"] < newest
    assert_caught(client, headers, data_dir, newest)


def test_search_results_cannot_lose_the_tail_with_every_checkpoint(ig) -> None:
    """Promise: deleting the last records, every checkpoint and rolling the head back is caught: a signed checkpoint
    is due at every multiple of the interval the chain has passed."""
    client, headers, _, data_dir = ig
    raw(data_dir, "DELETE FROM audit_checkpoint")
    raw(data_dir, "DELETE FROM audit_entry WHERE seq > 11")
    raw(data_dir, "UPDATE audit_head SET seq = 11, hash = (SELECT hash FROM audit_entry WHERE seq = 11)")
    assert client.get("/v1/ig/search", params={"limit": 1}, headers=headers).json()["entries"][0]["seq"] == 11
    assert_caught(client, headers, data_dir, 5)


def test_the_dead_letter_list_cannot_lose_a_letter_unseen(ig) -> None:
    """Promise: the dead-letter list is what the chain says; re-labelling a dead letter's row hides it, and is
    caught."""
    client, headers, _, data_dir = ig
    letters = client.get("/v1/ig/deadletters", headers=headers).json()["deadletters"]
    assert len(letters) == 1
    seq = letters[0]["seq"]
    raw(data_dir, "UPDATE audit_entry SET kind = 'record_rejected', deadletter_id = NULL WHERE seq = ?", (seq,))
    assert client.get("/v1/ig/deadletters", headers=headers).json()["deadletters"] == []
    assert_caught(client, headers, data_dir, seq)
