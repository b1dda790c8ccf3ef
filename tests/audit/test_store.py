"""The audit store on SQLite and on PostgreSQL: chaining, repeats, checkpoints, queries, tampering, retention."""

from __future__ import annotations

import json
import threading

import pytest

from broker.audit import AuditRecordError, audit_record
from broker.audit.store import AuditStore, AuditStoreError
from tests.audit.conftest import CHILD_A, CHILD_B, _eid, seed_records


def seeded(store: AuditStore) -> list[dict]:
    return store.append(seed_records())


def kinds(entries: list[dict]) -> list[str]:
    return [e["record"]["kind"] for e in entries]


def test_append_chains_and_signs_periodically(store: AuditStore) -> None:
    entries = seeded(store)
    assert [e["seq"] for e in entries] == list(range(1, 15))
    assert store.head() == (14, entries[-1]["hash"])
    periodic = [c for c in store.checkpoints() if c["purpose"] == "periodic"]
    assert [c["seq"] for c in periodic] == [5, 10]  # one batch crossed 5 and 10: each multiple signed
    more = store.append([audit_record("key_unwrap", time="2026-03-05T00:00:00Z", actor="share", key_id=f"k{i}")
                         for i in range(3)])
    assert more[0]["prev_hash"] == entries[-1]["hash"]
    assert [c["seq"] for c in store.checkpoints() if c["purpose"] == "periodic"] == [5, 10, 15]
    assert store.verify().ok


def test_repeated_record_ids_are_dropped(store: AuditStore) -> None:
    records = seed_records()
    first = store.append(records[:5])
    again = store.append(records[3:7] + records[6:7])  # Kafka redelivered two, and one twice in a batch
    assert len(first) == 5 and [e["record"]["record_id"] for e in again] == [r["record_id"] for r in records[5:7]]
    assert store.head()[0] == 7


def test_invalid_records_are_refused_whole_batch(store: AuditStore) -> None:
    good = seed_records()[0]
    with pytest.raises(AuditRecordError, match="record 1"):
        store.append([good, {**good, "record_id": _eid(77), "name": "Testchild Example"}])
    assert store.head()[0] == 0


def test_invalid_records_can_be_skipped_and_reported(store: AuditStore) -> None:
    records = seed_records()[:3]
    bad = {**records[1], "record_id": _eid(78), "nhs_number": "9990000018"}
    reported: list[tuple[int, list[str]]] = []
    entries = store.append([records[0], bad, "not a record", records[2]],  # type: ignore[list-item]
                           on_invalid=lambda i, problems: reported.append((i, problems)))
    assert [e["record"]["record_id"] for e in entries] == [records[0]["record_id"], records[2]["record_id"]]
    assert [i for i, _ in reported] == [1, 2]
    assert "nhs_number" in reported[0][1][0] and "9990000018" not in str(reported)


def test_concurrent_writers_never_fork_the_chain(store: AuditStore) -> None:
    def write(n: int) -> None:
        for i in range(5):
            store.append([audit_record("key_unwrap", time="2026-03-05T00:00:00Z", actor=f"w{n}", key_id=f"k{i}")])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.head()[0] == 20 and store.verify().ok


def test_queries(store: AuditStore) -> None:
    seeded(store)
    assert kinds(store.search(subject=CHILD_B, newest_first=False)) == ["event_published", "decision", "delivered"]
    assert {e["record"]["agency"] for e in store.search(agency="police")} == {"police"}
    assert len(store.search(agency="police")) == 2
    assert len(store.search(subscriber="csc-front-door", kind="decision")) == 2
    assert len(store.search(event_type="education.attendance_concern")) == 2
    assert [e["record"]["decision_id"] for e in store.search(rule_id="health-to-front-door")] == ["dec-0001"]
    day2 = store.search(since="2026-03-02T00:00:00Z", until="2026-03-03T00:00:00+00:00", limit=1000)
    assert len(day2) == 6 and all(e["record"]["time"].startswith("2026-03-02") for e in day2)
    page1 = store.search(limit=5)
    page2 = store.search(limit=5, before_seq=page1[-1]["seq"])
    assert [e["seq"] for e in page1 + page2] == list(range(14, 4, -1))
    with pytest.raises(AuditStoreError):
        store.search(name="x")


def test_timeline_includes_the_reads_of_the_childs_deliveries(store: AuditStore) -> None:
    seeded(store)
    timeline = store.timeline(CHILD_A)
    assert kinds(timeline) == ["event_published", "decision", "delivered", "decision", "delivery_read"]
    assert "subject" not in timeline[-1]["record"]  # the read names the decision, not the child


def test_disclosure_log_per_subscriber_and_per_child(store: AuditStore) -> None:
    seeded(store)
    front_door = store.disclosures(subscriber="csc-front-door")
    assert [d.decision_id for d in front_door] == ["dec-0001", "dec-0003"]
    first = front_door[0]
    assert first.subject == CHILD_A and first.rule_id == "health-to-front-door"
    assert first.delivered_at == "2026-03-02T10:00:00.000Z" and first.read_at == "2026-03-02T11:00:00.000Z"
    assert first.fields_masked == {"subject.child.birth_date": "age_band"}
    assert front_door[1].read_at is None
    assert store.disclosures(subscriber="school-dsl") == []  # withheld is no disclosure
    assert [d.decision_id for d in store.disclosures(subject=CHILD_B)] == ["dec-0003"]


def test_a_childs_timeline_and_disclosures_reach_the_tokens_folded_into_it(store: AuditStore) -> None:
    """After the identity register joined two streams, a subject access request must see both (UK GDPR Art 15)."""
    seeded(store)
    timeline = store.timeline(CHILD_A, aliases=[CHILD_A, CHILD_B])
    both = sorted(e["seq"] for child in (CHILD_A, CHILD_B) for e in store.timeline(child))
    assert [e["seq"] for e in timeline] == both and len(both) > len(store.timeline(CHILD_A))
    assert [d.decision_id for d in store.disclosures(subject=CHILD_A, aliases=[CHILD_B])] == ["dec-0001", "dec-0003"]
    assert [d.decision_id for d in store.disclosures(subject=CHILD_A)] == ["dec-0001"]


def test_protocol_history_and_dead_letters(store: AuditStore) -> None:
    seeded(store)
    assert [e["record"]["protocol_version"] for e in store.protocol_history()] == ["1", "2"]
    letters = store.dead_letters()
    assert len(letters) == 1 and letters[0]["reprocessed_at"] is None
    letter_id = letters[0]["record"]["deadletter_id"]
    assert letters[0]["record"]["reason"] == "required property 'incident' is missing"
    store.log("admin_action", actor="ig_auditor", time="2026-03-04T10:00:00Z", action="deadletter.reprocess",
              target=letter_id)
    assert store.dead_letters()[0]["reprocessed_at"] == "2026-03-04T10:00:00.000Z"
    assert store.deadletter(letter_id)["seq"] == letters[0]["seq"]
    assert store.deadletter(_eid(404)) is None


def _tamper(store: AuditStore, sql: str, params: tuple) -> None:
    store._sql.execute(sql, params)


def test_tampering_in_the_database_is_caught(store: AuditStore) -> None:
    seeded(store)
    store.checkpoint()
    body = store.search(kind="delivered", subject=CHILD_B)[0]
    edited = body["record"] | {"subscriber": "police-ppu"}
    _tamper(store, "UPDATE audit_entry SET body = ? WHERE seq = ?", (json.dumps(edited), body["seq"]))
    result = store.verify()
    assert not result.ok and result.first_bad_seq == body["seq"]


def test_deleted_row_in_the_database_is_caught(store: AuditStore) -> None:
    seeded(store)
    _tamper(store, "DELETE FROM audit_entry WHERE seq = ?", (6,))
    result = store.verify()
    assert not result.ok and result.first_bad_seq == 6


def test_truncated_table_is_caught(store: AuditStore) -> None:
    seeded(store)
    store.checkpoint()
    _tamper(store, "DELETE FROM audit_entry WHERE seq > ?", (11,))
    result = store.verify()
    assert not result.ok and result.first_bad_seq == 12 and "truncated" in result.reason


def test_retention_prunes_by_kind_and_the_chain_still_verifies(store: AuditStore) -> None:
    seeded(store)
    result = store.prune({"delivery_read": 30, "record_received": 30, "event_published": 365},
                         now="2026-04-15T00:00:00Z")
    assert result.by_kind == {"delivery_read": 1, "record_received": 2}
    assert result.pruned == 3 and result.compacted == 0
    pruned = [e for e in store.entries() if "pruned" in e]
    assert [e["seq"] for e in pruned] == [2, 7, 8]
    assert pruned[0]["pruned"] == {"at": "2026-04-15T00:00:00.000Z", "kind": "record_received",
                                   "time": "2026-03-02T09:00:00.000Z"}
    assert store.search(kind="admin_action")[0]["record"]["action"] == "audit.prune"
    assert store.search(agency="police", kind="record_received") == []  # index columns cleared too
    assert store.verify().ok
    # the disclosure survives; only the read time is gone with its record
    assert store.disclosures(subscriber="csc-front-door")[0].read_at is None


def test_compaction_drops_a_pruned_prefix_behind_a_signed_anchor(store: AuditStore) -> None:
    seeded(store)
    result = store.prune({"protocol_change": 1, "record_received": 1, "event_published": 1},
                         now="2026-04-15T00:00:00Z", compact=True)
    assert result.compacted == 3  # seqs 1-3 were all pruned; seq 4 (a decision) is kept
    assert next(store.entries())["seq"] == 4
    anchors = [c for c in store.checkpoints() if c["purpose"] == "prune"]
    assert [c["seq"] for c in anchors] == [3]
    assert store.verify().ok


# --- defect 7: tampering with what IG reads, under the verifier (both databases) ------------------------------------
@pytest.mark.parametrize("column", ["subject", "subscriber", "kind", "event_id", "decision_id"])
def test_edited_index_columns_are_caught_naming_seq_and_column(store: AuditStore, column: str) -> None:
    """Editing only an index column of a decision row (the body untouched) changes what a search finds: verify
    must name the row and the column, never the value."""
    seeded(store)
    decision = store.search(kind="decision", subject=CHILD_A, newest_first=False)[0]
    value = {"kind": "key_unwrap"}.get(column)
    _tamper(store, f"UPDATE audit_entry SET {column} = ? WHERE seq = ?", (value, decision["seq"]))
    if column in ("subject", "kind"):
        assert store.disclosures(subject=CHILD_A) == []  # the tamper matters to IG: the disclosure is gone
    if column == "subscriber":
        assert "dec-0001" not in [d.decision_id for d in store.disclosures(subscriber="csc-front-door")]
    result = store.verify()
    assert not result.ok and result.first_bad_seq == decision["seq"] and result.fault == "index"
    assert f"its {column} column" in result.reason
    assert CHILD_A not in result.reason and "dec-0001" not in result.reason


def test_disclosures_hidden_by_index_edits_fail_verification(store: AuditStore) -> None:
    seeded(store)
    assert len(store.disclosures(subject=CHILD_A)) == 1
    rows = [e["seq"] for e in store.search(subject=CHILD_A) if e["record"]["kind"] in ("decision", "delivered")]
    for seq in rows:
        _tamper(store, "UPDATE audit_entry SET subject = NULL, subscriber = NULL WHERE seq = ?", (seq,))
    assert store.disclosures(subject=CHILD_A) == []
    result = store.verify()
    assert not result.ok and result.first_bad_seq == min(rows) and "subject column" in result.reason


def test_a_forged_tombstone_is_caught(store: AuditStore) -> None:
    """body NULL and pruned_at set, as a prune would, but no prune was logged."""
    seeded(store)
    decision = store.search(kind="decision", subject=CHILD_A, newest_first=False)[0]["seq"]
    blank = ", ".join(f"{c} = NULL" for c in ("subject", "agency", "subscriber", "event_id", "event_type", "rule_id",
                                              "decision_id", "outcome", "deadletter_id"))
    _tamper(store, f"UPDATE audit_entry SET body = NULL, pruned_at = ?, {blank} WHERE seq = ?",
            ("2026-04-15T00:00:00.000Z", decision))
    result = store.verify()
    assert not result.ok and result.first_bad_seq == decision and "no logged prune covers" in result.reason


def test_a_forged_tombstone_dressed_as_a_real_prunes_is_caught(store: AuditStore) -> None:
    """After a real prune, a decision's body removed and its kind, time and pruned_at set to match that prune."""
    seeded(store)
    store.prune({"delivery_read": 30}, now="2026-04-15T00:00:00Z")
    assert store.verify().ok
    decision = store.search(kind="decision", subject=CHILD_B)[0]["seq"]
    _tamper(store, "UPDATE audit_entry SET body = NULL, pruned_at = ?, kind = 'delivery_read', subject = NULL,"
                   " subscriber = NULL, event_id = NULL, event_type = NULL, rule_id = NULL, decision_id = NULL,"
                   " outcome = NULL WHERE seq = ?", ("2026-04-15T00:00:00.000Z", decision))
    result = store.verify()
    assert not result.ok and result.fault == "tombstone" and "which recorded 1" in result.reason


def test_prune_records_survive_their_own_kinds_retention(store: AuditStore) -> None:
    seeded(store)
    store.prune({"delivery_read": 30}, now="2026-04-15T00:00:00Z")
    store.prune({"admin_action": 1}, now="2027-04-15T00:00:00Z")
    prunes = [e for e in store.search(kind="admin_action") if e["record"]["action"] == "audit.prune"]
    assert [p["record"]["target"] for p in prunes] == ["delivery_read"]
    assert prunes[0]["record"]["before"] == "2026-03-16T00:00:00.000Z" and prunes[0]["record"]["count"] == 1
    assert store.verify().ok


def test_deleting_every_checkpoint_and_the_tail_is_caught(store: AuditStore) -> None:
    """The attacker removes the last records, moves the head back to match, and deletes every checkpoint."""
    seeded(store)
    _tamper(store, "DELETE FROM audit_checkpoint WHERE seq > ?", (-1,))
    _tamper(store, "DELETE FROM audit_entry WHERE seq > ?", (11,))
    row = store.search(limit=1)[0]
    _tamper(store, "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (row["seq"], row["hash"]))
    result = store.verify()
    assert not result.ok and result.first_bad_seq == 5 and result.fault == "checkpoint_missing"


def test_deleting_the_last_row_while_the_head_names_it_is_caught(store: AuditStore) -> None:
    seeded(store)
    _tamper(store, "DELETE FROM audit_entry WHERE seq = ?", (14,))
    result = store.verify()
    assert not result.ok and result.first_bad_seq == 14 and result.fault == "head"


def test_rows_beyond_the_head_are_caught(store: AuditStore) -> None:
    seeded(store)
    last = store.search(limit=1)[0]
    _tamper(store, "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (13, store.search(limit=2)[1]["hash"]))
    result = store.verify()
    assert not result.ok and result.first_bad_seq == 14 and last["seq"] == 14


def test_a_store_without_checkpoints_configured_expects_none(tmp_path) -> None:
    from broker.audit.store import open_audit_store

    plain = open_audit_store(tmp_path, create_key=True, checkpoint_every=0)
    plain.append(seed_records())
    assert plain.checkpoints() == [] and plain.verify().ok
    plain.close()


def test_a_compacted_chain_still_verifies_with_periodic_checkpoints(store: AuditStore) -> None:
    seeded(store)
    store.prune({"protocol_change": 1, "record_received": 1, "event_published": 1}, now="2026-04-15T00:00:00Z",
                compact=True)
    result = store.verify()
    assert result.ok, result.reason
    assert [e["record"]["action"] for e in store.search(kind="admin_action", newest_first=False)] == \
        ["audit.prune"] * 3 + ["audit.compact"]


def test_verify_beside_a_busy_writer_never_cries_wolf(store: AuditStore) -> None:
    """Records (and periodic checkpoints) appended while verification walks the chain are not tampering."""
    seeded(store)
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            store.append([audit_record("key_unwrap", time="2026-03-05T00:00:00Z", actor="share", key_id=f"b{i}")])
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        results = [store.verify() for _ in range(20)]
    finally:
        stop.set()
        writer.join()
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
    assert store.verify().ok and store.head()[0] > 14
