"""Erasure's pure rules and its registers: the notice, intake's refusal of old records, what HTTP hides, the
keystore that mints no key for an erased child's old events, and who must be told."""

from __future__ import annotations

import copy
import secrets
from pathlib import Path
from typing import Any

import pytest

from adapters.kit.interface import Rejection
from broker.crypto import ErasedData, protect_event, reveal_event
from broker.crypto.client import SubscriberClient
from broker.crypto.hpke_keys import X25519, generate_subscriber_keypair
from broker.crypto.keystore import KeyStore, shred_child
from broker.crypto.kms_local import LocalKms
from broker.crypto.seal import DeliverySealer
from broker.pipeline.erasure import (
    ERASED_RESEND,
    NOTICE_SCOPE,
    DeliveryFacts,
    hidden,
    iso_ms,
    notice_event,
    refuse_erased,
)
from broker.schema.classification import field_classes, iter_leaves
from broker.schema.validate import validate_event
from broker.stores.delivered import DeliveredLog
from broker.stores.erasures import ErasureRegister

CHILD = ["lt1_" + "E" * 32, "lt1_" + "F" * 32]  # an erased child's current token, then an older one
OTHER = "lt1_" + "G" * 32
ERASED_AT = "2026-12-01T09:00:00.000Z"


def _event(token: str, n: int) -> dict[str, Any]:
    return {"event_id": f"8d1f1c52-0a55-5b8e-9c7e-{n:012d}", "event_type": "person.updated",
            "subject": {"linkage": {"token": token}}}


@pytest.fixture
def keystore(tmp_path: Path) -> KeyStore:
    kms = LocalKms(tmp_path / "kms.sqlite", secrets.token_bytes(32))
    store = KeyStore(tmp_path / "datakeys.sqlite", kms, revalidate_after=0)
    yield store
    store.close()
    kms.close()


def test_the_notice_is_a_valid_canonical_event_carrying_tokens_and_a_time_only() -> None:
    notice = notice_event(CHILD, ERASED_AT)
    assert validate_event(notice) == []
    assert notice["subject"]["linkage"]["token"] == CHILD[0]
    assert notice["payload"] == {"record_kind": "erasure notice", "erased_tokens": CHILD, "erased_at": ERASED_AT}
    labels = field_classes("person.erased")
    # nothing personal: every leaf present is operational but fixed values of the broker's own (the record id;
    # since schema 1.2.0 the source system, risk level, basis and consent are sensitive_operational wherever they
    # appear, here constants)
    assert {p: (labels[p], v) for p, v in iter_leaves(notice) if labels[p] != "operational"} == {
        "source.record_id": ("identity", "erasure-register"),
        "source.system": ("sensitive_operational", "mash-broker"),
        "risk.level": ("sensitive_operational", "unknown"),
        "lawful_basis.article_6": ("sensitive_operational", "6(1)(c)"),
        "consent.status": ("sensitive_operational", "not_applicable")}
    assert notice_event(CHILD, ERASED_AT)["event_id"] == notice["event_id"]  # a retried notice is one event
    assert notice_event(CHILD, "2026-12-02T09:00:00.000Z")["event_id"] != notice["event_id"]  # a second erasure


def test_shredding_the_child_again_cannot_make_its_notice_unreadable(keystore: KeyStore) -> None:
    notice = notice_event(CHILD, ERASED_AT)
    protected = protect_event(notice, keystore, scope=NOTICE_SCOPE)
    shred_child(keystore, CHILD)
    revealed = reveal_event(protected, keystore)
    assert revealed.shredded == [] and revealed.event == notice


def test_intake_refuses_only_the_erased_childs_events_received_before_the_erasure() -> None:
    old, new, other = _event(CHILD[0], 1), _event(CHILD[0], 2), _event(OTHER, 1)
    kept, refused = refuse_erased([old, new, other], {CHILD[0]: ERASED_AT}, {old["event_id"]}, source="file.xml")
    assert kept == [new, other]  # a new record about the child is new processing; the other child is untouched
    assert refused == [Rejection("file.xml", "event 0 (person.updated)", "", ERASED_RESEND)]
    assert "[0-9]" not in ERASED_RESEND and "@" not in ERASED_RESEND
    # the same event id for a child that is not erased is accepted
    assert refuse_erased([old], {}, {old["event_id"]}) == ([old], [])


def test_http_hides_deliveries_made_before_the_erasure_and_old_events_delivered_after_it() -> None:
    at = iso_ms(ERASED_AT)
    old_event = "8d1f1c52-0a55-5b8e-9c7e-000000000001"
    facts = [DeliveryFacts(CHILD[0], old_event, at - 5000, False),  # delivered before: hidden
             DeliveryFacts(CHILD[1], "x-2", at - 1, False),  # under the child's older token: hidden
             DeliveryFacts(CHILD[0], old_event, at + 900, False),  # an old event, delivered late: hidden
             DeliveryFacts(CHILD[0], "x-3", at + 1000, False),  # a new record after the erasure: served
             DeliveryFacts(CHILD[0], "x-4", at - 10, True),  # the notice (a skewed clock): served
             DeliveryFacts(OTHER, old_event, at - 5000, False)]  # another child: served
    erased = {CHILD[0]: at, CHILD[1]: at}
    assert hidden(facts, erased, {old_event}) == [True, True, True, False, False, False]


def test_the_keystore_mints_no_key_for_an_erased_childs_old_event(tmp_path: Path, keystore: KeyStore) -> None:
    token = CHILD[0]
    keystore.encryption_keys(token, ["identity"], event_id="old-1")
    report = keystore.shred_with_report(token, ["old-1"])
    assert report.data_keys == 1
    with pytest.raises(ErasedData) as refused:
        keystore.encryption_keys(token, ["identity", "health"], event_id="old-1")
    assert token not in str(refused.value)  # names the event, never the child
    # a record received after the erasure (a new event id) is new processing: fresh keys; other children unaffected
    assert keystore.encryption_keys(token, ["identity"], event_id="new-1")["identity"].key_id
    keystore.encryption_keys(OTHER, ["identity"], event_id="old-1")
    # another process (the service beside `mash-broker keys shred`) refuses too
    other = KeyStore(tmp_path / "datakeys.sqlite", keystore.kms)
    try:
        with pytest.raises(ErasedData):
            other.encryption_keys(token, ["identity"], event_id="old-1")
    finally:
        other.close()


def test_a_shred_seen_from_another_process_refuses_after_revalidation(tmp_path: Path, keystore: KeyStore) -> None:
    keystore.encryption_keys(CHILD[0], ["identity"], event_id="old-1")  # the service's keystore, caches warm
    shredder = KeyStore(tmp_path / "datakeys.sqlite", keystore.kms)
    try:
        shred_child(shredder, CHILD, [("old-1", CHILD[0])])
    finally:
        shredder.close()
    with pytest.raises(ErasedData):
        keystore.encryption_keys(CHILD[0], ["identity"], event_id="old-1")


def test_erasure_register_events_and_owed_notices(tmp_path: Path) -> None:
    register = ErasureRegister(tmp_path / ErasureRegister.FILE)
    try:
        register.record(CHILD, ERASED_AT, "cli:operator")
        register.record_events([("e1", CHILD[0]), ("e2", CHILD[1]), ("e1", CHILD[0])])
        assert register.erased_events(["e1", "e2", "e3"]) == {"e1", "e2"}
        assert register.erased_at([*CHILD, OTHER]) == {CHILD[0]: ERASED_AT, CHILD[1]: ERASED_AT}
        register.owe_notice(CHILD, ERASED_AT)
        register.owe_notice(CHILD, ERASED_AT)  # the API's retry: owed once
        assert register.notices_owed() == [(CHILD, ERASED_AT)]
        register.announced(CHILD[0], ERASED_AT, "2026-12-01T09:00:01.000Z")
        assert register.notices_owed() == []
    finally:
        register.close()


def test_the_delivered_log_knows_who_received_something_about_a_child(tmp_path: Path) -> None:
    log = DeliveredLog(tmp_path / DeliveredLog.FILE)
    try:
        log.mark([("hub", "e1", "d1"), ("police", "e2", "d2"), ("school", "e3", "d3")],
                 [(CHILD[0], "hub"), (CHILD[1], "police"), (OTHER, "school")])
        assert log.recipients(CHILD) == {"hub", "police"}
        assert log.recipients([OTHER]) == {"school"}
        assert log.sent(["hub"], ["e1"]) == {("hub", "e1")}
    finally:
        log.close()


def test_the_subscriber_client_exposes_the_erased_tokens() -> None:
    private, public = generate_subscriber_keypair(X25519)
    sealer, client = DeliverySealer("hub", public, X25519), SubscriberClient(private, "hub")
    notice = copy.deepcopy(notice_event(CHILD, ERASED_AT))
    assert client.open(sealer.seal(notice))["event_type"] == "person.erased"
    assert client.erased_tokens() == set(CHILD)
    assert client.is_erased(CHILD[1]) and not client.is_erased(OTHER)


def test_stores_migrate_carries_every_table_of_the_erasure_and_delivered_registers(tmp_path: Path,
                                                                                    pg_database: str) -> None:
    from broker.stores.migrate import migrate

    data = tmp_path / "data"
    register = ErasureRegister(data / ErasureRegister.FILE)
    register.record(CHILD, ERASED_AT, "cli:operator")
    register.record_events([("e1", CHILD[0])])
    register.owe_notice(CHILD, ERASED_AT)
    register.close()
    log = DeliveredLog(data / DeliveredLog.FILE)
    log.mark([("hub", "e1", "d1")], [(CHILD[0], "hub")])
    log.close()

    copied = migrate(data, pg_database)
    assert copied[ErasureRegister.FILE] == 2 + 1 + 1 and copied[DeliveredLog.FILE] == 2
    moved = ErasureRegister(data / ErasureRegister.FILE, pg_database)
    try:  # what HTTP, intake and the notifier read survives the move: the events erased and the notice owed
        assert moved.erased_events(["e1"]) == {"e1"} and moved.notices_owed() == [(CHILD, ERASED_AT)]
    finally:
        moved.close()
    assert DeliveredLog(data / DeliveredLog.FILE, pg_database).recipients(CHILD) == {"hub"}
