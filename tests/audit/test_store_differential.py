"""The audit store's cheaper append (issue 24, session 10) against the old path, on the bench floor's mix.

The reference is the append as session 9 made it, kept here with the libraries it used: every record validated on
its own (jsonschema-rs, `validate_record`), every group of withholds expanded by building each decision with the
share plan's builder (`Decision` -> `built_record`), canonical JSON from `json.dumps(sort_keys=True)`, each link the
SHA-256 of the canonical `{seq, prev_hash, record_sha256}`. The store fed the same batches (every audit record the
floor's intake and share parts make, appended as the floor appends them) must hold exactly those rows: every column,
byte for byte, and the same head, checkpoints and returned entries.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from broker.audit.chain import GENESIS, _hex_link_hash, extend_canonical, link_hash
from broker.audit.record import AuditRecordError, built_record, validate_record
from broker.audit.withheld import KIND, expand
from broker.bench.floor import PARTS, _bodies, _run, floor_kit
from broker.policy.decision import Decision, decision_id, default_deny_reason

ROW = ("seq, record_id, kind, time, subject, agency, subscriber, event_id, event_type, rule_id, decision_id, outcome,"
       " deadletter_id, prev_hash, record_sha256, hash, body, pruned_at")


def _old_expand(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Session 9's expansion: each decision of a group built by the share plan's own builder."""
    if record.get("kind") != KIND:
        return [record]
    out: list[Mapping[str, Any]] = []
    for w in record["withheld"]:
        did = decision_id(record["event_id"], w["subscriber"], record["protocol_id"], record["protocol_version"],
                          "withhold")
        decision = Decision(did, record["event_id"], record["event_type"], w["subscriber"], "withhold", None, (), None,
                            (), (), (), record["protocol_id"], record["protocol_version"],
                            w.get("reason") or default_deny_reason(record["event_type"], w["subscriber"]))
        out.append(built_record("decision", time=record["time"], actor=record["actor"], subject=record["subject"],
                                record_id=did, **decision.to_record()))
    return out


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _reference(batches: Sequence[Sequence[Mapping[str, Any]]]) -> tuple[list[tuple[Any, ...]], list[list[Any]]]:
    """The rows (in ROW's order) and the entries each append returns, as session 9's append made them."""
    rows: list[tuple[Any, ...]] = []
    returned: list[list[Any]] = []
    seq, head, known = 0, GENESIS, set()
    for records in batches:
        batch: dict[str, Mapping[str, Any]] = {}
        for record in records:
            assert validate_record(record) == []
            for stored in _old_expand(record):
                assert validate_record(stored) == []
                batch.setdefault(stored["record_id"], stored)
        entries = []
        for rid, record in batch.items():
            if rid in known:
                continue
            known.add(rid)
            body = _json(record)
            digest = hashlib.sha256(body).hexdigest()
            seq, prev = seq + 1, head
            head = hashlib.sha256(_json({"seq": seq, "prev_hash": prev, "record_sha256": digest})).hexdigest()
            rows.append((seq, rid, *(record.get(c) for c in ("kind", "time", "subject", "agency", "subscriber",
                                                              "event_id", "event_type", "rule_id", "decision_id",
                                                              "outcome", "deadletter_id")),
                         prev, digest, head, body.decode(), None))
            entries.append({"seq": seq, "prev_hash": prev, "record_sha256": digest, "hash": head,
                            "record": dict(record)})
        returned.append(entries)
    return rows, returned


def _floor_batches(workdir: Path, records: int, batch: int) -> tuple[list[list[Any]], list[list[Any]], Path]:
    """Every batch the floor's audit part appends (copied as handed over), what each append returned, the store."""
    appended: list[list[Any]] = []
    returned: list[list[Any]] = []
    with floor_kit(workdir) as kit:
        store_append = kit.audit.append

        def append(records: list[Any], **kwargs: Any) -> list[dict[str, Any]]:
            appended.append(json.loads(json.dumps(records)))
            out = store_append(records, **kwargs)
            returned.append(out)
            return out

        kit.audit.append = append  # type: ignore[method-assign]
        _run(kit, _bodies(records, batch), dict.fromkeys(PARTS, 0.0))
        assert kit.audit.verify().ok
    return appended, returned, workdir / "data" / "audit.sqlite"


@pytest.mark.parametrize(("records", "batch"), [(200, 20), (40, 1)])
def test_the_store_holds_byte_for_byte_what_the_old_append_made_on_the_floors_mix(
        tmp_path: Path, records: int, batch: int) -> None:
    appended, returned, path = _floor_batches(tmp_path, records, batch)
    kinds = {r["kind"] for b in appended for r in b}
    assert {KIND, "decision", "delivered", "event_published", "record_received"} <= kinds  # the mix's every path
    rows, entries = _reference(appended)
    with sqlite3.connect(path) as db:
        stored = db.execute(f"SELECT {ROW} FROM audit_entry ORDER BY seq").fetchall()
        stored_head = db.execute("SELECT seq, hash FROM audit_head").fetchall()
        checkpoints = db.execute("SELECT seq, hash, purpose FROM audit_checkpoint ORDER BY seq").fetchall()
    assert len(stored) == len(rows) > len(appended)
    for mine, theirs in zip(stored, rows, strict=True):
        assert mine == theirs, f"seq {theirs[0]} differs"
    assert stored_head == [(rows[-1][0], rows[-1][15])]
    by_seq = {r[0]: r[15] for r in rows}
    assert checkpoints == [(s, by_seq[s], "periodic") for s in range(1000, rows[-1][0] + 1, 1000)]
    assert returned == entries


def test_the_link_formatted_straight_is_the_canonical_links_hash() -> None:
    rng = random.Random(24)
    hexes = [GENESIS, "f" * 64, *("".join(rng.choice("0123456789abcdef") for _ in range(64)) for _ in range(200))]
    for seq in (0, 1, 9, 10, 999, 1000, 2**31, 2**62 - 1, *(rng.randrange(2**40) for _ in range(200))):
        prev, digest = rng.choice(hexes), rng.choice(hexes)
        assert _hex_link_hash(seq, prev, digest) == link_hash(seq, prev, digest)


@pytest.mark.parametrize("head", ["A" * 64, "0" * 63, "0" * 65, 'x"' * 32, "é" * 64])
def test_a_head_that_is_not_a_lowercase_digest_is_linked_the_general_way(head: str) -> None:
    record = built_record("admin_action", time="2026-12-01T12:00:00Z", actor="test", action="audit.test")
    (entry, body), = extend_canonical(41, head, [record])
    assert entry["hash"] == hashlib.sha256(_json({"seq": 42, "prev_hash": head,
                                                  "record_sha256": hashlib.sha256(body).hexdigest()})).hexdigest()


def _group(**fields: Any) -> dict[str, Any]:
    return built_record(KIND, time="2026-12-01T12:00:00Z", actor="share", record_id=None,
                        subject="lt1_TestchildExampleAaaaaaaaaaaaa", event_id="5afe0000-0000-4000-8000-000000000024",
                        event_type="person.identified", protocol_id="exampleshire-mash-isp", protocol_version="1.5.0",
                        **fields)


def test_a_groups_decisions_are_the_builders_and_share_no_list() -> None:
    group = _group(withheld=[{"subscriber": "early_help"}, {"subscriber": "school_dsl", "reason": "withheld: test"},
                             {"subscriber": "police_ppu"}])
    made, built = expand(group), _old_expand(group)
    assert made == built and [list(r) for r in made] == [list(r) for r in built]  # same fields, same order
    made[0]["lawful_basis"].append("x")  # type: ignore[attr-defined]
    made[1]["fields_masked"]["y"] = "z"  # type: ignore[index]
    assert made[2] == built[2] and made[1]["lawful_basis"] == []


def test_a_group_whose_default_reason_the_schema_refuses_is_refused_whole(tmp_path: Path) -> None:
    """The group is valid, but one decision it stands for is not: its default reason would carry a run of ten digits
    (a subscriber name the subscriber pattern allows). The batch check of the decisions the store makes must see it."""
    from broker.audit.store import open_audit_store

    group = _group(withheld=[{"subscriber": "early_help"}, {"subscriber": "s1234567890"}])
    assert validate_record(group) == []
    store = open_audit_store(tmp_path, create_key=True)
    fine = built_record("admin_action", time="2026-12-01T12:00:00Z", actor="test", action="audit.test")
    with pytest.raises(AuditRecordError, match="record 1: reason: does not match"):
        store.append([fine, group])
    skipped: list[int] = []
    assert [e["record"]["kind"] for e in store.append([fine, group], on_invalid=lambda i, _: skipped.append(i))] == [
        "admin_action"]
    assert skipped == [1] and store.head()[0] == 1
