"""Only the process that appends to the audit store gives it the large page cache (issue 24, session 14).

A share worker reads the audit store (its insight watch, hourly, in seq order) but never appends; through the
indexer's 32 MiB cache that read grew the worker by 35 MB in session 13's soak. The indexer sets the cache when it
starts (AuditStore.cache_for_appends); every other process keeps SQLite's default.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.audit.store import AUDIT_CACHE_KIB, AuditStore
from tests.integration.service import running_service

pytestmark = pytest.mark.integration

SQLITE_DEFAULT = -2000  # SQLite's compiled-in default: 2,000 KiB, as a negative (KiB) cache_size


def _cache_size(store: AuditStore) -> int:
    return int(store._sql.conn.execute("PRAGMA cache_size").fetchone()[0])


async def test_a_process_that_runs_the_indexer_gives_its_store_the_appender_cache(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc:
        for _ in range(200):  # the indexer task sets it once it starts
            if _cache_size(svc.runtime.audit_store) == -AUDIT_CACHE_KIB:
                break
            await asyncio.sleep(0.05)
        assert _cache_size(svc.runtime.audit_store) == -AUDIT_CACHE_KIB


async def test_a_share_worker_without_the_indexer_keeps_sqlite_s_default_cache(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, audit_indexer=False) as svc:
        await asyncio.sleep(0.5)  # give a wrongly started indexer the time to set it
        assert all(not t.done() for t in svc.runtime.tasks)  # the share worker is running
        assert _cache_size(svc.runtime.audit_store) == SQLITE_DEFAULT
