"""The registers on SQLite and on PostgreSQL: the identity register, what a merge carries over (consent, strictest
wins; an open case), the delivered log, cursors and first-served copies."""

from __future__ import annotations

import pytest

from broker.pipeline.identify import Identity
from broker.pipeline.resolve import Resolution
from broker.policy import ConsentState
from broker.stores.cases import CaseRegister
from broker.stores.consent import ConsentRegister
from broker.stores.cursors import CursorStore
from broker.stores.delivered import DeliveredLog
from broker.stores.identities import IdentityRegister
from broker.stores.served import FirstServed

UPN, LA, OTHER = "lt1_" + "u" * 32, "lt1_" + "l" * 32, "lt1_" + "o" * 32


def test_links_and_merges_survive_a_restart_and_hold_tokens_only(tmp_path, store_url) -> None:
    path = tmp_path / "identities.sqlite"
    register = IdentityRegister(path, store_url)
    register.apply([Resolution(UPN, links=(Identity("upn", UPN),)),
                    Resolution(LA, links=(Identity("la:la201", LA),))], "2026-11-23T10:00:00Z")
    assert register.current(LA) == LA
    register.apply([Resolution(UPN, merged=(LA,))], "2026-11-23T10:01:00Z")
    register.close()

    reopened = IdentityRegister(path, store_url)
    known = reopened.known([LA])
    assert known.child_of == {UPN: UPN, LA: UPN}  # asking about one identity returns the whole child
    assert known.members == {UPN: {"upn": UPN, "la:la201": LA}}
    assert reopened.current(LA) == UPN and reopened.current(OTHER) == OTHER
    reopened.close()


def test_an_identifier_already_held_keeps_its_child(tmp_path, store_url) -> None:
    register = IdentityRegister(tmp_path / "identities.sqlite", store_url)
    register.apply([Resolution(UPN, links=(Identity("upn", UPN),))], "t1")
    register.apply([Resolution(OTHER, links=(Identity("upn", UPN), Identity("nhs", OTHER)))], "t2")  # a lost race
    assert register.current(UPN) == UPN and register.current(OTHER) == OTHER


def test_known_reads_many_identities_in_chunks(tmp_path, store_url) -> None:
    register = IdentityRegister(tmp_path / "identities.sqlite", store_url)
    tokens = [f"lt1_{i:032d}" for i in range(1000)]
    register.apply([Resolution(t, links=(Identity("upn", t),)) for t in tokens], "t")
    assert len(register.known(tokens).child_of) == 1000


def test_a_merge_carries_the_stricter_consent_to_the_surviving_token(tmp_path, store_url) -> None:
    consent = ConsentRegister(tmp_path / "consent.sqlite", store_url)
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


def test_a_case_open_under_either_token_is_open_after_a_merge(tmp_path, store_url) -> None:
    cases = CaseRegister(tmp_path / "cases.sqlite", store_url)
    cases.set(LA, True, "e1")
    cases.fold(LA, into=UPN, event_id="e2")
    assert cases.is_open(UPN) is True
    cases.set(OTHER, False, "e3")
    cases.fold(OTHER, into=UPN, event_id="e4")  # a closed case elsewhere does not close this one
    assert cases.is_open(UPN) is True


def test_the_delivered_log_answers_a_batch_and_ignores_a_repeat(tmp_path, store_url) -> None:
    log = DeliveredLog(tmp_path / "delivered.sqlite", store_url)
    log.mark([("hub", "e1", "d1"), ("gp", "e1", "d2")])
    log.mark([("hub", "e1", "d9")])  # a redelivered batch: the first decision stays
    assert log.sent(["hub", "gp", "school"], ["e1", "e2"]) == {("hub", "e1"), ("gp", "e1")}
    assert log.db.query("SELECT decision_id FROM delivered WHERE subscriber = ?", ("hub",)) == [("d1",)]


def test_cursors_survive_a_restart(tmp_path, store_url) -> None:
    cursors = CursorStore(tmp_path / "cursors.sqlite", store_url)
    assert cursors.get("hub") is None
    cursors.put("hub", "c1", "t1")
    cursors.put("hub", "c2", "t2")
    cursors.close()
    assert CursorStore(tmp_path / "cursors.sqlite", store_url).get("hub") == "c2"


def test_the_first_served_copy_of_an_event_wins(tmp_path, store_url) -> None:
    served = FirstServed(tmp_path / "first-served.sqlite", store_url)
    big = 2**40  # Kafka offsets are 64-bit
    assert served.keep("hub", [("e1", 0, big), ("e2", 0, big + 1), (None, 0, big + 2)]) == [True, True, True]
    assert served.keep("hub", [("e1", 0, big), ("e1", 0, big + 9)]) == [True, False]  # the same copy again; a repeat
    assert served.keep("gp", [("e1", 0, big + 9)]) == [True]  # per subscriber


def test_sqlite_registers_move_into_postgresql_and_a_broker_will_not_start_beside_them(tmp_path, pg_database) -> None:
    from typer.testing import CliRunner

    from broker.cli.main import app
    from broker.config import Settings
    from broker.service.root import StartupFailed, load_local

    data = tmp_path / "data"
    consent = ConsentRegister(data / "consent.sqlite")
    consent.put(LA, ConsentState("withdrawn", True, "2026-10-01"))
    consent.close()
    identities = IdentityRegister(data / "identities.sqlite")
    identities.apply([Resolution(UPN, links=(Identity("upn", UPN), Identity("la:la201", LA)))], "t")
    identities.close()

    settings = Settings(data_dir=data, store_url=pg_database, dev_mode=True)
    with pytest.raises(StartupFailed, match="stores migrate"):  # IG's consent records must not be left behind
        load_local(settings)

    result = CliRunner().invoke(app, ["stores", "migrate", "--data-dir", str(data), "--url", pg_database])
    assert result.exit_code == 0, result.output
    # two rows for the child: its data protection consent and its objection
    assert "consent.sqlite: 2 rows" in result.output and "identities.sqlite: 2 rows" in result.output
    assert ConsentRegister(data / "consent.sqlite", pg_database).get(LA) == ConsentState("withdrawn", True,
                                                                                          "2026-10-01")
    assert IdentityRegister(data / "identities.sqlite", pg_database).current(LA) == UPN
    assert (data / "consent.sqlite.migrated").is_file() and not (data / "consent.sqlite").exists()
    load_local(settings)  # now it starts
