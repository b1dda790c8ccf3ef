"""The published delivery test vectors (schemas/test-vectors/) against the broker's own sealing and opening code."""

from __future__ import annotations

import base64

import orjson
import pytest

from broker.crypto import vectors
from broker.crypto.client import SubscriberClient
from broker.crypto.errors import SealError
from broker.crypto.hpke_keys import HYBRID, SUITES, X25519, load_private_key
from broker.crypto.seal import DeliverySealer


def _committed(name: str) -> dict:
    return orjson.loads((vectors.VECTOR_DIR / name).read_bytes())


@pytest.mark.parametrize("name", list(vectors.FILES))
def test_every_committed_vector_opens_with_the_subscriber_client(name: str) -> None:
    v = _committed(name)
    client = SubscriberClient(v["recipient_key_file"].strip().encode(), v["subscriber"])
    assert client.suite == v["suite"]
    for m in v["messages"]:
        delivery = base64.b64decode(m["delivery_base64"])
        assert delivery == m["delivery"].encode()
        event = client.open(delivery)
        assert orjson.dumps(event).decode() == m["plaintext"]
        assert event["event_id"] == m["event_id"] == orjson.loads(delivery)["event_id"]
    assert client.content_keys_opened == 1  # both messages ride on one sealed content key


@pytest.mark.parametrize("name", list(vectors.FILES))
def test_the_sealed_content_key_opens_with_the_library_hpke_to_the_published_key(name: str) -> None:
    """The vector's own sender (vectors.py) and the broker's HPKE library agree on enc || ct, info and key bytes."""
    v = _committed(name)
    suite, private = load_private_key(bytes.fromhex(v["recipient"]["private_key"]))
    key = SUITES[suite].decrypt(bytes.fromhex(v["sealed_content_key"]), private, bytes.fromhex(v["info"]))
    assert key.hex() == v["content_key"]
    assert bytes.fromhex(v["sealed_content_key"])[: len(bytes.fromhex(v["kem"]["enc"]))].hex() == v["kem"]["enc"]


def test_the_vectors_regenerate_byte_identically() -> None:
    fresh = vectors.generate()
    assert sorted(fresh) == sorted(p.name for p in vectors.VECTOR_DIR.glob("*.json"))
    for name, data in fresh.items():
        assert (vectors.VECTOR_DIR / name).read_bytes() == data, f"{name} is stale: python -m broker.crypto.vectors"


def test_check_mode_reports_a_tampered_vector(tmp_path) -> None:
    for name, data in vectors.generate().items():
        (tmp_path / name).write_bytes(data)
    assert vectors.main(["--dir", str(tmp_path), "--check"]) == 0
    x = tmp_path / "x25519.json"
    x.write_bytes(x.read_bytes().replace(b'"content_key_id": "ck_testvector0001"', b'"content_key_id": "ck_x"', 1))
    assert vectors.main(["--dir", str(tmp_path), "--check"]) == 1


@pytest.mark.parametrize("suite", [X25519, HYBRID])
def test_vector_deliveries_are_laid_out_as_the_broker_lays_out_a_real_one(suite: str) -> None:
    """Same keys in the same order, compact JSON, standard padded base64: a vector is a real delivery's shape."""
    v = _committed(next(k for k, s in vectors.FILES.items() if s == suite))
    sealer = DeliverySealer("test_hub", v["subscriber_public_key"], suite)
    real = sealer.seal(orjson.loads(v["messages"][0]["plaintext"]))
    published = v["messages"][0]["delivery"].encode()
    assert list(orjson.loads(real)) == list(orjson.loads(published))
    assert real.count(b" ") == published.count(b" ") == 0
    for field in ("content_key", "ciphertext"):
        assert len(orjson.loads(real)[field]) == len(orjson.loads(published)[field])  # same sizes, byte for byte
    # and the broker's real delivery to the published key opens with the published private key
    client = SubscriberClient(v["recipient_key_file"].strip().encode(), "test_hub")
    assert orjson.dumps(client.open(real)).decode() == v["messages"][0]["plaintext"]


def test_every_must_fail_delivery_is_refused_by_the_subscriber_client() -> None:
    n = _committed("must-fail.json")
    assert len(n["must_fail"]) >= 5
    for case in n["must_fail"]:
        client = SubscriberClient(n["recipient_key_file"].strip().encode())  # no subscriber check: crypto must refuse
        with pytest.raises(SealError):
            client.open(case["delivery"].encode())
