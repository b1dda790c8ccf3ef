"""Sealed delivery with HPKE: both suites, per-subscriber content keys, rotation, and nobody else can open it."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from broker.crypto.client import SubscriberClient
from broker.crypto.errors import NotForThisSubscriber, SealError
from broker.crypto.hpke_keys import PRIVATE_SIZES, PUBLIC_SIZES
from broker.crypto.seal import HYBRID, X25519, DeliverySealer, generate_subscriber_keypair
from tests.crypto.conftest import Clock

SUITES = [X25519, HYBRID]


def _released(n: int) -> dict[str, Any]:
    return {"event_id": f"8d1f1c52-0a55-5b8e-9c7e-{n:012d}", "event_type": "person.identified",
            "subject": {"child": {"given_names": ["Testchild"], "family_name": "Example"}}}


@pytest.mark.parametrize("suite", SUITES)
def test_keypair_sizes(suite: str) -> None:
    private, public_b64 = generate_subscriber_keypair(suite)
    assert len(private) == PRIVATE_SIZES[suite]
    assert len(base64.b64decode(public_b64)) == PUBLIC_SIZES[suite]


@pytest.mark.parametrize("suite", SUITES)
def test_seal_and_open(suite: str) -> None:
    private, public = generate_subscriber_keypair(suite)
    sealer = DeliverySealer("hub-children", public, suite)
    client = SubscriberClient(private, "hub-children")
    for n in range(3):
        delivery = sealer.seal(_released(n))
        assert b"Testchild" not in delivery and b"Example" not in delivery
        assert client.open(delivery) == _released(n)
    assert sealer.hpke_seals == 1 and client.content_keys_opened == 1  # HPKE once, not per event
    assert orjson.loads(delivery)["suite"] == suite


def test_suite_is_inferred_from_the_public_key() -> None:
    private, public = generate_subscriber_keypair(HYBRID)
    sealer = DeliverySealer("hub", base64.b64decode(public))
    assert sealer.suite == HYBRID
    assert SubscriberClient(private).open(sealer.seal(_released(1))) == _released(1)
    with pytest.raises(SealError, match="matches no suite"):
        DeliverySealer("hub", b"short")


@pytest.mark.parametrize("suite", SUITES)
def test_another_subscriber_cannot_open(suite: str) -> None:
    mine, my_public = generate_subscriber_keypair(suite)
    theirs, _ = generate_subscriber_keypair(suite)
    delivery = DeliverySealer("police-hub", my_public, suite).seal(_released(1))
    with pytest.raises(NotForThisSubscriber, match="not sealed to this subscriber's key"):
        SubscriberClient(theirs).open(delivery)
    with pytest.raises(NotForThisSubscriber, match="not school-hub"):
        SubscriberClient(theirs, "school-hub").open(delivery)
    # relabelling the delivery for another subscriber breaks the HPKE binding, even for the right key
    relabelled = orjson.loads(delivery)
    relabelled["subscriber"] = "school-hub"
    with pytest.raises(NotForThisSubscriber):
        SubscriberClient(mine).open(orjson.dumps(relabelled))
    assert SubscriberClient(mine, "police-hub").open(delivery) == _released(1)


def test_suite_mismatch_is_refused_clearly() -> None:
    x_private, _ = generate_subscriber_keypair(X25519)
    _, hybrid_public = generate_subscriber_keypair(HYBRID)
    delivery = DeliverySealer("hub", hybrid_public, HYBRID).seal(_released(1))
    with pytest.raises(NotForThisSubscriber, match="suite mlkem768-x25519; this key is x25519"):
        SubscriberClient(x_private).open(delivery)


@pytest.mark.parametrize("field", ["event_id", "ciphertext", "content_key_id"])
def test_tampered_delivery_fails(field: str) -> None:
    private, public = generate_subscriber_keypair(X25519)
    sealer = DeliverySealer("hub", public)
    client = SubscriberClient(private)
    client.open(sealer.seal(_released(0)))  # content key now cached: tampering must still be caught
    msg = orjson.loads(sealer.seal(_released(1)))
    if field == "ciphertext":
        raw = bytearray(base64.b64decode(msg["ciphertext"]))
        raw[-1] ^= 1
        msg["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    else:
        msg[field] = msg[field][:-1] + ("0" if msg[field][-1] != "0" else "1")
    with pytest.raises(SealError):
        client.open(orjson.dumps(msg))


def test_garbage_is_not_a_delivery() -> None:
    private, _ = generate_subscriber_keypair(X25519)
    for junk in (b"", b"{}", b"[1]", b'{"mash_delivery": 2}', b"\xff\xfe"):
        with pytest.raises(SealError, match="not a mash-broker delivery"):
            SubscriberClient(private).open(junk)


def test_content_key_rotates_by_count_and_age() -> None:
    private, public = generate_subscriber_keypair(X25519)
    clock = Clock(0.0)
    sealer = DeliverySealer("hub", public, max_messages=2, max_age_seconds=60, clock=clock)
    client = SubscriberClient(private)
    ids = []
    for n in range(5):
        if n == 4:
            clock.now += 61
        delivery = sealer.seal(_released(n))
        ids.append(orjson.loads(delivery)["content_key_id"])
        assert client.open(delivery) == _released(n)
    assert ids[0] == ids[1] != ids[2] == ids[3] != ids[4]
    assert sealer.hpke_seals == 3 and client.content_keys_opened == 3


def test_client_reads_the_key_file_the_cli_writes(tmp_path: Any) -> None:
    private, public = generate_subscriber_keypair(HYBRID)
    path = tmp_path / "hub.key"
    path.write_bytes(base64.b64encode(private) + b"\n")
    client = SubscriberClient.from_file(path, "hub")
    assert client.open(DeliverySealer("hub", public).seal(_released(7))) == _released(7)


def test_open_new_drops_a_redelivered_event() -> None:
    private, public = generate_subscriber_keypair(X25519)
    sealer = DeliverySealer("hub", public, X25519)
    client = SubscriberClient(private, "hub")
    first, again, other = sealer.seal(_released(1)), sealer.seal(_released(1)), sealer.seal(_released(2))
    assert client.open_new(first) == _released(1)
    assert client.open_new(again) is None  # the same event id, sealed anew by a restarted worker
    assert client.open_new(other) == _released(2)
    assert client.duplicates_dropped == 1


def test_the_client_follows_person_linked_notices_to_a_childs_current_token() -> None:
    private, public = generate_subscriber_keypair(X25519)
    sealer, client = DeliverySealer("hub", public, X25519), SubscriberClient(private, "hub")
    old, middle, new = ("lt1_" + c * 32 for c in "abc")

    def linked(n: int, superseded: str, token: str) -> bytes:
        return sealer.seal({"event_id": f"8d1f1c52-0a55-5b8e-9c7e-{n:012d}", "event_type": "person.linked",
                            "subject": {"linkage": {"token": token}, "child": {}},
                            "payload": {"superseded_token": superseded}})

    assert client.current_token(old) == old
    client.open(linked(1, old, middle))
    client.open(linked(2, middle, new))  # a second join later: the chain is followed
    assert client.current_token(old) == client.current_token(middle) == client.current_token(new) == new
    client.open(sealer.seal(_released(3)))  # other events change nothing
    assert client.superseded == {old: middle, middle: new}
