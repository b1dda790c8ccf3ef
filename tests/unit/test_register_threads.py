"""Registers called from many threads at once (async code calls them through broker.aio.blocking, so worker threads
share each register's one connection): every transaction stays whole, and a check-then-write cannot be split by
another thread's write. A register whose connection lock went missing fails here with SQLite's "cannot start a
transaction within a transaction" or with a cursor moved backwards."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from broker.stores.cursors import CursorStore
from broker.stores.delivered import DeliveredLog

ACKS = 300


def test_acknowledgements_from_many_threads_never_move_the_cursor_backwards(tmp_path: Path) -> None:
    store = CursorStore(tmp_path / CursorStore.FILE)
    refused: list[int] = []

    def ack(n: int) -> None:
        def not_behind(current: str | None) -> None:  # the API's check, in the write's transaction
            if current is not None and int(current) > n:
                raise ValueError("behind")

        try:
            store.put_if("test_hub", f"{n:06d}", "2026-01-01T00:00:00Z", not_behind)
        except ValueError:
            refused.append(n)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ack, range(ACKS)))  # list(): a thread's unexpected exception is raised here
    assert store.get("test_hub") == f"{ACKS - 1:06d}"
    assert ACKS - 1 not in refused
    store.close()


def test_marks_from_many_threads_are_all_kept(tmp_path: Path) -> None:
    log = DeliveredLog(tmp_path / DeliveredLog.FILE)

    def mark(n: int) -> None:
        log.mark([("test_hub", f"ev{n}", f"d{n}")], [(f"lt1_token{n:04d}", "test_hub")])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(mark, range(ACKS)))
    assert log.sent(["test_hub"], (f"ev{n}" for n in range(ACKS))) == {("test_hub", f"ev{n}") for n in range(ACKS)}
    assert log.recipients([f"lt1_token{n:04d}" for n in range(ACKS)]) == {"test_hub"}
    log.close()
