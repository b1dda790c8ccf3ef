"""The referral register on real SQLite and PostgreSQL: idempotent referrals, one decision each, listing by
decider, and a resend's new position taken only while pending."""

from __future__ import annotations

import dataclasses

import pytest

from broker.stores.decisions import AlreadyDecided, Referral, ReferralRegister
from broker.stores.migrate import REGISTERS

TOKEN = "lt1_" + "C" * 32


def _referral(n: int, deciders: tuple[str, ...] = ("la",), position: int = 10) -> Referral:
    return Referral(f"0000000{n}-0000-5000-8000-000000000000", "hub", f"e000000{n}-0000-5000-8000-000000000000",
                    "health.urgent_care_attendance", TOKEN, "hub-health", "objection", "2026-04-20",
                    ("uk_gdpr_art6_1_e", "children_act_1989_s17"), "withheld pending a recorded human decision",
                    "health", deciders, 2, position, f"2026-05-0{n}T10:00:00.000Z")


@pytest.fixture(params=["sqlite", "postgresql"])
def register(request, tmp_path):
    """The same SQL on both databases (PostgreSQL: a throwaway cluster, skipped without its binaries)."""
    url = request.getfixturevalue("pg_database") if request.param == "postgresql" else None
    reg = ReferralRegister(tmp_path / ReferralRegister.FILE, url)
    yield reg
    reg.close()


def test_the_register_is_migrated_with_the_others() -> None:
    assert ReferralRegister in REGISTERS


def test_a_referral_raised_again_adds_nothing_and_a_decision_is_taken_once(register) -> None:
    first = _referral(1)
    register.refer([first, first])
    register.refer([first])
    assert register.count(status=None) == 1 and register.get(first.referral_id) == first
    decided = register.decide(first.referral_id, status="withhold", decision_id="d1", decided_at="2026-05-02T10:00Z",
                              decided_by="decision_maker:la:k_1", reason="no grounds", withheld=None)
    assert (decided.status, decided.decided_by, decided.decision_reason) == \
        ("withhold", "decision_maker:la:k_1", "no grounds")
    with pytest.raises(AlreadyDecided):
        register.decide(first.referral_id, status="share", decision_id="d2", decided_at="2026-05-02T11:00Z",
                        decided_by="decision_maker:la:k_2", reason="again", withheld=None)
    assert register.get(first.referral_id).decision_id == "d1"
    register.refer([dataclasses.replace(first, position=99)])  # a redelivery after the decision changes nothing
    assert register.get(first.referral_id).position == 10 and register.get(first.referral_id).status == "withhold"
    assert register.listed() == []


def test_a_pending_referral_takes_a_resends_position_and_lists_by_decider(register) -> None:
    register.refer([_referral(1), _referral(2, deciders=("force", "la"))])
    register.refer([_referral(1, position=42)])
    assert register.get(_referral(1).referral_id).position == 42
    assert [r.referral_id for r in register.listed(deciders={"force"})] == [_referral(2).referral_id]
    assert len(register.listed(deciders={"la"})) == 2 and register.listed(deciders={"gp"}) == []
