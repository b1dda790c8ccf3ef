"""Naming the child for a subject access report opens only the child's names and birth date: the sealed event is cut
to those ciphertexts before anything is decrypted, so one identity key is unwrapped (and audited by the key store),
and nothing else of the event (address, phone, NHS number, health) is opened. A shredded child is named by no one.
Fictitious child."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.crypto import reveal_event
from broker.crypto.envelope import protect_event
from broker.crypto.keystore import KeyStore
from broker.crypto.kms_local import LocalKms
from broker.service.child_identity import REASON, child_words, name_leaves
from tests.crypto.conftest import Clock


def test_only_the_name_and_birth_date_are_opened(tmp_path: Path, kms: LocalKms, store: KeyStore, clock: Clock,
                                                 other_child_event: dict[str, Any]) -> None:
    protected = protect_event(other_child_event, store)
    token = other_child_event["subject"]["linkage"]["token"]
    unwrapped: list[tuple[str, str, str]] = []
    fresh = KeyStore(tmp_path / "keys" / "datakeys.sqlite", kms, clock=clock,
                     on_unwrap=lambda *seen: unwrapped.append(seen))  # no cached keys: every unwrap is seen
    try:
        cut = name_leaves(protected)
        assert set(cut["subject"]["child"]) == {"given_names", "family_name", "date_of_birth"}
        assert "payload" not in cut and "related_people" not in cut["subject"]
        revealed = reveal_event(cut, fresh, reason=REASON, on_unavailable="mark")
        assert child_words(revealed.event["subject"]["child"]) == {"name": "Testchild Second Example",
                                                                    "date_of_birth": "2015-03-04"}
        assert len(unwrapped) == 1 and unwrapped[0][1:] == (token, REASON)  # one key: the child's identity key
        # the whole event would have opened more keys: the cut is what keeps them shut
        reveal_event(protected, fresh, reason="comparison")
        assert len(unwrapped) > 2
    finally:
        fresh.close()


def test_a_shredded_child_is_named_by_no_one(kms: LocalKms, store: KeyStore,
                                             other_child_event: dict[str, Any]) -> None:
    protected = protect_event(other_child_event, store)
    store.shred(other_child_event["subject"]["linkage"]["token"])
    revealed = reveal_event(name_leaves(protected), store, reason=REASON, on_unavailable="mark")
    assert child_words(revealed.event["subject"]["child"]) is None
