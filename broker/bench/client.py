"""`mash-broker bench client`: what a compiled Kafka client would save the pipeline (issue 24's lever, measured).

The same Kafka work in the pipeline's own patterns and sizes, through aiokafka (pure Python: what the pipeline runs,
with its settings from broker/kafka/clients.py) and confluent-kafka (librdkafka, compiled, given the same settings),
on the same broker and topics, round by round in one process:

- intake-1, intake-20: the service's producer (acks=all, linger 0, idempotent: clients.py `start_producer`): events
  of 2.5 KB with their three headers, keyed by linkage token over the events topic's partitions; each group of 1 or
  20 is sent and its acknowledgements awaited before the next (one HTTP request's records, intake.py `_publish`);
- share: a share worker's transaction (clients.py `transactional_producer`, share.py `_transaction` and `_apply`):
  read a poll of events, produce one 3.7 KB delivery with its headers per event over the subscribers' topics and
  await them, then the batch's audit records (6 per event, 1 KB each) in messages of AUDIT_CHUNK records, awaited,
  the input offsets sent to the transaction, commit;
- read-events, read-audit: a read_committed reader taking a whole topic at full speed (the hub watch's events; the
  indexer's audit messages of AUDIT_CHUNK records).

librdkafka runs twice: at the pipeline's linger 0, and at 5 ms (LINGER_MS). Per round and client: process CPU
(`time.process_time`: every thread, librdkafka's own included), wall time and, when its process is known, the Kafka
node's CPU, from the client's first call on the work to its last acknowledgement, commit or message; making and
connecting the client, and one warm-up round per client, are outside. Rounds rotate which client goes first, so a
drift of the host's speed falls on all. Nothing is processed: the bytes are fixed, so the figures are the clients'
cost alone.
Figures per unit: a message produced (intake), an event (share: its read, delivery and share of the audit), a
message read. Counts are reported beside them, so a client cannot look cheap by doing less.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiokafka import TopicPartition

from broker import aio
from broker.bench.e2e import cpu_seconds
from broker.kafka.admin import ensure_topics
from broker.kafka.clients import (
    ANSWERING_FETCH_WAIT_MS,
    ISOLATION,
    READER_FETCH_WAIT_MS,
    TRANSACTION_TIMEOUT_MS,
    group_consumer,
    reader,
    start_producer,
    transactional_producer,
)
from broker.service.audit_emitter import AUDIT_CHUNK

# librdkafka twice: with the pipeline's linger 0, and with 5 ms (its own default), which lets it gather a group's
# sends into one request as aiokafka does by itself (flush() sends at once, so an awaited group waits no longer)
LINGER_MS = {"confluent-kafka": 0, "confluent-kafka-linger5": 5}
CLIENTS = ("aiokafka", *LINGER_MS)
SCENARIOS = ("intake-1", "intake-20", "share", "read-events", "read-audit")
UNITS = {"intake-1": "message produced", "intake-20": "message produced", "share": "event",
         "read-events": "message read", "read-audit": "message read"}
READ_POLL = 500  # messages a reader takes per call: the pipeline's max_poll_records
STALL_S = 60.0  # no progress for this long: the broker or a client has stalled, and the bench says so
TOKENS = 200  # fictitious children: the keys spread over the partitions as the bench's mix does
NEEDS_CONFLUENT = ("`mash-broker bench client` needs confluent-kafka (librdkafka), a dev dependency: "
                   "pip install -e '.[dev]' (or pip install confluent-kafka)")


class ClientBenchError(RuntimeError):
    """A stall or a refused send: one plain line for the user."""


@dataclass(frozen=True)
class Shape:
    """The pipeline's message sizes and layout (issue 24; broker/kafka/topology.py's partitions)."""

    event_bytes: int = 2500
    delivery_bytes: int = 3700
    audit_record_bytes: int = 1000
    audits_per_event: int = 6
    subscribers: int = 5
    event_partitions: int = 6
    poll: int = 500  # events per transaction: the share worker's POLL_MESSAGES

    @property
    def audit_message_bytes(self) -> int:
        return AUDIT_CHUNK * self.audit_record_bytes


@dataclass(frozen=True)
class Work:
    intake_messages: int = 2000
    share_events: int = 1500
    read_messages: int = 4000
    audit_messages: int = 100


@dataclass
class Topics:
    events: str  # intake's target, 6 partitions
    share_in: str  # the share worker's input, filled once, read whole by every round
    deliver: list[str]  # one per subscriber, 1 partition each
    audit: str
    read_events: str
    read_audit: str

    @classmethod
    def named(cls, run: str, shape: Shape) -> Topics:
        p = f"mash-bench.client.{run}"
        return cls(f"{p}.events", f"{p}.share-in", [f"{p}.deliver.s{i}" for i in range(shape.subscribers)],
                   f"{p}.audit", f"{p}.read-events", f"{p}.read-audit")

    def plan(self, shape: Shape) -> list[tuple[str, int]]:
        return [(self.events, shape.event_partitions), (self.share_in, shape.event_partitions),
                (self.read_events, shape.event_partitions), (self.audit, 1), (self.read_audit, 1),
                *((t, 1) for t in self.deliver)]


@dataclass
class Round:
    """One client's pass over one scenario's work."""

    cpu_s: float
    wall_s: float
    broker_cpu_s: float | None  # the Kafka node's CPU over the same window, when its process is known
    units: int  # messages produced, events shared or messages read
    acked: int = 0  # produced messages acknowledged (intake, share: deliveries and audit messages)
    read: int = 0  # messages consumed
    committed_group: str = ""  # share: the group whose offsets the transactions committed

    def per_unit_us(self) -> tuple[float, float, float | None]:
        n = max(self.units, 1)
        return 1e6 * self.cpu_s / n, 1e6 * self.wall_s / n, None if self.broker_cpu_s is None else \
            1e6 * self.broker_cpu_s / n


@dataclass
class Timer:
    """This process's CPU (every thread) and wall time over a window, and the Kafka node's CPU when its pid is
    known: a client that sends more or smaller requests makes the broker pay, and that counts against it too."""

    broker_pid: int | None = None
    _at: tuple[float, float, float | None] = (0.0, 0.0, None)

    def _broker(self) -> float | None:
        return cpu_seconds(self.broker_pid) if self.broker_pid else None

    def start(self) -> None:
        self._at = (time.process_time(), time.perf_counter(), self._broker())

    def stop(self) -> tuple[float, float, float | None]:
        cpu0, wall0, broker0 = self._at
        cpu, wall, broker = time.process_time() - cpu0, time.perf_counter() - wall0, self._broker()
        return cpu, wall, None if broker is None or broker0 is None else broker - broker0


@dataclass
class Payloads:
    """The fixed bytes every round sends: made once, outside every timing."""

    shape: Shape
    event: bytes = b""
    delivery: bytes = b""
    audit_message: bytes = b""
    keys: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.shape
        self.event, self.delivery = b"e" * s.event_bytes, b"d" * s.delivery_bytes
        self.audit_message = b"a" * s.audit_message_bytes
        self.keys = [f"lt-bench-{i:04d}".encode() for i in range(TOKENS)]

    @staticmethod
    def headers(i: int, kind: str) -> list[tuple[str, str | bytes | None]]:  # confluent-kafka's header type
        """Three headers, as an event (event_id, event_type, schema_version) or delivery (event_id, decision_id,
        protocol_version) carries: same-length fictitious ids."""
        ident = f"{i:08d}-0000-4000-8000-999000000000".encode()
        return [("event_id", ident), (kind, ident), ("version", b"1")]


def _audit_chunks(events: int, shape: Shape) -> int:
    """Audit messages a batch of `events` makes: its records in messages of AUDIT_CHUNK (audit_emitter.py)."""
    return -(-events * shape.audits_per_event // AUDIT_CHUNK)


def _watch(what: str, progress: Callable[[], int]) -> Callable[[], None]:
    """A check to call in a loop: raises ClientBenchError when `progress()` has not moved for STALL_S."""
    state = {"at": time.monotonic(), "seen": progress()}

    def check() -> None:
        now, seen = time.monotonic(), progress()
        if seen != state["seen"]:
            state.update(at=now, seen=seen)
        elif now - state["at"] > STALL_S:
            raise ClientBenchError(f"{what}: no progress for {STALL_S:.0f} s ({seen} so far)")

    return check


# --- aiokafka: the pipeline's own client and settings -------------------------------------------------------------
async def _aio_intake(timer: Timer, bootstrap: str, topics: Topics, pay: Payloads, count: int, group: int) -> Round:
    out, _ = await start_producer(bootstrap, client_id="mash-bench-client")  # runs on clusters with transactions
    try:
        await (await out.send(topics.events, pay.event, key=pay.keys[0]))  # connected to the leader: untimed
        acked = 0
        timer.start()
        for start in range(0, count, group):
            sends = [await out.send(topics.events, pay.event, key=pay.keys[i % TOKENS],
                                    headers=pay.headers(i, "event_type"))
                     for i in range(start, min(start + group, count))]
            acked += len(await asyncio.gather(*sends))
        cpu, wall, broker = timer.stop()
    finally:
        await out.stop()
    return Round(cpu, wall, broker, count, acked=acked)


async def _aio_share(timer: Timer, bootstrap: str, topics: Topics, pay: Payloads, events: int, tag: str) -> Round:
    shape, group = pay.shape, f"mash-bench-client-{tag}"
    out = transactional_producer(bootstrap, f"{group}-tx", client_id="mash-bench-client")
    await out.start()  # InitProducerId: a worker's start, untimed
    consumer = group_consumer(bootstrap, group, fetch_wait_ms=ANSWERING_FETCH_WAIT_MS)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topics.share_in, p) for p in range(shape.event_partitions)])
        read = acked = 0
        stalled = _watch("aiokafka share worker", lambda: read)
        timer.start()
        while read < events:
            batch: list[Any] = []
            while len(batch) < min(shape.poll, events - read):
                got = await consumer.getmany(timeout_ms=200, max_records=min(shape.poll, events - read) - len(batch))
                batch += [m for msgs in got.values() for m in msgs]
                stalled()
            offsets: dict[TopicPartition, int] = {}
            for m in batch:
                offsets[TopicPartition(m.topic, m.partition)] = m.offset + 1
            async with out.transaction():
                sends = [await out.send(topics.deliver[(read + i) % shape.subscribers], pay.delivery,
                                        key=m.key, headers=pay.headers(read + i, "decision_id"))
                         for i, m in enumerate(batch)]
                acked += len(await asyncio.gather(*sends))
                audit = [await out.send(topics.audit, pay.audit_message)
                         for _ in range(_audit_chunks(len(batch), shape))]
                acked += len(await asyncio.gather(*audit))
                await out.send_offsets_to_transaction(offsets, group)
            read += len(batch)
        cpu, wall, broker = timer.stop()
    finally:
        await consumer.stop()
        await out.stop()
    return Round(cpu, wall, broker, events, acked=acked, read=read, committed_group=group)


async def _aio_read(timer: Timer, bootstrap: str, topic: str, partitions: int, count: int) -> Round:
    consumer = reader(bootstrap, fetch_wait_ms=READER_FETCH_WAIT_MS)
    await consumer.start()
    try:
        read = 0
        stalled = _watch(f"aiokafka reader of {topic}", lambda: read)
        timer.start()
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while read < count:
            got = await consumer.getmany(timeout_ms=200, max_records=min(READ_POLL, count - read))
            for records in got.values():
                for r in records:
                    if r.value is not None:
                        read += 1
            stalled()
        cpu, wall, broker = timer.stop()
    finally:
        await consumer.stop()
    return Round(cpu, wall, broker, read, read=read)


# --- confluent-kafka: librdkafka with the same settings -----------------------------------------------------------
def _producer_config(bootstrap: str, linger_ms: int = 0) -> dict[str, Any]:
    """clients.py `start_producer`'s settings in librdkafka's names (which then allows up to 5 requests in flight
    per connection, where aiokafka keeps one per partition)."""
    return {"bootstrap.servers": bootstrap, "client.id": "mash-bench-client", "acks": "all",
            "enable.idempotence": True, "linger.ms": linger_ms, "batch.size": 256 * 1024, "request.timeout.ms": 10_000,
            "retry.backoff.ms": 200}


class _Acks:
    """Delivery reports: counted, and the first failure kept (its error name only)."""

    def __init__(self) -> None:
        self.ok, self.failed = 0, ""

    def __call__(self, err: Any, msg: Any) -> None:
        if err is None:
            self.ok += 1
        elif not self.failed:
            self.failed = err.name()

    def check(self, what: str) -> None:
        if self.failed:
            raise ClientBenchError(f"{what}: a send was refused ({self.failed})")


def _flush(out: Any, what: str) -> None:
    """Wait for every acknowledgement, as the pipeline awaits its sends."""
    if out.flush(STALL_S) > 0:
        raise ClientBenchError(f"{what}: acknowledgements missing after {STALL_S:.0f} s")


def _ck_intake(timer: Timer, bootstrap: str, topics: Topics, pay: Payloads, count: int, group: int,
               linger_ms: int) -> Round:
    from confluent_kafka import Producer

    acks = _Acks()
    out = Producer(_producer_config(bootstrap, linger_ms))
    out.produce(topics.events, pay.event, key=pay.keys[0], on_delivery=acks)
    _flush(out, "confluent-kafka intake")  # connected to the leader: untimed
    acks.ok = 0
    timer.start()
    for start in range(0, count, group):
        for i in range(start, min(start + group, count)):
            out.produce(topics.events, pay.event, key=pay.keys[i % TOKENS], headers=pay.headers(i, "event_type"),
                        on_delivery=acks)
        _flush(out, "confluent-kafka intake")
    cpu, wall, broker = timer.stop()
    acks.check("confluent-kafka intake")
    return Round(cpu, wall, broker, count, acked=acks.ok)


def _ck_share(timer: Timer, bootstrap: str, topics: Topics, pay: Payloads, events: int, tag: str,
              linger_ms: int) -> Round:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka import TopicPartition as CkPartition

    shape, group = pay.shape, f"mash-bench-client-{tag}"
    out = Producer(_producer_config(bootstrap, linger_ms) | {
        "enable.idempotence": True, "transactional.id": f"{group}-tx",
        "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS})
    out.init_transactions(STALL_S)  # a worker's start, untimed
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": ISOLATION,
                         "fetch.wait.max.ms": ANSWERING_FETCH_WAIT_MS})
    consumer.list_topics(topics.share_in, STALL_S)  # connected, as aiokafka's start() is: untimed
    acks = _Acks()
    try:
        read = 0
        stalled = _watch("confluent-kafka share worker", lambda: read)
        timer.start()
        consumer.assign([CkPartition(topics.share_in, p) for p in range(shape.event_partitions)])
        while read < events:
            batch: list[Any] = []
            while len(batch) < min(shape.poll, events - read):
                got = consumer.consume(min(shape.poll, events - read) - len(batch), 0.2)
                batch += [m for m in got if m.error() is None]
                stalled()
            offsets: dict[int, int] = {}
            for m in batch:
                offsets[m.partition()] = m.offset() + 1
            out.begin_transaction()
            for i, m in enumerate(batch):
                out.produce(topics.deliver[(read + i) % shape.subscribers], pay.delivery, key=m.key(),
                            headers=pay.headers(read + i, "decision_id"), on_delivery=acks)
            _flush(out, "confluent-kafka share worker")
            for _ in range(_audit_chunks(len(batch), shape)):
                out.produce(topics.audit, pay.audit_message, on_delivery=acks)
            _flush(out, "confluent-kafka share worker")
            out.send_offsets_to_transaction([CkPartition(topics.share_in, p, o) for p, o in offsets.items()],
                                            consumer.consumer_group_metadata(), STALL_S)
            out.commit_transaction(STALL_S)
            read += len(batch)
        cpu, wall, broker = timer.stop()
        acks.check("confluent-kafka share worker")
    finally:
        consumer.close()
    return Round(cpu, wall, broker, events, acked=acks.ok, read=read, committed_group=group)


def _ck_read(timer: Timer, bootstrap: str, topic: str, partitions: int, count: int) -> Round:
    from confluent_kafka import OFFSET_BEGINNING, Consumer
    from confluent_kafka import TopicPartition as CkPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"mash-bench-client-reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": ISOLATION,
                         "fetch.wait.max.ms": READER_FETCH_WAIT_MS})
    try:
        consumer.list_topics(topic, STALL_S)  # connected, as aiokafka's start() is: untimed
        read = 0
        stalled = _watch(f"confluent-kafka reader of {topic}", lambda: read)
        timer.start()
        consumer.assign([CkPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        while read < count:
            # never more than is left: librdkafka's consume waits for all it asks for, or the timeout
            for m in consumer.consume(min(READ_POLL, count - read), 0.2):
                if m.error() is None and m.value() is not None:
                    read += 1
            stalled()
        cpu, wall, broker = timer.stop()
    finally:
        consumer.close()
    return Round(cpu, wall, broker, read, read=read)


# --- the run ------------------------------------------------------------------------------------------------------
def _fill(bootstrap: str, topic: str, value: bytes, count: int, keys: list[bytes] | None) -> None:
    """Untimed set-up: `count` messages onto `topic` (librdkafka: the quickest way to fill it)."""
    from confluent_kafka import Producer

    acks, out = _Acks(), Producer(_producer_config(bootstrap) | {"linger.ms": 5})
    for i in range(count):
        while True:
            try:
                out.produce(topic, value, key=keys[i % len(keys)] if keys else None, on_delivery=acks)
                break
            except BufferError:  # the local queue is full: let it drain
                out.poll(0.1)
    _flush(out, f"filling {topic}")
    acks.check(f"filling {topic}")
    if acks.ok != count:
        raise ClientBenchError(f"filling {topic}: {acks.ok} of {count} messages acknowledged")


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """The sum of `group`'s committed offsets on `topic`: what its transactions committed (a new group from 0)."""
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as CkPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = consumer.committed([CkPartition(topic, p) for p in range(partitions)], timeout=30)
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in committed)


class ClientBench:
    """One run's topics, payloads and rounds; `scenario(name, client, tag)` does one round of one scenario."""

    def __init__(self, bootstrap: str, work: Work, shape: Shape, broker_pid: int | None = None) -> None:
        self.bootstrap, self.work, self.shape = bootstrap, work, shape
        self.timer = Timer(broker_pid)
        self.run = uuid.uuid4().hex[:8]
        self.topics, self.pay = Topics.named(self.run, shape), Payloads(shape)

    def prepare(self) -> None:
        aio.run(ensure_topics(self.bootstrap, self.topics.plan(self.shape)))
        w, p = self.work, self.pay
        _fill(self.bootstrap, self.topics.share_in, p.event, w.share_events, p.keys)
        _fill(self.bootstrap, self.topics.read_events, p.event, w.read_messages, p.keys)
        _fill(self.bootstrap, self.topics.read_audit, p.audit_message, w.audit_messages, None)

    def scenario(self, name: str, client: str, tag: str) -> Round:
        b, t, p, w = self.bootstrap, self.topics, self.pay, self.work
        aiok, linger = client == "aiokafka", LINGER_MS.get(client, 0)
        if name.startswith("intake-"):
            group = int(name.removeprefix("intake-"))
            return aio.run(_aio_intake(self.timer, b, t, p, w.intake_messages, group)) if aiok else \
                _ck_intake(self.timer, b, t, p, w.intake_messages, group, linger)
        if name == "share":
            return aio.run(_aio_share(self.timer, b, t, p, w.share_events, tag)) if aiok else \
                _ck_share(self.timer, b, t, p, w.share_events, tag, linger)
        topic, partitions, count = ((t.read_events, self.shape.event_partitions, w.read_messages)
                                    if name == "read-events" else (t.read_audit, 1, w.audit_messages))
        return aio.run(_aio_read(self.timer, b, topic, partitions, count)) if aiok else \
            _ck_read(self.timer, b, topic, partitions, count)

    def expected(self, name: str) -> dict[str, int]:
        """What one round of `name` must have done, whichever the client."""
        w = self.work
        if name.startswith("intake-"):
            return {"units": w.intake_messages, "acked": w.intake_messages}
        if name == "share":
            batches = [min(self.shape.poll, w.share_events - s) for s in range(0, w.share_events, self.shape.poll)]
            audit = sum(_audit_chunks(n, self.shape) for n in batches)
            return {"units": w.share_events, "read": w.share_events, "acked": w.share_events + audit,
                    "committed": w.share_events}
        count = w.read_messages if name == "read-events" else w.audit_messages
        return {"units": count, "read": count}


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2)}


def summarise(name: str, rounds: dict[str, list[Round]], expected: dict[str, int],
              committed: dict[str, list[int]]) -> dict[str, Any]:
    """One scenario's figures for each client (median and spread of per-unit CPU and wall over the rounds), the
    counts each did against what the work asked, and what the compiled client saves per unit."""
    out: dict[str, Any] = {"unit": UNITS[name], "expected_per_round": expected}
    for client, done in rounds.items():
        per = [r.per_unit_us() for r in done]
        counts = {"units": [r.units for r in done], "acked": [r.acked for r in done],
                  "read": [r.read for r in done]}
        if client in committed:
            counts["committed"] = committed[client]
        complete = all(all(v == expected[k] for v in counts[k]) for k in expected)
        broker = [b for _, _, b in per if b is not None]
        out[client] = {"cpu_us_per_unit": _spread([c for c, _, _ in per]),
                       "wall_us_per_unit": _spread([w for _, w, _ in per]),
                       "broker_cpu_us_per_unit": _spread(broker) if len(broker) == len(per) else None,
                       "rounds": [dict(asdict(r), cpu_s=round(r.cpu_s, 4), wall_s=round(r.wall_s, 4),
                                       broker_cpu_s=None if r.broker_cpu_s is None else round(r.broker_cpu_s, 3))
                                  for r in done],
                       "counts": counts, "complete": complete}
    # against aiokafka: this process's CPU saved, its ratio, and the saving net of what the Kafka node spent
    python, compiled = out[CLIENTS[0]], [c for c in CLIENTS[1:] if c in out]
    a = python["cpu_us_per_unit"]["median"]
    out["cpu_us_saved_per_unit"] = {c: round(a - out[c]["cpu_us_per_unit"]["median"], 2) for c in compiled}
    out["cpu_ratio_compiled_to_python"] = {c: round(out[c]["cpu_us_per_unit"]["median"] / a, 3) if a else None
                                           for c in compiled}
    out["cpu_us_saved_with_kafka_node"] = {
        c: round(out["cpu_us_saved_per_unit"][c] + python["broker_cpu_us_per_unit"]["median"]
                 - out[c]["broker_cpu_us_per_unit"]["median"], 2)
        if python["broker_cpu_us_per_unit"] and out[c]["broker_cpu_us_per_unit"] else None for c in compiled}
    return out


def measure_clients(bootstrap: str, *, rounds: int, work: Work, shape: Shape = Shape(),
                    scenarios: Iterable[str] = SCENARIOS, progress: Callable[[str], None] | None = None,
                    broker_pid: int | None = None) -> dict[str, Any]:
    """Every scenario: a warm-up round per client, then `rounds` rounds alternating which client goes first."""
    import aiokafka
    import confluent_kafka

    bench = ClientBench(bootstrap, work, shape, broker_pid)
    bench.prepare()
    report: dict[str, Any] = {
        "clients": {"aiokafka": aiokafka.__version__, "confluent-kafka": confluent_kafka.__version__,
                    "librdkafka": confluent_kafka.libversion()[0]},
        "measured": list(CLIENTS), "linger_ms": {"aiokafka": 0, **LINGER_MS},
        "rounds": rounds, "work": asdict(work), "shape": asdict(shape) | {"audit_chunk": AUDIT_CHUNK},
        "scenarios": {}}
    for name in scenarios:
        done: dict[str, list[Round]] = {c: [] for c in CLIENTS}
        for r in range(rounds + 1):  # round 0 warms each client, and is left out
            order = CLIENTS[r % len(CLIENTS):] + CLIENTS[:r % len(CLIENTS)]
            for client in order:
                if progress:
                    progress(f"{name}: {client}, {'warm-up' if r == 0 else f'round {r} of {rounds}'}")
                result = bench.scenario(name, client, f"{bench.run}-{name}-{client}-{r}")
                if r:
                    done[client].append(result)
        committed = {c: [committed_offsets(bootstrap, r.committed_group, bench.topics.share_in,
                                           shape.event_partitions) for r in done[c]]
                     for c in CLIENTS} if name == "share" else {}
        report["scenarios"][name] = summarise(name, done, bench.expected(name), committed)
    report["complete"] = all(s[c]["complete"] for s in report["scenarios"].values() for c in CLIENTS)
    return report
