"""A dead letter's input, sealed so that it opens only while the dead-letter scope and every child it names keep
their keys (broker/crypto/split_seal.py)."""

from __future__ import annotations

import pytest

from broker.crypto import DEADLETTER_SCOPE, DecryptionFailed, KeyShredded
from broker.crypto.split_seal import open_split, seal_split

DATA = b'{"resourceType": "Bundle", "note": "fictitious Testchild Example"}'
CHILDREN = ["lt1_" + "a" * 43, "lt1_" + "b" * 43]


def test_it_opens_with_every_key_and_holds_no_plaintext(store) -> None:
    sealed = seal_split(DATA, "deadletter:abc", store, CHILDREN)
    assert [s["scope"] for s in sealed["shares"]] == [DEADLETTER_SCOPE, *CHILDREN]
    assert b"Testchild" not in str(sealed).encode()
    assert open_split(sealed, "deadletter:abc", store) == DATA


@pytest.mark.parametrize("shredded", [CHILDREN[0], CHILDREN[1], DEADLETTER_SCOPE])
def test_shredding_any_one_scope_makes_it_unreadable(store, shredded: str) -> None:
    sealed = seal_split(DATA, "deadletter:abc", store, CHILDREN)
    store.shred(shredded)
    with pytest.raises(KeyShredded):
        open_split(sealed, "deadletter:abc", store)


def test_a_missing_or_moved_share_or_another_context_does_not_open(store) -> None:
    sealed = seal_split(DATA, "deadletter:abc", store, CHILDREN)
    with pytest.raises(DecryptionFailed):
        open_split({**sealed, "shares": sealed["shares"][:-1]}, "deadletter:abc", store)
    with pytest.raises(DecryptionFailed):
        open_split(sealed, "deadletter:other", store)
    other = seal_split(DATA, "deadletter:abc", store, CHILDREN)
    with pytest.raises(DecryptionFailed):  # a share of another seal: the XOR is not this content key
        open_split({**sealed, "shares": [other["shares"][0], *sealed["shares"][1:]]}, "deadletter:abc", store)
