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
        # linger 0: a message goes out at once (what is produced while a request is in flight is batched anyway);
        # 2 ms of linger on each of the four produce hops of an event was a fifth of its latency at 100 events/s
        linger_ms=0, max_batch_size=256 * 1024, request_timeout_ms=10_000, retry_backoff_ms=200,
    )


# 6 s is the lowest session timeout Kafka accepts by default (group.min.session.timeout.ms): a killed worker's
# partitions move to the others within seconds, and the embedded broker, which holds a new group's first join for
# half the session timeout, lets a worker start in 3 s instead of 5.
SESSION_TIMEOUT_MS = 6000
# The embedded broker answers a fetch only when its wait runs out, not when data arrives (aiokafka's default wait is
# 500 ms, which was most of the intake-to-delivery latency); Kafka answers as soon as data arrives either way, so a
# short wait costs only more empty fetches when idle. Measured on the embedded broker, one partition: a message
# produced mid-wait was read after 10.5 ms (median) with a 50 ms wait, 7.5 ms with 10 ms; the price is 100 empty
# fetches a second per worker, about 0.7 ms of the embedded broker's CPU each (broker/bench/RESULTS.md).
GROUP_FETCH_WAIT_MS = 10


def group_consumer(bootstrap: str, group: str, *topics: str, fetch_wait_ms: int = GROUP_FETCH_WAIT_MS,
                   **security: Any) -> AIOKafkaConsumer:
    """A consumer-group member that commits offsets only after its work is safely produced downstream."""
    return AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_uncommitted", max_poll_records=500,
        session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000, fetch_max_wait_ms=fetch_wait_ms,
        **security,
    )


# A reader's long-poll must end well within a caller's empty-poll timeout, or a seek waits behind it.
READER_FETCH_WAIT_MS = 100


def reader(bootstrap: str, fetch_wait_ms: int = READER_FETCH_WAIT_MS, **security: Any) -> AIOKafkaConsumer:
    """A group-less consumer for cursor reads (HTTP pull): partitions are assigned and seeked by hand."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                            fetch_max_wait_ms=fetch_wait_ms, **security)
