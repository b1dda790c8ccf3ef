"""Producer and consumer factories with the broker's delivery guarantees.

Two modes, chosen once per process by whether the cluster grants a transactional producer (`start_transactional`):

- Apache Kafka (and any broker with transactions): each share worker consumes, produces and commits its input
  offsets in one Kafka transaction per batch, so what a worker killed mid-batch had produced is aborted, never seen
  by a `read_committed` reader, and redone by whoever takes the partitions over: exactly once on the topics.
- The embedded broker (Tansu) has neither idempotent nor transactional producers: acks=all, offsets committed after
  every delivery is acknowledged (at-least-once), and the delivered log drops what a subscriber was already sent.

The service's own producer (intake's events, audit records, the hub's and erasure notices: `start_producer`) is
idempotent where the cluster grants a producer id, as Apache Kafka does: a produce whose acknowledgement is lost is
sent again with the same producer id and sequence number, and the broker answers it without writing it twice. Its
start is the question, once per process: Tansu refuses the producer id (UnknownError, at once), and there the
producer is a plain acks=all one, so a retried produce can write an event twice on Tansu (a documented limit; the
share workers' delivered log drops the second copy before a subscriber sees it). Transactions are a second grant,
asked for by the first share worker (a transactional id's ACL): a cluster may grant the one and not the other.

Every reader of the broker's topics reads `read_committed` in both modes: on Tansu, where nothing is transactional,
that is every message; on Apache Kafka it hides aborted and still-open transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError

# Every reader of delivery, audit and events topics: aborted or open transactions stay invisible.
ISOLATION = "read_committed"


# aiokafka's idempotent producer never gives a batch up (it retries until the broker acknowledges it, so that no
# retry lands out of order), so its stop() would wait for an unreachable cluster for as long as it is away; a plain
# producer gives a batch up after request_timeout_ms. Stopping, the idempotent one gives up after as long.
STOP_FLUSH_S = 10.0


class IdempotentProducer(AIOKafkaProducer):
    """An idempotent producer whose stop() ends within STOP_FLUSH_S while the cluster is unreachable (a shutdown
    during an outage): what is still unacknowledged then fails with KafkaTimeoutError, as a plain producer's would."""

    async def stop(self) -> None:
        stopping = asyncio.ensure_future(super().stop())
        done, _ = await asyncio.wait([stopping], timeout=STOP_FLUSH_S)
        if not done:
            # aiokafka has no public call to give batches up: its sender stopped first (nothing is retried any more),
            # then failing them ends the flush its stop() waits for
            await self._sender.close()
            self._message_accumulator.fail_all(KafkaTimeoutError())
        await stopping


def producer(bootstrap: str, client_id: str = "mash-broker", *, idempotent: bool = False,
             **security: Any) -> AIOKafkaProducer:
    """An acks=all producer; `idempotent` where the cluster grants a producer id (`start_producer` finds out).
    Idempotent, aiokafka keeps one request in flight per partition (as it always does) and retries a batch until it
    is acknowledged instead of failing it after request_timeout_ms: callers bound their wait (intake's timeout)."""
    return (IdempotentProducer if idempotent else AIOKafkaProducer)(
        bootstrap_servers=bootstrap, client_id=client_id, acks="all", enable_idempotence=idempotent, **security,
        # linger 0: a message goes out at once (what is produced while a request is in flight is batched anyway);
        # 2 ms of linger on each of the four produce hops of an event was a fifth of its latency at 100 events/s
        linger_ms=0, max_batch_size=256 * 1024, request_timeout_ms=10_000, retry_backoff_ms=200,
    )


# How long an idempotent producer may take to start (InitProducerId, one round trip to any node).
PRODUCER_START_S = 30.0


async def start_producer(bootstrap: str, client_id: str = "mash-broker",
                         **security: Any) -> tuple[AIOKafkaProducer, str]:
    """The started idempotent producer and "" where the cluster grants a producer id (Apache Kafka); where it
    refuses one (Tansu answers InitProducerId with UnknownError), the started plain acks=all producer and why. An
    unreachable cluster raises, as it did before this question (the caller's start fails; it is no answer)."""
    out = producer(bootstrap, client_id, idempotent=True, **security)
    why = await _start_or_refusal(out, PRODUCER_START_S)
    if not why:
        return out, ""
    plain = producer(bootstrap, client_id, **security)
    await plain.start()
    return plain, why


async def _start_or_refusal(out: AIOKafkaProducer, timeout_s: float) -> str:
    """"" when `out` started; the error's name when the cluster refused its producer id (stopped again then).
    Anything else, an unreachable cluster among it, is raised with `out` stopped."""
    try:
        await asyncio.wait_for(out.start(), timeout_s)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(out.stop(), 5)
        if isinstance(exc, KafkaError) and not isinstance(exc, TRANSIENT):
            return type(exc).__name__
        raise
    return ""


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
# Apache Kafka (and every broker with transactions) answers a fetch as soon as data arrives (fetch.min.bytes 1), so
# its wait bounds only how often an idle consumer asks again. Measured on one Apache Kafka 4.3.1 node, six idle
# group consumers cost the JVM 0.30 of a core at a 10 ms wait and 0.05 at 500 ms (aiokafka's default), with no
# change in how soon a produced message is read.
ANSWERING_FETCH_WAIT_MS = 500


def fetch_wait_ms(answers_on_arrival: bool) -> int:
    """A group consumer's fetch wait: long where the broker answers on arrival (Apache Kafka), short on Tansu."""
    return ANSWERING_FETCH_WAIT_MS if answers_on_arrival else GROUP_FETCH_WAIT_MS


def group_consumer(bootstrap: str, group: str, *topics: str, fetch_wait_ms: int = GROUP_FETCH_WAIT_MS,
                   **security: Any) -> AIOKafkaConsumer:
    """A consumer-group member that commits offsets only after its work is safely produced downstream."""
    return AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level=ISOLATION, max_poll_records=500,
        session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000, fetch_max_wait_ms=fetch_wait_ms,
        **security,
    )


# A reader's long-poll must end well within a caller's empty-poll timeout, or a seek waits behind it.
READER_FETCH_WAIT_MS = 100


def reader(bootstrap: str, fetch_wait_ms: int = READER_FETCH_WAIT_MS, **security: Any) -> AIOKafkaConsumer:
    """A group-less consumer for cursor reads (HTTP pull): partitions are assigned and seeked by hand."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                            fetch_max_wait_ms=fetch_wait_ms, isolation_level=ISOLATION, **security)


# A transaction left open by a worker that died is aborted by the cluster after this long, unless the worker's
# successor (same transactional id) aborts it first on start. Until then `read_committed` readers of the topics it
# wrote wait at its first message, so it is short; it is still far above a batch's life (TX_BUDGET_MS in share.py).
TRANSACTION_TIMEOUT_MS = 10_000
# How long a transactional producer may take to start (InitProducerId: the first one on a fresh cluster also creates
# __transaction_state, a few seconds on one node).
TRANSACTIONAL_START_S = 60.0


def transactional_producer(bootstrap: str, transactional_id: str, client_id: str = "mash-broker",
                           **security: Any) -> AIOKafkaProducer:
    """A producer whose sends and offset commits are one Kafka transaction per batch (idempotent, acks=all)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id=client_id, acks="all", enable_idempotence=True,
        transactional_id=transactional_id, transaction_timeout_ms=TRANSACTION_TIMEOUT_MS, **security,
        linger_ms=0, max_batch_size=256 * 1024, request_timeout_ms=10_000, retry_backoff_ms=200,
    )


async def start_transactional(bootstrap: str, transactional_id: str,
                              **security: Any) -> tuple[AIOKafkaProducer | None, str]:
    """(the started transactional producer, "") or (None, why) where the cluster refuses transactions: Tansu answers
    InitProducerId with an error at once; a cluster without an ACL for the id refuses it by name. Starting it fences
    any earlier producer with the same id: an open transaction of a killed predecessor is aborted here, and a zombie
    predecessor's next send or commit fails. An unreachable cluster raises (the caller retries; it is no answer)."""
    out = transactional_producer(bootstrap, transactional_id, **security)
    why = await _start_or_refusal(out, TRANSACTIONAL_START_S)
    return (None, why) if why else (out, "")


# Errors that say nothing about transactions: the cluster is not (yet) reachable.
TRANSIENT = (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError)
