"""The identity register on SQLite, and what a merge carries over: consent (strictest wins) and an open case."""

from __future__ import annotations

from broker.pipeline.identify import Identity
from broker.pipeline.resolve import Resolution
from broker.policy import ConsentState
from broker.stores.cases import CaseRegister
from broker.stores.consent import ConsentRegister
from broker.stores.identities import IdentityRegister

UPN, LA, OTHER = "lt1_" + "u" * 32, "lt1_" + "l" * 32, "lt1_" + "o" * 32


def test_links_and_merges_survive_a_restart_and_hold_tokens_only(tmp_path) -> None:
    path = tmp_path / "identities.sqlite"
    register = IdentityRegister(path)
    register.apply([Resolution(UPN, links=(Identity("upn", UPN),)),
                    Resolution(LA, links=(Identity("la:la201", LA),))], "2026-11-23T10:00:00Z")
    assert register.current(LA) == LA
    register.apply([Resolution(UPN, merged=(LA,))], "2026-11-23T10:01:00Z")
    register.close()

    reopened = IdentityRegister(path)
    known = reopened.known([LA])
    assert known.child_of == {UPN: UPN, LA: UPN}  # asking about one identity returns the whole child
    assert known.members == {UPN: {"upn": UPN, "la:la201": LA}}
    assert reopened.current(LA) == UPN and reopened.current(OTHER) == OTHER
    reopened.close()


def test_an_identifier_already_held_keeps_its_child(tmp_path) -> None:
    register = IdentityRegister(tmp_path / "identities.sqlite")
    register.apply([Resolution(UPN, links=(Identity("upn", UPN),))], "t1")
    register.apply([Resolution(OTHER, links=(Identity("upn", UPN), Identity("nhs", OTHER)))], "t2")  # a lost race
    assert register.current(UPN) == UPN and register.current(OTHER) == OTHER


def test_known_reads_many_identities_in_chunks(tmp_path) -> None:
    register = IdentityRegister(tmp_path / "identities.sqlite")
    tokens = [f"lt1_{i:032d}" for i in range(1000)]
    register.apply([Resolution(t, links=(Identity("upn", t),)) for t in tokens], "t")
    assert len(register.known(tokens).child_of) == 1000


def test_a_merge_carries_the_stricter_consent_to_the_surviving_token(tmp_path) -> None:
    consent = ConsentRegister(tmp_path / "consent.sqlite")
    consent.put(LA, ConsentState("withdrawn", False, "2026-10-01"))
    consent.put(UPN, ConsentState("given", False, "2026-09-01"))
    consent.fold(LA, into=UPN)
    assert consent.get(UPN) == ConsentState("withdrawn", False, "2026-10-01")

    consent.put(OTHER, ConsentState("given", True, "2026-08-01"))  # an objection, recorded under another token
    consent.fold(OTHER, into=UPN)
    assert consent.get(UPN).restriction == "objection" and consent.get(UPN).status == "withdrawn"

    fresh = "lt1_" + "f" * 32
    consent.fold(fresh, into=UPN)  # nothing recorded under the absorbed token: nothing changes
    assert consent.get(UPN).status == "withdrawn"


def test_a_case_open_under_either_token_is_open_after_a_merge(tmp_path) -> None:
    cases = CaseRegister(tmp_path / "cases.sqlite")
    cases.set(LA, True, "e1")
    cases.fold(LA, into=UPN, event_id="e2")
    assert cases.is_open(UPN) is True
    cases.set(OTHER, False, "e3")
    cases.fold(OTHER, into=UPN, event_id="e4")  # a closed case elsewhere does not close this one
    assert cases.is_open(UPN) is True
