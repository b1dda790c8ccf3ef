"""Consent records moved from the first, per-child register: read the stricter way until an IG officer reviews them,
listed for review (tokens and codes only), reviewed once, and counted by `mash-broker doctor`.

The first register kept a status and an objection flag per child. A family's "no" recorded as a refused status may
in law have been an Art 21 objection (it needs no particular words), which under public task sends a share to a
person instead of letting it go; the reverse (a flag that was a refusal of consent) is reviewable too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from broker.config import Settings
from broker.ops.checks import check_consent_review
from broker.policy import ConsentState, decide
from broker.policy.consent import ConsentRecord
from broker.policy.consent_review import REVIEWED_BY, stricter_reading
from broker.stores.consent import MIGRATED_BY, AlreadyReviewed, ConsentRegister, NotMigrated
from tests.policy.conftest import base_protocol, compile_data, make_event

REFUSED, FLAGGED, GIVEN, NEWER = ("lt1_" + c * 32 for c in "rfgn")
PUBLIC_TASK = ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "children_act_1989_s17"]


def _first_register(path: Path, rows: list[tuple[str, str, int, str]]) -> None:
    """The first version's table on disk, as a deployment upgrading has it."""
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE consent (subject TEXT PRIMARY KEY, status TEXT NOT NULL, objection INTEGER NOT NULL,"
                " recorded_on TEXT)")
    old.executemany("INSERT INTO consent VALUES (?, ?, ?, ?)", rows)
    old.commit()
    old.close()


@pytest.fixture()
def register(tmp_path: Path) -> ConsentRegister:
    _first_register(tmp_path / "consent.sqlite", [(REFUSED, "refused", 0, "2026-03-01"),
                                                  (FLAGGED, "not_sought", 1, "2026-03-02"),
                                                  (GIVEN, "given", 0, "2026-03-03"),
                                                  (NEWER, "withdrawn", 0, "2026-03-04")])
    reg = ConsentRegister(tmp_path / "consent.sqlite")
    # since the move, IG recorded the NEWER child's objection as lifted: that record stands for its kind
    reg.put(NEWER, ConsentState(records=[ConsentRecord("objection", "lifted", recorded_on="2026-06-01",
                                                       recorded_by="ig_officer")]))
    yield reg
    reg.close()


def _hub_rule(**extra: object) -> dict:
    data = base_protocol()
    data["rules"][0].update({"event_types": ["social_care.referral"], "source_agencies": ["social_care"],
                             "lawful_basis": PUBLIC_TASK, **extra})
    return data


REFERRAL = make_event("social_care.referral", "social_care", {"referral_date": "2026-05-01"})


def test_an_unreviewed_migrated_refusal_sends_a_public_task_share_to_a_person(register) -> None:
    """Read as a data protection refusal alone it would have no legal effect and the share would go ahead; read
    the stricter way (a possible objection) a person decides. Before this reading the share was delivered."""
    protocol = compile_data(_hub_rule())
    d = decide(protocol, REFERRAL, "hub", consent=register.get(REFUSED))
    assert d.outcome == "withhold" and d.human_decision is not None and d.human_decision.restriction == "objection"
    # and every consent kind reads as refused: a consensual service does not take the family on
    state = register.get(REFUSED)
    assert {k: state.state(k) for k in ("data_protection", "confidentiality", "service_agreement")} == {
        "data_protection": "refused", "confidentiality": "refused", "service_agreement": "refused"}
    service = compile_data(_hub_rule(requires_service_agreement=True))
    assert decide(service, REFERRAL, "hub", consent=register.get(REFUSED)).outcome == "withhold"


def test_a_newer_record_of_a_kind_stands_against_the_presumption(register) -> None:
    state = register.get(NEWER)
    assert not state.objection  # IG's later "lifted" is the objection record, not the presumption
    assert state.status == "withdrawn" and state.state("confidentiality") == "withdrawn"
    d = decide(compile_data(_hub_rule()), REFERRAL, "hub", consent=state)
    assert d.outcome == "deliver" and d.human_decision is None


def test_a_migrated_consent_that_says_yes_is_read_as_moved(register) -> None:
    state = register.get(GIVEN)
    assert state.status == "given" and not state.objection and state.state("service_agreement") in (None, "unknown")
    assert stricter_reading(state.records) == tuple(state.records)


def test_ig_lists_what_awaits_review_with_tokens_and_codes_only(register) -> None:
    assert register.awaiting_review() == 3  # REFUSED, FLAGGED, NEWER: GIVEN says no "no"
    listed = {c.subject: c for c in register.migrated_cases()}
    assert set(listed) == {REFUSED, FLAGGED, NEWER}
    assert listed[REFUSED].view()["records"] == [{"kind": "data_protection", "state": "refused",
                                                  "recorded_on": "2026-03-01"}]
    assert GIVEN in {c.subject for c in register.migrated_cases(include_reviewed=True)}


def test_reclassifying_a_refusal_as_a_data_protection_refusal_ends_the_presumption(register) -> None:
    case = register.review(REFUSED, "data_protection_refusal", "2026-07-01", "ig_auditor:k_test")
    assert (case.outcome, case.reviewed_by, case.awaiting, case.records) == (
        "data_protection_refusal", "ig_auditor:k_test", False, ())
    state = register.get(REFUSED)
    assert [(r.kind, r.state, r.recorded_on, r.recorded_by) for r in state.records] == [
        ("data_protection", "refused", "2026-03-01", REVIEWED_BY)]
    d = decide(compile_data(_hub_rule()), REFERRAL, "hub", consent=state)
    assert d.outcome == "deliver"  # a consent refusal has no effect under public task: the law's own reading
    assert register.awaiting_review() == 2
    with pytest.raises(AlreadyReviewed):
        register.review(REFUSED, "objection", "2026-07-02", "admin:k_test")
    assert register.get(REFUSED) == state  # the second review changed nothing


def test_the_reverse_an_objection_flag_found_to_be_a_refusal_of_consent(register) -> None:
    register.review(FLAGGED, "data_protection_refusal", "2026-07-01", "admin:k_test")
    state = register.get(FLAGGED)
    assert not state.objection and state.status == "refused"
    consent_rule = compile_data(_hub_rule(lawful_basis=["uk_gdpr_art6_1_a", "uk_gdpr_art9_2_a",
                                                        "dpa2018_sch1_para29"]))
    assert decide(consent_rule, REFERRAL, "hub", consent=state).outcome == "withhold"  # honoured as a refusal


def test_reclassifying_as_an_objection_or_confirming(register) -> None:
    register.review(NEWER, "objection", "2026-07-01", "ig_auditor:k_test")
    assert not register.get(NEWER).objection  # IG's newer "lifted" stands: a review never overwrites a later record
    register.review(FLAGGED, "confirmed", "2026-07-01", "ig_auditor:k_test")
    confirmed = register.get(FLAGGED)
    assert confirmed.objection and confirmed.status == "not_sought"  # as moved, no presumption added
    assert {r.recorded_by for r in confirmed.records} == {MIGRATED_BY}


def test_a_review_needs_migrated_records_and_something_to_reclassify(register) -> None:
    with pytest.raises(NotMigrated):
        register.review("lt1_" + "z" * 32, "objection", "2026-07-01", "admin:k_test")
    with pytest.raises(ValueError, match="confirm them instead"):
        register.review(GIVEN, "objection", "2026-07-01", "admin:k_test")
    with pytest.raises(ValueError, match="outcome must be one of"):
        register.review(REFUSED, "consent", "2026-07-01", "admin:k_test")
    assert register.awaiting_review() == 3  # nothing half-recorded


def test_doctor_warns_how_many_await_review(tmp_path, register) -> None:
    settings = Settings(data_dir=tmp_path)
    result = check_consent_review(settings)
    assert result.status == "warning" and result.detail.startswith("3 children's consent records")
    assert REFUSED not in result.detail
    for token in (REFUSED, FLAGGED, NEWER):
        register.review(token, "confirmed", "2026-07-01", "admin:k_test")
    assert check_consent_review(settings).status == "ok"
    assert check_consent_review(Settings(data_dir=tmp_path / "none")).status == "info"
