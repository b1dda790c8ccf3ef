"""The consent register keyed by kind and data subject: old per-child rows migrate to what they meant, a merge keeps
the stricter record of each kind and person, and a related person's record never overwrites the child's."""

from __future__ import annotations

import sqlite3

import pytest

from broker.policy import ConsentState
from broker.policy.consent import ConsentRecord, stricter
from broker.stores.consent import MIGRATED_BY, ConsentRegister

CHILD_A, CHILD_B = "lt1_" + "a" * 32, "lt1_" + "b" * 32


def test_old_per_child_rows_become_the_childs_data_protection_and_objection_records(tmp_path) -> None:
    path = tmp_path / "consent.sqlite"
    old = sqlite3.connect(path)  # the first version's table, as a deployment has it on disk
    old.execute("CREATE TABLE consent (subject TEXT PRIMARY KEY, status TEXT NOT NULL, objection INTEGER NOT NULL,"
                " recorded_on TEXT)")
    old.executemany("INSERT INTO consent VALUES (?, ?, ?, ?)",
                    [(CHILD_A, "withdrawn", 1, "2026-10-01"), (CHILD_B, "given", 0, "2026-09-01")])
    old.commit()
    old.close()

    register = ConsentRegister(path)
    a = register.get(CHILD_A)
    assert (a.status, a.objection, a.recorded_on, a.restriction) == ("withdrawn", True, "2026-10-01", "objection")
    # as moved (what `get` reads from them until IG reviews them: tests/unit/test_consent_v1_review.py)
    [moved] = [c for c in register.migrated_cases() if c.subject == CHILD_A]
    assert {(r.kind, r.state, r.subject, r.recorded_by) for r in moved.records} == {
        ("data_protection", "withdrawn", "child", MIGRATED_BY), ("objection", "raised", "child", MIGRATED_BY)}
    assert register.get(CHILD_B).status == "given" and not register.get(CHILD_B).objection
    register.close()
    again = ConsentRegister(path)  # reopening moves nothing twice and loses nothing
    assert again.get(CHILD_A) == a
    assert again.db.query("SELECT COUNT(*) FROM consent") == [(0,)]
    again.close()


def test_a_related_persons_record_sits_beside_the_childs_and_a_write_replaces_only_its_own_key(tmp_path) -> None:
    register = ConsentRegister(tmp_path / "consent.sqlite")
    register.put(CHILD_A, ConsentState("given", recorded_on="2026-05-01"))
    parent = ConsentRecord("objection", "raised", "parent", "RP-0001", "2026-05-02", "social_worker")
    register.put(CHILD_A, ConsentState(records=[parent]))
    got = register.get(CHILD_A)
    assert got.status == "given" and not got.objection  # the parent's objection is not the child's
    assert got.for_people() == (parent,)
    register.put(CHILD_A, ConsentState(records=[ConsentRecord("objection", "lifted", "parent", "RP-0001")]))
    assert not register.get(CHILD_A).for_people()[0].restrictive and register.get(CHILD_A).status == "given"


def test_a_merge_keeps_the_stricter_record_per_kind_and_person(tmp_path) -> None:
    register = ConsentRegister(tmp_path / "consent.sqlite")
    register.put(CHILD_A, ConsentState(records=[ConsentRecord("service_agreement", "given"),
                                                ConsentRecord("objection", "lifted", "parent")]))
    register.put(CHILD_B, ConsentState(records=[ConsentRecord("service_agreement", "withdrawn"),
                                                ConsentRecord("objection", "raised", "parent"),
                                                ConsentRecord("confidentiality", "given")]))
    register.fold(CHILD_B, into=CHILD_A)
    merged = register.get(CHILD_A)
    assert merged.state("service_agreement") == "withdrawn" and merged.state("confidentiality") == "given"
    assert merged.for_people()[0].state == "raised"


def test_stricter_keeps_the_old_semantics_for_the_old_fields() -> None:
    assert stricter(ConsentState("given"), ConsentState("withdrawn")).status == "withdrawn"
    assert stricter(ConsentState("unknown"), ConsentState("given")).status == "given"
    assert stricter(ConsentState("not_sought"), ConsentState("given")).status == "not_sought"
    both = stricter(ConsentState("refused"), ConsentState("given", objection=True, recorded_on="2026-01-02"))
    assert (both.status, both.objection, both.restriction, both.recorded_on) == ("refused", True, "objection",
                                                                                 "2026-01-02")


@pytest.mark.parametrize("bad", [
    {"kind": "objection", "state": "given"},  # an objection is raised or lifted, never "given"
    {"kind": "data_protection", "state": "raised"},
    {"kind": "consent", "state": "given"},
    {"kind": "objection", "state": "raised", "subject": "neighbour"},
    {"kind": "objection", "state": "raised", "subject": "child", "ref": "RP-1"},
])
def test_records_that_mean_nothing_in_law_are_refused_without_echoing_them(bad) -> None:
    with pytest.raises(ValueError) as exc:
        ConsentState.from_mapping({"records": [bad]})
    assert "RP-1" not in str(exc.value) and "neighbour" not in str(exc.value)
