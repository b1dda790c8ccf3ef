"""The recorded determinations register and the identity register's dates of birth, on SQLite and on PostgreSQL:
what is in force for a child (under any token it carried), what ends it, and that erasure leaves nothing readable.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from broker.crypto.errors import DecryptionFailed
from broker.crypto.factory import open_key_provider
from broker.pipeline.identify import Identity
from broker.pipeline.register_facts import (
    BatchFacts,
    Determined,
    birth_dates,
    child_birth_dates,
    children,
    plan_birth_dates,
)
from broker.pipeline.resolve import Resolution
from broker.policy.facts import CaseFacts
from broker.service.facts import open_birth_date, seal_birth_date
from broker.stores.determinations import CASE_CLOSED, SUPERSEDED, DeterminationRegister
from broker.stores.identities import IdentityRegister
from broker.stores.migrate import REGISTERS, migrate

CHILD, OLD, OTHER = "lt1_" + "c" * 32, "lt1_" + "o" * 32, "lt1_" + "x" * 32
AT = "2026-11-23T10:00:00.000Z"


def _request(register: DeterminationRegister, subject: str, partners: list[str], at: str = AT):
    return register.request_s47(subject, requested_by="exampleshire-csc", partners=partners, enquiry_ref="S47-0001",
                                recorded_by="decision_maker:exampleshire-csc:k_1", at=at)


def test_an_s47_request_is_in_force_until_withdrawn_and_survives_a_restart(tmp_path: Path, store_url) -> None:
    register = DeterminationRegister(tmp_path / "determinations.sqlite", store_url)
    made = _request(register, CHILD, ["exampleshire-icb", "riverside-medical-practice"])
    _request(register, CHILD, ["exampleshire-icb"])
    register.close()
    reopened = DeterminationRegister(tmp_path / "determinations.sqlite", store_url)
    found = reopened.in_force({CHILD: [CHILD], OTHER: [OTHER]})
    assert found == {CHILD: Determined(frozenset({"exampleshire-icb", "riverside-medical-practice"}), None,
                                       (CHILD,))}
    ended = reopened.end_s47(made.request_id, by="admin:k_2", reason="recorded_in_error", at=AT)
    assert not ended.active and ended.end_reason == "recorded_in_error"
    assert reopened.in_force({CHILD: [CHILD]})[CHILD].s47_requested_of == {"exampleshire-icb"}
    try:
        reopened.end_s47(made.request_id, by="admin:k_2", reason="recorded_in_error", at=AT)
    except Exception as exc:
        assert type(exc).__name__ == "AlreadyEnded"
    else:
        raise AssertionError("a second withdrawal must be refused")


def test_a_closed_case_ends_every_request_of_the_child_for_good(tmp_path: Path, store_url) -> None:
    register = DeterminationRegister(tmp_path / "determinations.sqlite", store_url)
    _request(register, CHILD, ["exampleshire-icb"])
    _request(register, OLD, ["riverside-medical-practice"])  # under a token since folded into the child's
    _request(register, OTHER, ["exampleshire-icb"])
    ended = register.end_closed([CHILD, OLD], at=AT)
    assert {r.subject for r in ended} == {CHILD, OLD} and {r.end_reason for r in ended} == {CASE_CLOSED}
    assert register.in_force({CHILD: [CHILD, OLD]}) == {}
    assert register.end_closed([CHILD], at=AT) == []  # nothing left to end
    assert register.in_force({OTHER: [OTHER]})[OTHER].s47_requested_of == {"exampleshire-icb"}


def test_an_adult_at_risk_determination_supersedes_the_last_and_withdraws_to_unknown(tmp_path, store_url) -> None:
    register = DeterminationRegister(tmp_path / "determinations.sqlite", store_url)
    first, before = register.determine(CHILD, at_risk=True, reason="care_act_s42_enquiry", reference=None,
                                       recorded_by="a", at="2026-11-23T10:00:00.000Z")
    assert before is None and register.in_force({CHILD: [CHILD]})[CHILD].adult_at_risk is True
    _, before = register.determine(CHILD, at_risk=False, reason="criteria_not_met", reference="SA-77",
                                   recorded_by="b", at="2026-11-23T11:00:00.000Z")
    assert before.determination_id == first.determination_id
    history = {r.view()["id"]: r for r in register.listed([CHILD])}
    assert history[first.determination_id].end_reason == SUPERSEDED
    assert register.in_force({CHILD: [CHILD]})[CHILD].adult_at_risk is False
    register.withdraw_determination(CHILD, by="b", reason="recorded_in_error", at="2026-11-23T12:00:00.000Z")
    assert register.in_force({CHILD: [CHILD]}) == {} and register.adult_at_risk(CHILD) is None


def test_what_was_recorded_under_a_folded_token_still_counts_for_the_child(tmp_path, store_url) -> None:
    identities = IdentityRegister(tmp_path / "identities.sqlite", store_url)
    identities.apply([Resolution(CHILD, links=(Identity("upn", CHILD),)),
                      Resolution(OLD, links=(Identity("la:la201", OLD),))], "t1")
    identities.apply([Resolution(CHILD, merged=(OLD,))], "t2")
    known = identities.known([CHILD])
    tied = children([CHILD], known.child_of, known.members)
    assert set(tied[CHILD]) == {CHILD, OLD}
    register = DeterminationRegister(tmp_path / "determinations.sqlite", store_url)
    _request(register, OLD, ["exampleshire-icb"])
    register.determine(OLD, at_risk=True, reason="dpa_sch1_para18_3", reference=None, recorded_by="a", at=AT)
    facts = BatchFacts(register.in_force(tied), child_birth_dates(tied, {OLD: "2015-03-04"}))
    assert facts.for_event(CHILD, True).s47_requested_of == {"exampleshire-icb"}
    assert facts.for_event(CHILD, True).adult_at_risk is True
    assert facts.for_event(CHILD, True).birth_date == date(2015, 3, 4)
    assert facts.for_event(CHILD, False).s47_requested_of == frozenset()  # the case closed in this batch
    assert facts.for_event(OTHER, None) == CaseFacts()


def test_a_date_of_birth_is_learned_once_and_two_dates_leave_it_unknown() -> None:
    learned, conflicts = plan_birth_dates([(CHILD, "2015-03-04"), (OTHER, "2012-01-01"), (CHILD, "2015-03-04")], {})
    assert learned == [(CHILD, "2015-03-04"), (OTHER, "2012-01-01")] and conflicts == []
    assert plan_birth_dates([(CHILD, "2015-03-04")], {CHILD: "2015-03-04"}) == ([], [])  # the same again
    assert plan_birth_dates([(CHILD, "2015-03-05")], {CHILD: "2015-03-04"}) == ([], [CHILD])
    assert plan_birth_dates([(CHILD, "2015-03-04")], {CHILD: None}) == ([], [])  # in conflict stays so
    assert plan_birth_dates([(CHILD, "2015-03-04"), (CHILD, "2016-01-01")], {}) == ([], [CHILD])  # one request
    tied = {CHILD: [CHILD, OLD]}
    assert child_birth_dates(tied, {CHILD: "2015-03-04", OLD: "2015-03-04"}) == {CHILD: date(2015, 3, 4)}
    assert child_birth_dates(tied, {CHILD: "2015-03-04", OLD: "2016-05-05"}) == {}  # a folded token disagrees
    assert child_birth_dates(tied, {CHILD: "2015-03-04", OLD: None}) == {}


def test_the_register_keeps_sealed_dates_and_marks_conflicts_for_good(tmp_path, store_url) -> None:
    identities = IdentityRegister(tmp_path / "identities.sqlite", store_url)
    identities.record_birth_dates([(CHILD, "sealed-1"), (OTHER, "sealed-2")], [], "t1")
    identities.record_birth_dates([(CHILD, "sealed-3")], [], "t2")  # the old one no longer opened: replaced
    assert identities.sealed_birth_dates([CHILD, OTHER, OLD]) == {CHILD: "sealed-3", OTHER: "sealed-2"}
    identities.record_birth_dates([], [OTHER], "t3")
    identities.record_birth_dates([(OTHER, "sealed-4")], [], "t4")  # a conflict is not undone by a new date
    assert identities.sealed_birth_dates([OTHER]) == {OTHER: None}


def test_a_date_of_birth_is_sealed_to_its_child_and_gone_with_the_childs_keys(tmp_path: Path) -> None:
    keys = open_key_provider(tmp_path, create=True)
    sealed = seal_birth_date(keys, CHILD, "2015-03-04")
    assert "2015-03-04" not in sealed and b"2015-03-04" not in base64_bytes(sealed)
    assert open_birth_date(keys, CHILD, sealed) == "2015-03-04"
    with pytest.raises(DecryptionFailed):  # copied to another child's row
        open_birth_date(keys, OTHER, sealed)
    keys.shred(CHILD)
    assert open_birth_date(keys, CHILD, sealed) is None


def base64_bytes(sealed: str) -> bytes:
    import base64

    return base64.b64decode(sealed.partition(":")[2])


def test_birth_dates_come_from_events_that_carry_one() -> None:
    def event(token: str, child: dict) -> dict:
        return {"subject": {"linkage": {"token": token}, "child": child}}

    events = [event(CHILD, {"date_of_birth": "2015-03-04"}), event(OTHER, {"expected_date_of_birth": "2027-01-01"}),
              event(OLD, {}), event(OLD, {"date_of_birth": "not a date"})]
    assert birth_dates(events) == [(CHILD, "2015-03-04")]


def _plain_sqlite_holds(folder: Path, needle: bytes) -> bool:
    return any(needle in path.read_bytes() for path in folder.iterdir() if path.is_file())


def test_erasure_deletes_the_date_of_birth_and_the_determinations_beyond_reading(tmp_path, store_url) -> None:
    folder = tmp_path / "data"
    identities = IdentityRegister(folder / "identities.sqlite", store_url)
    register = DeterminationRegister(folder / "determinations.sqlite", store_url)
    identities.record_birth_dates([(CHILD, "SEALED-CHILD"), (OLD, "SEALED-OLD"), (OTHER, "SEALED-OTHER")], [], "t")
    _request(register, CHILD, ["exampleshire-icb"])
    register.determine(OLD, at_risk=True, reason="care_act_s42_enquiry", reference="ASC-REF-4711",
                       recorded_by="a", at=AT)
    _request(register, OTHER, ["exampleshire-icb"])
    assert identities.forget([CHILD, OLD]) == 2
    assert register.forget([CHILD, OLD]) == 2
    assert identities.sealed_birth_dates([CHILD, OLD]) == {}
    assert register.listed([CHILD, OLD]) == []
    assert register.in_force({OTHER: [OTHER]})[OTHER].s47_requested_of == {"exampleshire-icb"}  # others stay
    if store_url is None:  # SQLite: not in the file, nor its write-ahead log, nor free pages
        identities.close()
        register.close()
        assert not _plain_sqlite_holds(folder, b"SEALED-CHILD") and not _plain_sqlite_holds(folder, b"SEALED-OLD")
        assert not _plain_sqlite_holds(folder, b"ASC-REF-4711")
        assert _plain_sqlite_holds(folder, b"SEALED-OTHER")  # the check can see what is there


def test_stores_migrate_carries_both_tables_of_each_register(tmp_path, pg_database) -> None:
    assert DeterminationRegister in REGISTERS
    assert IdentityRegister.TABLES == ("identity", "birth_dates", "registrations")
    register = DeterminationRegister(tmp_path / DeterminationRegister.FILE)
    _request(register, CHILD, ["exampleshire-icb"])
    register.determine(CHILD, at_risk=True, reason="care_act_s42_enquiry", reference=None, recorded_by="a", at=AT)
    register.close()
    identities = IdentityRegister(tmp_path / IdentityRegister.FILE)
    identities.record_birth_dates([(CHILD, "SEALED")], [], "t")
    identities.close()
    copied = migrate(tmp_path, pg_database)
    assert copied[DeterminationRegister.FILE] == 2 and copied[IdentityRegister.FILE] == 1
    moved = DeterminationRegister(tmp_path / "gone.sqlite", pg_database)
    assert moved.in_force({CHILD: [CHILD]})[CHILD] == Determined(frozenset({"exampleshire-icb"}), True, (CHILD,))
    assert IdentityRegister(tmp_path / "gone.sqlite", pg_database).sealed_birth_dates([CHILD]) == {CHILD: "SEALED"}
