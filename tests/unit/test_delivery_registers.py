"""The delivery edge's registers on SQLite and on PostgreSQL: the Kafka epoch (first writer wins, compare and swap
after a loss), acknowledgements that refuse to go back inside one transaction, and held deliveries in order."""

from __future__ import annotations

import pytest

from broker.stores.cursors import CursorStore
from broker.stores.held import Held, HeldDeliveries

EVENTS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)]


def test_the_epoch_is_first_writer_wins_then_swapped_once(tmp_path, store_url) -> None:
    a = CursorStore(tmp_path / "cursors.sqlite", store_url)
    b = CursorStore(tmp_path / "cursors.sqlite", store_url)  # another process on the same registers
    assert a.epoch() is None
    assert a.adopt_epoch("ke_a", "t1").epoch == "ke_a"
    assert b.adopt_epoch("ke_b", "t1").epoch == "ke_a"  # the later start takes the one in force
    assert a.replace_epoch("ke_a", "ke_c", "t2") is True
    assert b.replace_epoch("ke_a", "ke_d", "t2") is False  # it lost the race: the first swap stands
    record = b.epoch()
    assert record is not None and record.epoch == "ke_c" and record.lost_at == "t2"
    a.put("hub", "c2.x.y", "t3")
    assert a.db.clear(a.TABLE) == 1 and a.get("hub") is None and a.epoch() is not None  # cursors go, the epoch stays
    a.close()
    b.close()


def test_a_refused_acknowledgement_leaves_the_cursor_as_it_was(tmp_path, store_url) -> None:
    store = CursorStore(tmp_path / "cursors.sqlite", store_url)
    store.put("hub", "first", "t1")

    def refuse(current: str | None) -> None:
        assert current == "first"
        raise ValueError("behind")

    with pytest.raises(ValueError):
        store.put_if("hub", "older", "t2", refuse)
    assert store.get("hub") == "first"
    store.put_if("hub", "later", "t3", lambda current: None)
    assert store.get("hub") == "later"
    store.close()


def test_held_deliveries_come_back_in_topic_order_and_survive_a_restart(tmp_path, store_url) -> None:
    path = tmp_path / "held.sqlite"
    held = HeldDeliveries(path, store_url)
    held.hold([Held("other", EVENTS[2], 1, 9), Held("other", EVENTS[0], 0, 7), Held("other", EVENTS[1], 0, 3),
               Held("hub", EVENTS[3], 2, 1)], "t1")
    held.hold([Held("other", EVENTS[0], 2, 99)], "t2")  # a resend of a held event keeps its first position
    held.close()
    reopened = HeldDeliveries(path, store_url)
    assert reopened.counts() == {"other": 3, "hub": 1}
    assert [(h.event_id, h.partition, h.offset) for h in reopened.oldest("other")] == [
        (EVENTS[1], 0, 3), (EVENTS[0], 0, 7), (EVENTS[2], 1, 9)]
    reopened.release("other", [EVENTS[1], EVENTS[0]])
    assert [h.event_id for h in reopened.oldest("other")] == [EVENTS[2]]
    assert reopened.db.clear(reopened.TABLE) == 2 and reopened.counts() == {}
    reopened.close()
