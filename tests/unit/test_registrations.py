"""The child's school and GP practice the identity register learns (issue 16): what Operation Encompass needs to find
a school the police notice never names. Pure planning, the sealed register, and what a decision reads from it."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from broker.crypto.errors import DecryptionFailed
from broker.crypto.factory import open_key_provider
from broker.pipeline.identify import Identity
from broker.pipeline.register_facts import Registration, child_registrations, plan_registrations, registrations
from broker.pipeline.resolve import Resolution
from broker.policy.conditions import registered_with
from broker.policy.facts import CaseFacts
from broker.policy.model import Subscriber
from broker.service.facts import learn_facts, open_registration, read_facts, seal_registration
from broker.stores.determinations import DeterminationRegister
from broker.stores.identities import IdentityRegister
from broker.stores.migrate import migrate

CHILD, OLD, OTHER = "lt1_" + "c" * 32, "lt1_" + "o" * 32, "lt1_" + "x" * 32
URN, NEW_URN, ODS = "999001", "999002", "Y99901"


def event(token: str, when: str, *, school: str | None = None, gp: str | None = None,
          payload: dict[str, Any] | None = None) -> dict[str, Any]:
    child: dict[str, Any] = {"given_names": ["Testchild"], "family_name": "Example"}
    if school:
        child["school"] = {"urn": school}
    if gp:
        child["gp_practice"] = {"ods_code": gp}
    return {"occurred_at": when, "subject": {"child": child, "linkage": {"token": token}}, "payload": payload or {}}


def school_sub(urn: str = URN) -> Subscriber:
    return Subscriber(name="oakfield_dsl", partner="oakfield-primary", role="school_dsl",
                      purposes=("school_safeguarding",), key_suite="x25519", delivery="sse", organisation={"urn": urn})


def test_only_the_childs_own_school_and_practice_are_learned() -> None:
    found = registrations([event(CHILD, "2026-09-07", school=URN, gp="y99901 "),
                           event(OTHER, "2026-09-07", payload={"destination_school": {"urn": NEW_URN}}),
                           event(OLD, "2026-09-07")])
    assert found == [(CHILD, Registration("school", URN, "2026-09-07")),
                     (CHILD, Registration("gp_practice", ODS, "2026-09-07"))]


def test_the_latest_record_wins_whatever_order_records_arrive_in() -> None:
    held = {CHILD: {"school": Registration("school", URN, "2026-09-07")}}
    moved = [(CHILD, Registration("school", NEW_URN, "2027-01-05T09:00:00Z"))]
    assert plan_registrations(moved, held) == moved  # the child moved school
    backfill = [(CHILD, Registration("school", NEW_URN, "2026-01-05"))]
    assert plan_registrations(backfill, held) == []  # last year's census does not move it back
    same = [(CHILD, Registration("school", URN, "2026-09-07"))]
    assert plan_registrations(same, held) == []  # nothing to write
    both = [(OTHER, Registration("school", NEW_URN, "2027-01-05")), (OTHER, Registration("school", URN, "2026-09-07"))]
    assert plan_registrations(both, {}) == [both[0]]  # within one request too


def test_a_merged_child_is_registered_where_its_latest_record_under_any_token_says() -> None:
    opened = {OLD: {"school": Registration("school", URN, "2026-09-07"),
                    "gp_practice": Registration("gp_practice", ODS, "2026-01-01")},
              CHILD: {"school": Registration("school", NEW_URN, "2027-01-05")}}
    assert child_registrations({CHILD: [CHILD, OLD]}, opened) == {CHILD: {"school": NEW_URN, "gp_practice": ODS}}


def test_registered_with_holds_on_the_registers_school_only_for_that_school() -> None:
    notice = event(CHILD, "2026-11-29T19:00:00Z")  # a police notice: no school named
    assert not registered_with(notice, "school", school_sub())
    assert registered_with(notice, "school", school_sub(), CaseFacts(school_urn=URN))
    assert not registered_with(notice, "school", school_sub(), CaseFacts(school_urn=NEW_URN))
    assert not registered_with(notice, "school", school_sub(""), CaseFacts(school_urn=URN))  # no URN: never
    assert not registered_with(notice, "gp_practice", school_sub(), CaseFacts(school_urn=URN))
    gp = Subscriber(name="riverside_gp", partner="riverside", role="gp_practice", purposes=(), key_suite="x25519",
                    delivery="sse", organisation={"ods_code": ODS})
    assert registered_with(notice, "gp_practice", gp, CaseFacts(gp_ods=ODS.lower()))


def test_a_sealed_registration_is_bound_to_its_child_and_kind(tmp_path: Path) -> None:
    keys = open_key_provider(tmp_path, create=True)
    reg = Registration("school", URN, "2026-09-07")
    sealed = seal_registration(keys, CHILD, reg)
    assert URN not in sealed and URN.encode() not in base64.b64decode(sealed.partition(":")[2])
    assert open_registration(keys, CHILD, "school", sealed) == reg
    with pytest.raises(DecryptionFailed):  # moved to another child's row
        open_registration(keys, OTHER, "school", sealed)
    with pytest.raises(DecryptionFailed):  # passed off as the child's GP practice
        open_registration(keys, CHILD, "gp_practice", sealed)


def test_intake_learns_and_a_decision_reads_the_latest_school_across_a_merge(tmp_path: Path) -> None:
    keys = open_key_provider(tmp_path, create=True)
    rt = SimpleNamespace(identities=IdentityRegister(tmp_path / IdentityRegister.FILE), keys=keys,
                         determinations=DeterminationRegister(tmp_path / DeterminationRegister.FILE))
    try:
        learn_facts(rt, [event(OLD, "2026-09-07", school=URN, gp=ODS)], "t1")
        learn_facts(rt, [event(CHILD, "2027-01-05", school=NEW_URN)], "t2")
        learn_facts(rt, [event(CHILD, "2026-02-01", school="999003")], "t3")  # older: ignored
        rt.identities.apply([Resolution(CHILD, (Identity("nhs", CHILD), Identity("upn", OLD)), (OLD,))], "t4")
        facts = read_facts(rt, [CHILD]).for_event(CHILD, None)
        assert (facts.school_urn, facts.gp_ods) == (NEW_URN, ODS)
        on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("identities.sqlite*"))
        assert not any(code.encode() in on_disk for code in (URN, NEW_URN, ODS))  # sealed, never in the clear
        assert rt.identities.forget(rt.identities.aliases(CHILD)) == 3  # erasure: every registration gone
        assert read_facts(rt, [CHILD]).for_event(CHILD, None).school_urn is None
    finally:
        rt.identities.close()
        rt.determinations.close()


def test_stores_migrate_carries_the_registrations(tmp_path: Path, pg_database: str) -> None:
    identities = IdentityRegister(tmp_path / IdentityRegister.FILE)
    identities.record_registrations([(CHILD, "school", "SEALED-SCHOOL")], "t")
    identities.close()
    migrate(tmp_path, pg_database)
    moved = IdentityRegister(tmp_path / "gone.sqlite", pg_database)
    try:
        assert moved.sealed_facts([CHILD]).registrations == {CHILD: {"school": "SEALED-SCHOOL"}}
        moved.record_registrations([(CHILD, "school", "SEALED-LATER")], "t2")  # the upsert on PostgreSQL
        assert moved.sealed_registrations([CHILD]) == {CHILD: {"school": "SEALED-LATER"}}
        assert moved.forget([CHILD]) == 1 and moved.sealed_registrations([CHILD]) == {}
    finally:
        moved.close()


def test_policy_explain_says_the_school_came_from_the_register(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from broker.cli.policy import app

    notice = {"event_id": "00000000-0000-4000-8000-0000000000b2", "schema_version": "1.5.0",
              "event_type": "police.domestic_abuse_notification", "occurred_at": "2026-05-02T22:10:00Z",
              "received_at": "2026-05-02T22:11:00Z",
              "source": {"agency": "police", "system": "XX", "record_id": "test-da-9", "record_version": "1",
                         "format": "test"},
              "risk": {"level": "high", "categories": ["domestic_abuse"]},
              "subject": {"child": {"given_names": ["Testchild"], "family_name": "Example",
                                    "date_of_birth": "2016-05-14"}, "related_people": []},
              "payload": {"incident_reference": "TEST/0009", "children_present": True}}
    path = tmp_path / "notice.json"
    path.write_text(json.dumps(notice))
    sample = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"
    base = ["explain", "--protocol", str(sample), "--subscriber", "oakfield_dsl", str(path)]
    learned = json.loads(CliRunner().invoke(app, [*base, "--school-urn", URN]).stdout)["decision"]
    assert learned["outcome"] == "deliver" and "by the identity register" in learned["reason"]
    unknown = json.loads(CliRunner().invoke(app, base).stdout)["decision"]
    assert unknown["outcome"] == "withhold" and "registered with the subscriber's school" in unknown["reason"]
