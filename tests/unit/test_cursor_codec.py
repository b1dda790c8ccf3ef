"""Delivery cursors as pure functions: what opens, what is refused, and that every number is bounded."""

from __future__ import annotations

import base64
import json

import orjson
import pytest

from broker.service.delivery import (
    MAX_OFFSET,
    BadCursor,
    CursorCodec,
    StaleCursor,
    behind,
    cursor_key,
    decode_legacy_cursor,
)

CODEC = CursorCodec(cursor_key(b"fictitious-test-secret-000000001"), "ke_test")


def test_an_issued_cursor_opens_for_its_subscriber_only() -> None:
    cursor = CODEC.issue("test_hub", {0: 5, 2: 7})
    assert CODEC.open("test_hub", cursor) == {0: 5, 2: 7}
    with pytest.raises(BadCursor):
        CODEC.open("test_other", cursor)
    assert CODEC.open("test_hub", None) == {} == CODEC.open("test_hub", "")


def test_any_change_to_an_issued_cursor_is_refused() -> None:
    cursor = CODEC.issue("test_hub", {0: 5})
    for i in range(len("c2."), len(cursor)):
        changed = cursor[:i] + ("A" if cursor[i] != "A" else "B") + cursor[i + 1:]
        with pytest.raises(BadCursor):
            CODEC.open("test_hub", changed)


def test_a_cursor_of_another_epoch_or_version_is_stale_not_bad() -> None:
    old = CursorCodec(CODEC.key, "ke_before_the_loss").issue("test_hub", {0: 5})
    with pytest.raises(StaleCursor):
        CODEC.open("test_hub", old)
    unsigned = base64.urlsafe_b64encode(orjson.dumps({"0": 5})).decode()
    with pytest.raises(StaleCursor):
        CODEC.open("test_hub", unsigned)
    assert decode_legacy_cursor(unsigned) == {0: 5}


@pytest.mark.parametrize("positions", [{"0": MAX_OFFSET + 1}, {"0": -1}, {"0": 99999999999999999999999},
                                       {"-1": 0}, {"2147483648": 0}, {"0": 1.0}, {"0": True}, {"0": "1"}, [],
                                       {str(p): 0 for p in range(1025)}])
def test_numbers_out_of_range_never_open(positions: object) -> None:
    with pytest.raises(BadCursor):
        decode_legacy_cursor(base64.urlsafe_b64encode(json.dumps(positions).encode()).decode())
    payload = base64.urlsafe_b64encode(json.dumps({"e": CODEC.epoch, "p": positions}).encode()).rstrip(b"=").decode()
    signed = f"c2.{payload}.{base64.urlsafe_b64encode(CODEC._mac('test_hub', payload)).rstrip(b'=').decode()}"
    with pytest.raises(BadCursor):
        CODEC.open("test_hub", signed)


def test_behind_names_the_partitions_that_would_go_backwards() -> None:
    assert behind({0: 5}, {0: 5}) == [] and behind({0: 6}, {0: 5}) == []
    assert behind({0: 4}, {0: 5}) == [0]
    assert behind({}, {0: 1, 1: 0}) == [0]


def test_only_the_issued_spelling_opens() -> None:
    """base64 decoders skip stray characters and ignore the last character's unused bits: neither may make a second
    spelling of an issued cursor."""
    import string

    cursor = CODEC.issue("test_hub", {0: 5})
    for ch in string.ascii_letters + string.digits + "-_=.":
        for variant in (cursor[:-1] + ch, cursor + ch, cursor[:5] + ch + cursor[5:]):
            if variant != cursor:
                with pytest.raises(BadCursor):
                    CODEC.open("test_hub", variant)
