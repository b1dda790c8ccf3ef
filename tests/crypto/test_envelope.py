"""Envelope encryption of a real canonical event: round trip, no plaintext, binding, tampering, shredding."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from broker.crypto import (
    SHREDDED,
    UNAVAILABLE,
    DecryptionFailed,
    KeyProvider,
    KeyShredded,
    KeyStore,
    KeyUnavailable,
    protect_blob,
    protect_event,
    reveal_blob,
    reveal_event,
)
from broker.crypto.kms_local import LocalKms
from broker.schema.classification import classify, iter_leaves
from tests.crypto.conftest import Clock


def _concrete_leaves(value: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """(concrete path, schema path, value) of every scalar."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _concrete_leaves(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [(c, s.replace(f"{path}[{i}]", f"{path}[]", 1), x) for i, v in enumerate(value)
                for c, s, x in _concrete_leaves(v, f"{path}[{i}]")]
    return [(path, path, value)]


def _get(event: dict[str, Any], path: str) -> Any:
    node: Any = event
    for part in path.replace("[", ".[").split("."):
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    return node


def _set(event: dict[str, Any], path: str, value: Any) -> None:
    parent, _, last = path.rpartition(".")
    if last.endswith("]"):
        name, index = last[:-1].split("[")
        _get(event, f"{parent}.{name}" if parent else name)[int(index)] = value
    else:
        _get(event, parent)[last] = value


def _personal(event: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(c, v) for c, s, v in _concrete_leaves(event) if classify(event, s) != "operational"]


def test_round_trip_of_a_real_event(patient_event: dict[str, Any], store: KeyStore) -> None:
    assert isinstance(store, KeyProvider)
    protected = protect_event(patient_event, store)
    revealed = reveal_event(protected, store)
    assert revealed.event == patient_event
    assert revealed.shredded == [] and revealed.unavailable == []
    assert len(_personal(patient_event)) >= 20  # the test is about something


def test_protected_event_holds_no_personal_value(patient_event: dict[str, Any], store: KeyStore) -> None:
    protected = protect_event(patient_event, store)
    text = orjson.dumps(protected).decode()
    # Values also found in operational leaves are not the envelope's to hide: codes such as "verified", and this
    # example's record id "Patient/UKCore-Patient-RichardSmith-Example" (a real-world id must not carry a name).
    clear = " ".join(str(v) for s, v in iter_leaves(patient_event) if classify(patient_event, s) == "operational")
    leaked = []
    for path, value in _personal(patient_event):
        leaf = _get(protected, path)
        assert isinstance(leaf, str) and leaf.startswith("enc:v1:") and leaf != value, path
        # shorter strings (e.g. "G") can occur by chance inside base64
        if len(str(value)) >= 5 and str(value) not in clear and str(value) in text:
            leaked.append(path)
    assert leaked == []
    # operational leaves stay readable: routing, policy and idempotence need them
    for schema_path, value in iter_leaves(patient_event):
        if classify(patient_event, schema_path) == "operational" and isinstance(value, str) and len(value) > 3:
            assert value in text, schema_path
    assert protected["subject"]["linkage"] == patient_event["subject"]["linkage"]


def test_types_survive_and_unknown_fields_are_encrypted_as_narrative(patient_event: dict[str, Any],
                                                                     store: KeyStore) -> None:
    event = copy.deepcopy(patient_event)
    event["payload"]["not_in_schema"] = {"count": 3, "flag": True, "nothing": None, "ratio": 0.25}
    protected = protect_event(event, store)
    assert all(v.startswith("enc:v1:") for v in protected["payload"]["not_in_schema"].values())
    assert reveal_event(protected, store).event == event


def test_ciphertext_swapped_between_fields_fails(other_child_event: dict[str, Any], store: KeyStore) -> None:
    protected = protect_event(other_child_event, store)
    for a, b in [("subject.child.given_names[0]", "subject.child.family_name"),  # same key (identity), other field
                 ("subject.child.given_names[0]", "subject.child.given_names[1]")]:  # list positions are bound too
        swapped = copy.deepcopy(protected)
        _set(swapped, a, _get(protected, b))
        _set(swapped, b, _get(protected, a))
        with pytest.raises(DecryptionFailed) as err:
            reveal_event(swapped, store)
        assert err.value.path in (a, b)
        assert "Testchild" not in str(err.value) and "Example" not in str(err.value)


def test_ciphertext_moved_to_another_event_fails(patient_event: dict[str, Any], other_child_event: dict[str, Any],
                                                 store: KeyStore) -> None:
    path = "subject.child.family_name"
    one = protect_event(patient_event, store)
    # another child's event
    other = protect_event(other_child_event, store)
    _set(other, path, _get(one, path))
    with pytest.raises(DecryptionFailed, match=r"subject\.child\.family_name"):
        reveal_event(other, store)
    # the same child, same data key, but another event id
    later = copy.deepcopy(patient_event)
    later["event_id"] = "8d1f1c52-0a55-5b8e-9c7e-0000000000ff"
    later_protected = protect_event(later, store)
    assert _get(later_protected, path).split(":")[2] == _get(one, path).split(":")[2]  # same key id
    _set(later_protected, path, _get(one, path))
    with pytest.raises(DecryptionFailed, match=r"subject\.child\.family_name"):
        reveal_event(later_protected, store)


@pytest.mark.parametrize("change", ["flip_byte", "truncate", "event_id", "linkage_token", "schema_version",
                                    "plaintext_in_place", "key_id"])
def test_tampering_fails_closed(patient_event: dict[str, Any], store: KeyStore, change: str) -> None:
    protected = protect_event(patient_event, store)
    path = "subject.child.nhs_number"
    leaf = _get(protected, path)
    if change == "flip_byte":
        body = leaf.rsplit(":", 1)[1]
        flipped = body[:20] + ("A" if body[20] != "A" else "B") + body[21:]
        _set(protected, path, leaf.rsplit(":", 1)[0] + ":" + flipped)
    elif change == "truncate":
        _set(protected, path, leaf[:30])
    elif change == "event_id":
        protected["event_id"] = "8d1f1c52-0a55-5b8e-9c7e-0000000000aa"
    elif change == "linkage_token":
        protected["subject"]["linkage"]["token"] = "lt1_" + "A" * 32
    elif change == "schema_version":
        protected["schema_version"] = "1.0.1"
    elif change == "plaintext_in_place":
        _set(protected, path, "9990000018")
    elif change == "key_id":  # a real key of another classification
        other = _get(protected, "subject.child.addresses[0].postcode").split(":")[2]
        _set(protected, path, leaf.replace(leaf.split(":")[2], other))
    with pytest.raises(DecryptionFailed) as err:
        reveal_event(protected, store)
    assert "9912003888" not in str(err.value)


def test_shredding_one_child_leaves_the_other_readable(patient_event: dict[str, Any],
                                                      other_child_event: dict[str, Any], store: KeyStore) -> None:
    first, second = protect_event(patient_event, store), protect_event(other_child_event, store)
    assert reveal_event(first, store).event == patient_event  # warms the unwrapped-key cache
    token = patient_event["subject"]["linkage"]["token"]

    report = store.shred_with_report(token)

    assert report.data_keys == 6  # one data key per classification this child has
    assert report.classifications == ["contact", "demographic", "identity", "location",
                                      "sensitive_operational", "social_care"]
    gone = reveal_event(first, store)
    personal = _personal(patient_event)
    assert sorted(gone.shredded) == sorted(p for p, _ in personal)
    assert all(_get(gone.event, p) == SHREDDED for p, _ in personal)
    assert gone.event["subject"]["linkage"] == patient_event["subject"]["linkage"]  # operational stays
    assert gone.event["event_id"] == patient_event["event_id"]
    assert reveal_event(second, store).event == other_child_event
    assert store.shred(token) == 0  # already gone


def test_shred_in_another_process_evicts_cached_keys(tmp_path: Path, patient_event: dict[str, Any],
                                                     kms: LocalKms, store: KeyStore) -> None:
    protected = protect_event(patient_event, store)
    service = KeyStore(tmp_path / "keys" / "datakeys.sqlite", kms, revalidate_after=0)
    try:
        assert reveal_event(protected, service).event == patient_event  # service has the keys cached
        store.shred(patient_event["subject"]["linkage"]["token"])  # e.g. `mash-broker keys shred`
        assert reveal_event(protected, service).shredded
        assert reveal_event(protected, service).event["subject"]["child"]["family_name"] == SHREDDED
    finally:
        service.close()


def test_missing_key_fails_closed_and_never_reveals(tmp_path: Path, patient_event: dict[str, Any], kms: LocalKms,
                                                   store: KeyStore, master_key: bytes) -> None:
    protected = protect_event(patient_event, store)
    elsewhere = KeyStore(tmp_path / "other-datakeys.sqlite", kms)
    try:
        with pytest.raises(KeyUnavailable):
            reveal_event(protected, elsewhere)
        marked = reveal_event(protected, elsewhere, on_unavailable="mark")
        assert sorted(marked.unavailable) == sorted(p for p, _ in _personal(patient_event))
        assert marked.event["subject"]["child"]["nhs_number"] == UNAVAILABLE
        assert "9912003888" not in orjson.dumps(marked.event).decode()
    finally:
        elsewhere.close()
    # the right keystore file but a KMS with another master key: the KEKs do not open
    wrong = LocalKms(tmp_path / "keys" / "local-kms.sqlite", bytes(b ^ 1 for b in master_key))
    cold = KeyStore(tmp_path / "keys" / "datakeys.sqlite", wrong)
    try:
        with pytest.raises(KeyUnavailable, match="master key does not open"):
            reveal_event(protected, cold)
    finally:
        cold.close()
        wrong.close()


def test_unwraps_are_counted_and_reported_with_their_reason(tmp_path: Path, patient_event: dict[str, Any],
                                                            kms: LocalKms, store: KeyStore) -> None:
    protected = protect_event(patient_event, store)
    seen: list[tuple[str, str, str]] = []
    reader = KeyStore(tmp_path / "keys" / "datakeys.sqlite", kms, on_unwrap=lambda *a: seen.append(a))
    try:
        reveal_event(protected, reader, reason="decision d-1")
        reveal_event(protected, reader)  # cached: no further unwraps
        token = patient_event["subject"]["linkage"]["token"]
        assert reader.unwrap_count() == len(seen) == 6
        assert {s for _, s, _ in seen} == {token} and {r for _, _, r in seen} == {"decision d-1"}
    finally:
        reader.close()


def test_dead_letter_blob_round_trip_context_binding_and_shred(store: KeyStore, clock: Clock) -> None:
    data = b'{"resourceType": "Patient", "name": [{"family": "Example"}]}'
    sealed = protect_blob(data, "deadletter:abc123", store)
    assert sealed.startswith("enc:v1:") and b"Example" not in sealed.encode()
    assert reveal_blob(sealed, "deadletter:abc123", store) == data
    with pytest.raises(DecryptionFailed):
        reveal_blob(sealed, "deadletter:other", store)
    monthly = protect_blob(data, "deadletter:def456", store, scope="deadletter:2026-01")
    assert store.shred("deadletter:2026-01") == 1
    with pytest.raises(KeyShredded):
        reveal_blob(monthly, "deadletter:def456", store)
    assert reveal_blob(sealed, "deadletter:abc123", store) == data
