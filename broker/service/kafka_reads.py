"""The edge of Kafka reads: every `MASH_KAFKA_READS_INTERVAL_SECONDS`, ask the cluster for every consumer group's
committed offsets on the delivery topics and audit those that advanced (`delivery_read_up_to`, the pure part in
broker/audit/kafka_reads.py). Run beside the audit indexer; two processes polling emit the same record ids, which the
store drops, so no coordination is needed. The broker's own readers (HTTP pull) use no group and never count.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient

from broker.audit.kafka_reads import Committed, Key, read_up_to_records
from broker.clock import now_iso
from broker.logging import get_logger

if TYPE_CHECKING:
    from broker.service.runtime import Runtime

log = get_logger("mash.kafka_reads")


async def committed_offsets(admin: AIOKafkaAdminClient, topics: Mapping[str, str]) -> list[Committed]:
    """Every consumer group's committed offsets on the given topics (a group with nothing committed there has
    none)."""
    found = []
    for group, *_ in await admin.list_consumer_groups():
        offsets = await admin.list_consumer_group_offsets(group)
        found += [Committed(group, tp.topic, tp.partition, om.offset) for tp, om in offsets.items()
                  if tp.topic in topics and om.offset >= 0]
    return found


async def poll_reads(admin: AIOKafkaAdminClient, topics: Mapping[str, str], previous: Mapping[Key, int],
                     ) -> tuple[list[dict[str, Any]], dict[Key, int]]:
    """One look: (the read-up-to records to emit, the offsets now known). `topics`: delivery topic -> subscriber."""
    return read_up_to_records(previous, await committed_offsets(admin, topics), topics, time=now_iso())


async def run_kafka_reads(rt: Runtime, stop: asyncio.Event, interval: float) -> None:
    """Until `stop`: poll, emit, sleep. A failed look (cluster unreachable, a broker without the group APIs) is
    logged and tried again at the next interval; nothing is lost, as committed offsets stay on the cluster."""
    if rt.embedded is not None:  # Tansu answers ListGroups in a form aiokafka cannot read: nothing to learn there
        log.info("kafka_reads_unavailable", reason="the embedded development broker lists no consumer groups")
        await stop.wait()  # a worker task that ended would read as a dead worker in /readyz
        return
    topics = {rt.settings.topics.deliver(s): s for s in rt.protocol.subscribers}
    known: dict[Key, int] = {}
    admin: AIOKafkaAdminClient | None = None
    try:
        while not stop.is_set():
            try:
                if admin is None:
                    admin = AIOKafkaAdminClient(bootstrap_servers=rt.bootstrap, client_id="mash-broker-reads",
                                                request_timeout_ms=10_000, **rt.kafka_security)
                    await admin.start()
                records, seen = await poll_reads(admin, topics, known)
                if records:
                    await rt.emit_audit(records)
                known = seen  # only once emitted: a failed emit is tried again next time
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("kafka_reads_failed", reason=type(exc).__name__)
                if admin is not None:
                    with contextlib.suppress(Exception):
                        await admin.close()
                admin = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()
