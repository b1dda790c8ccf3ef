"""Blocking I/O off the event loop (broker/aio.py): a register write that waits (on a lock another process holds, a
slow disk sync, a PostgreSQL round trip) must not stop the service answering everyone else meanwhile.

Each test holds a real SQLite write lock on one register from a second connection, as another broker process would,
then starts work that must write to that register: a subscriber's acknowledgement, or the share worker's batch. It
waits until that write is pending in a worker thread, asks the same service for /healthz and for another register's
data, and checks they answered while the write was still pending; then lets the lock go and checks the write was
made. Before the rule, the write waited on the event loop itself: nothing answered until SQLite gave up on the lock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from broker.stores.cursors import CursorStore
from broker.stores.db import Db
from broker.stores.delivered import DeliveredLog
from tests.integration.service import running_service

pytestmark = pytest.mark.integration

PENDING_CHECKS = 2000  # polls of a free event loop before giving up on seeing the write pending off it


@contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """The register's SQLite write lock, held by a connection of our own (another process's transaction)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _row(path: Path, sql: str, params: tuple[str, ...]) -> tuple[object, ...] | None:
    """A row read through a connection of the test's own: the register's is held by the pending write, and waiting
    for it here, on the event loop's thread, would hold up the service as much as the bug this file tests for."""
    conn = sqlite3.connect(path)
    try:
        row: tuple[object, ...] | None = conn.execute(sql, params).fetchone()
        return row
    finally:
        conn.close()


def _writing_elsewhere(db: Db) -> bool:
    """Another thread holds the register's connection (a transaction waiting for the lock). The test runs on the
    event loop's thread, where the re-entrant lock would be granted: so True means the write is off the loop."""
    if db._lock.acquire(blocking=False):
        db._lock.release()
        return False
    return True


async def _until_pending(db: Db, request: asyncio.Task[httpx.Response] | None = None) -> bool:
    """Whether the write became pending off the loop (False: the request ended first, or it never did)."""
    for _ in range(PENDING_CHECKS):
        if _writing_elsewhere(db):
            return True
        if request is not None and request.done():
            return False
        await asyncio.sleep(0.01)
    return False


def _health_record() -> bytes:
    return json.dumps({"resourceType": "Patient", "id": "blk1", "gender": "female", "birthDate": "2016-05-06",
                       "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990001235"}],
                       "name": [{"family": "Example", "given": ["Testchild"]}]}).encode()


async def test_an_acknowledgement_waiting_on_the_cursor_lock_leaves_the_service_answering(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=60) as http:
        sub = svc.headers("subscriber:test_hub")
        page = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", headers=sub)
        assert page.status_code == 200, page.text
        cursor = page.json()["next_cursor"]
        cursors, path = svc.runtime.cursors, svc.settings.data_dir / CursorStore.FILE
        acked = "SELECT cursor FROM acked WHERE subscriber = ?"
        assert cursors is not None and _row(path, acked, ("test_hub",)) is None

        with write_locked(path):
            ack = asyncio.create_task(http.post(f"{svc.base_url}/v1/subscribers/test_hub/ack",
                                                json={"cursor": cursor}, headers=sub))
            assert await _until_pending(cursors.db, ack), "the acknowledgement's write did not wait off the loop"
            health = await http.get(f"{svc.base_url}/healthz")
            # another register (the delivered log's first-served offsets): a pull with a cursor reads no cursor row
            other = await http.get(f"{svc.base_url}/v1/subscribers/test_hub/events", params={"after": cursor},
                                   headers=sub)
            assert health.status_code == 200 and other.status_code == 200, other.text
            assert not ack.done(), "the acknowledgement ended while its register was locked"
            assert _writing_elsewhere(cursors.db)  # still waiting: what was seen was the write, not a quick read
            assert _row(path, acked, ("test_hub",)) is None  # not written yet
        answered = await ack
        assert answered.status_code == 200, answered.text
        assert _row(path, acked, ("test_hub",)) == (cursor,)


async def test_a_share_batch_waiting_on_the_delivered_log_leaves_the_service_answering(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=60) as http:
        delivered, path = svc.runtime.delivered, svc.settings.data_dir / DeliveredLog.FILE
        marked = f"SELECT subscriber FROM {DeliveredLog.TABLE} WHERE subscriber = ? AND event_id = ?"
        assert delivered is not None
        with write_locked(path):
            sent = await http.post(f"{svc.base_url}/v1/records/health", content=_health_record(),
                                   headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
            assert sent.status_code == 202, sent.text
            event_id = sent.json()["events"][0]["event_id"]
            assert await _until_pending(delivered.db), "the share batch's write did not wait off the loop"
            health = await http.get(f"{svc.base_url}/healthz")
            assert health.status_code == 200
            assert _writing_elsewhere(delivered.db)  # still waiting: what was seen was the write, not a quick read
            assert _row(path, marked, ("test_hub", event_id)) is None  # the batch is still waiting to mark it
        for _ in range(PENDING_CHECKS):  # the lock is gone: the batch's write goes through
            if _row(path, marked, ("test_hub", event_id)) is not None:
                break
            await asyncio.sleep(0.01)
        assert delivered.sent(["test_hub"], [event_id]) == {("test_hub", event_id)}
