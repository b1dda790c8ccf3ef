"""The audit indexer: the single writer that chains audit records from the audit topic into the audit store.

Producers emit unchained records; chaining here, in one place, keeps the hash chain linear however many intake and
share processes run. Offsets are committed after the store has the batch; the store drops repeats by record id.

Exactly once into the store, on Apache Kafka too, without a Kafka transaction of its own: the indexer produces
nothing to Kafka (its output is the audit store), so a transaction would hold only its offsets. What matters is what
it reads: `read_committed` (broker/kafka/clients.py), so the audit records of a share worker's aborted batch, whose
deliveries nobody can read either, never enter the chain; a redo after a crash between store and commit is dropped
by record id.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from broker.aio import blocking
from broker.kafka.clients import group_consumer
from broker.logging import get_logger
from broker.service.messages import decode
from broker.service.supervise import supervised

if TYPE_CHECKING:
    from broker.service.ports import IndexerPorts

log = get_logger("mash.audit")
# The audit store may trail the audit topic by a fraction of a second; no delivery waits on it. A short wait made the
# embedded broker spend a large share of a core answering the indexer's empty fetches.
INDEXER_FETCH_WAIT_MS = 200
# Bounded work per step: a message holds up to 200 records, and an indexer behind a saturated pipeline once decoded
# and chained 2,000 messages at a time, which grew its process by 60-70 MB. Records are appended (one transaction
# each) in chunks of about APPEND_RECORDS; offsets are committed once everything gathered is stored.
POLL_MESSAGES = 100
APPEND_RECORDS = 2000
# Polls are gathered for up to INDEX_GATHER_MS (and at most GATHER_POLLS of them) into one append, one SQLite
# transaction: an append costs about 200-300 us of CPU per record at 10 records a transaction against 90 at 200
# (each commit syncs the WAL and rewrites the head and the index pages it touched; broker/bench/RESULTS.md,
# Session 8), and at one record per request each poll holds only a few. The store trails the topic by this much
# more; no delivery waits on it.
INDEX_GATHER_MS = 100
GATHER_POLLS = 20


def _records(value: object) -> list[object]:
    """A message holds one request's records as an array (a single object is accepted too)."""
    return value if isinstance(value, list) else [value]


def _skip_invalid(index: int, problems: list[str]) -> None:
    """An invalid audit record is reported (field names only) and skipped: it must not stall the indexer."""
    log.error("audit_record_invalid", index=index, problems=problems)


async def run_audit_indexer(rt: IndexerPorts, stop: asyncio.Event) -> None:
    await supervised(stop, lambda: _index_loop(rt, stop), log=log, crashed="audit_indexer_crashed",
                     restarts=rt.metrics.worker_restarts)


async def _index_loop(rt: IndexerPorts, stop: asyncio.Event) -> None:
    store = rt.audit_store
    await blocking(store.cache_for_appends)  # this process appends: the large page cache is for that
    consumer = group_consumer(rt.bootstrap, rt.settings.group("audit-indexer"), rt.settings.topics.audit,
                              fetch_wait_ms=INDEXER_FETCH_WAIT_MS, **rt.kafka_security)
    await consumer.start()
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=POLL_MESSAGES)
            if not batch:
                continue
            pending: list[object] = []
            polled = 0
            gather_until = loop.time() + INDEX_GATHER_MS / 1000
            while batch:
                for message in (m for msgs in batch.values() for m in msgs):
                    pending += _records(decode(message.value))
                    if len(pending) >= APPEND_RECORDS:
                        await blocking(store.append, pending, on_invalid=_skip_invalid)
                        pending = []
                polled += 1
                left = gather_until - loop.time()
                if left <= 0 or polled >= GATHER_POLLS or stop.is_set():
                    break
                # returns as soon as more arrives: an append per gathered batch, not one per small poll
                batch = await consumer.getmany(timeout_ms=max(1, int(left * 1000)), max_records=POLL_MESSAGES)
            if pending:
                await blocking(store.append, pending, on_invalid=_skip_invalid)
            await consumer.commit()  # only once the store has every record polled (crash: redone, dropped by id)
    finally:
        await consumer.stop()
