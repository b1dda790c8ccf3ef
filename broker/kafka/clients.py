"""Producer and consumer factories with the broker's delivery guarantees.

acks=all and no reliance on idempotent or transactional producers (the embedded broker has neither): delivery is
at-least-once, and every consumer drops duplicates by event id.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def producer(bootstrap: str, client_id: str = "mash-broker", **security: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id=client_id, acks="all", enable_idempotence=False, **security,
        linger_ms=2, max_batch_size=256 * 1024, request_timeout_ms=10_000, retry_backoff_ms=200,
    )


def group_consumer(bootstrap: str, group: str, *topics: str, **security: Any) -> AIOKafkaConsumer:
    """A consumer-group member that commits offsets only after its work is safely produced downstream."""
    return AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_uncommitted", max_poll_records=500, **security,
    )


# A reader's long-poll must end well within a caller's empty-poll timeout, or a seek waits behind it.
READER_FETCH_WAIT_MS = 100


def reader(bootstrap: str, **security: Any) -> AIOKafkaConsumer:
    """A group-less consumer for cursor reads (HTTP pull): partitions are assigned and seeked by hand."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                            fetch_max_wait_ms=READER_FETCH_WAIT_MS, **security)
