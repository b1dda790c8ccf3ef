"""The parts of the three-node failure drills (tests/failure/test_cluster_drills.py).

- `drill_cluster`: a throwaway 3-node Apache Kafka tuned for speed where it changes no guarantee (a killed node is
  fenced after 3 s instead of 9, fewer internal partitions, C1-only JIT), and with a stock cluster's
  `min.insync.replicas` of 1, so that the only thing standing between a 202 and a single copy is the topic config
  the service itself creates.
- `Stack`: the broker as production runs it, each part a real process (`mash-broker run` for HTTP intake, one
  `mash-broker worker` share worker, the audit indexer in a process of its own), killable and restartable.
- `Intake`: a loop of real HTTP POSTs of fictitious children's FHIR Patients (one record, one event each), every
  answer counted.
- readers that count, raw and at `read_committed`, what each delivery topic holds, and say when the pipeline has
  settled (every group committed to the end of its input, no transaction open), so a test waits on a condition.
- `entitled`: what the protocol entitles each subscriber to, computed here with `broker.policy.decide_all` on the
  same records, never taken from the broker's own decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from adapters.kit.interface import AdaptContext
from broker.audit.store import open_audit_store
from broker.bench.e2e import service_env, start_cli
from broker.config import Settings
from broker.kafka.apache import ApacheKafka
from broker.kafka.clients import ISOLATION
from broker.kafka.embedded import free_port
from broker.pipeline.identify import LinkageKey
from broker.pipeline.intake import prepare
from broker.policy import decide_all, load_protocol
from broker.service.epoch import epoch_topic
from broker.service.messages import header
from tests.integration.protocols import child, health_protocol

T = TypeVar("T")

REPLICATION = 3
MIN_INSYNC = 2
# One partition: "the node leading the events topic's partitions" is then one node, and the drill kills it.
EVENT_PARTITIONS = 1
DRILL_PROPERTIES = {
    # A stock Kafka's default. The service must set min.insync.replicas 2 on the topics it creates itself; a drill
    # on a cluster whose default is already 2 would pass whether it did or not.
    "min.insync.replicas": "1",
    # A SIGKILLed node is fenced, and its partitions led elsewhere, after 3 s without a heartbeat (Kafka: 9 s).
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    # Fewer internal partitions to create at first use and to recover after every kill (Kafka: 50 each).
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
    "share.coordinator.state.topic.num.partitions": "1",
    "log.segment.bytes": str(1024 * 1024),  # the smallest Kafka allows: less to scan when a killed node recovers
}
# C1 only: a JVM that lives a minute spends most of its CPU in the C2 compiler; two cores are shared by everything.
DRILL_JVM_FLAGS = ("-XX:TieredStopAtLevel=1",)
AGENCY, CONTENT_TYPE = "health", "application/fhir+json"
# Longer than intake's own publish timeout (broker/service/intake.py, 15 s): a refusal (503) is an answer, and the
# drills wait for it rather than give up first.
HTTP_TIMEOUT_S = 40.0
DRILL_LINKAGE = LinkageKey(1, b"drill-linkage-key-fictitious-001")


def drill_cluster(data_dir: Path) -> ApacheKafka:
    return ApacheKafka(nodes=3, data_dir=data_dir, overrides=DRILL_PROPERTIES, jvm_flags=DRILL_JVM_FLAGS)


def wait_for(check: Callable[[], T], timeout: float, what: str, every: float = 0.2, say: bool = True) -> T:
    """The first truthy answer of `check`, polled until `timeout` seconds have gone (then an assertion naming what).
    How long each wait took goes to stderr: where a drill spends its time."""
    began = time.monotonic()
    while True:
        answer = check()
        if answer:
            if say:
                print(f"[drill] {what}: {time.monotonic() - began:.1f}s", file=sys.stderr, flush=True)
            return answer
        if time.monotonic() > began + timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    """Say on stderr how long a step took (a restart, a kill): where a drill spends its time."""
    began = time.monotonic()
    yield
    print(f"[drill] {what}: {time.monotonic() - began:.1f}s", file=sys.stderr, flush=True)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- the broker's processes ------------------------------------------------------------------------------------------
@dataclass
class Stack:
    """The service, one share worker and the audit indexer as child processes on one data directory and prefix."""

    env: dict[str, str]
    log_dir: Path
    protocol_file: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def create(cls, bootstrap: str, workdir: Path) -> Stack:
        protocol = health_protocol(workdir / "protocol", both_subscribers=True)
        env = service_env(bootstrap, workdir, protocol, f"drill{uuid.uuid4().hex[:6]}", free_port())
        env |= {"MASH_EVENT_PARTITIONS": str(EVENT_PARTITIONS), "MASH_KAFKA_REPLICATION_FACTOR": str(REPLICATION)}
        return cls(env, workdir / "logs", protocol)

    @property
    def settings(self) -> Settings:
        return Settings(topic_prefix=self.env["MASH_TOPIC_PREFIX"], data_dir=Path(self.env["MASH_DATA_DIR"]))

    @property
    def data_dir(self) -> Path:
        return Path(self.env["MASH_DATA_DIR"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['MASH_PORT']}"

    @property
    def subscribers(self) -> list[str]:
        return list(load_protocol(self.protocol_file).subscribers)

    def delivery_topics(self) -> dict[str, str]:
        return {s: self.settings.topics.deliver(s) for s in self.subscribers}

    def broker_topics(self) -> list[str]:
        """Every topic the service creates (broker/service/topics.py required_topics)."""
        t = self.settings.topics
        return [t.events, t.deadletter, t.audit, *self.delivery_topics().values(),
                epoch_topic(self.env["MASH_TOPIC_PREFIX"])]

    def token(self) -> str:
        return json.loads((self.data_dir / "dev-credentials.json").read_text())[f"intake:{AGENCY}"]

    def _spawn(self, name: str, *args: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts[name] += 1
        self.processes[name] = start_cli(self.env, self.log_dir / f"{name}-{self.starts[name]}.log", *args)

    def start(self, timeout: float = 90) -> Stack:
        self._spawn("service", "run", "--share-workers", "0", "--no-audit-indexer")
        creds = self.data_dir / "dev-credentials.json"

        def serving() -> bool:
            service = self.processes["service"]
            assert service.poll() is None, f"the service exited with status {service.returncode} ({self.log_dir})"
            with contextlib.suppress(httpx.HTTPError):
                return creds.exists() and httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
            return False

        wait_for(serving, timeout, "the service serving HTTP")
        self.start_worker()
        self._spawn("indexer", "worker", "--share-workers", "0")
        return self

    def start_worker(self) -> None:
        self._spawn("worker", "worker", "--no-audit-indexer")

    def kill(self, *names: str) -> None:
        """SIGKILL the named processes (all of them when none is named): no shutdown of any kind."""
        for name in names or list(self.processes):
            proc = self.processes.pop(name)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def exited(self) -> dict[str, int]:
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.processes.clear()


# --- intake ---------------------------------------------------------------------------------------------------------
@dataclass
class Intake:
    """Senders in threads POSTing record after record (numbers drawn from `numbers`, shared by every loop of a module
    so no record is sent by two loops), paced to `rate` records/s in all; every answer is kept per record."""

    base_url: str
    token: str
    numbers: Iterator[int]
    rate: float = 40.0
    senders: int = 3
    answers: dict[int, list[int | str]] = field(default_factory=dict)  # record -> statuses ("no answer": none came)
    sent: list[tuple[float, int | str]] = field(default_factory=list)  # (monotonic time a POST was sent, its answer)
    events: dict[int, list[str]] = field(default_factory=dict)  # record -> event ids of its 202
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def post(self, http: httpx.Client, n: int) -> int | str:
        sent_at = time.monotonic()
        try:
            r = http.post(f"{self.base_url}/v1/records/{AGENCY}", content=child(n), headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": CONTENT_TYPE})
        except httpx.HTTPError as exc:
            status: int | str = f"no answer ({type(exc).__name__})"
        else:
            status = r.status_code
            if status == 202:
                with self._lock:
                    self.events[n] = [e["event_id"] for e in r.json()["events"]]
        with self._lock:
            self.answers.setdefault(n, []).append(status)
            self.sent.append((sent_at, status))
        return status

    def send_one(self) -> int | str:
        """One more record, posted now from the calling thread; its answer."""
        with self._lock:
            n = next(self.numbers)
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
            return self.post(http, n)

    def _send(self) -> None:
        gap = self.senders / self.rate
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
            while not self._stop.is_set():
                with self._lock:
                    n = next(self.numbers)
                began = time.monotonic()
                self.post(http, n)
                self._stop.wait(max(0.0, gap - (time.monotonic() - began)))

    def start(self) -> Intake:
        self._threads = [threading.Thread(target=self._send, daemon=True, name=f"intake-{i}")
                         for i in range(self.senders)]
        for t in self._threads:
            t.start()
        return self

    def halt(self) -> None:
        """No new POST from now on (those in flight run their course: stop() waits for them)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(HTTP_TIMEOUT_S + 5)

    def __enter__(self) -> Intake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def statuses(self) -> Counter[int | str]:
        with self._lock:
            return Counter(s for answers in self.answers.values() for s in answers)

    def acknowledged(self) -> int:
        with self._lock:
            return len(self.events)

    def unacknowledged(self) -> list[int]:
        with self._lock:
            return sorted(n for n in self.answers if n not in self.events)

    def resend_unacknowledged(self, timeout: float = 60) -> list[int]:
        """What a sender does after a 503 or no answer: the same record again, until it gets its 202. Returns the
        records resent."""
        todo = self.unacknowledged()
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
            for n in todo:
                def accepted(n: int = n) -> bool:
                    return self.post(http, n) == 202
                wait_for(accepted, timeout, f"record {n} accepted on resend", every=0.5, say=False)
        if todo:
            print(f"[drill] resent {len(todo)} records until accepted", file=sys.stderr, flush=True)
        return todo


# --- what the protocol entitles -------------------------------------------------------------------------------------
def entitled(protocol_file: Path, numbers: Iterable[int]) -> dict[str, set[str]]:
    """Event id -> the subscribers the protocol releases it to, from the same records read here (the adapter and
    `decide_all`, no consent recorded, as in the drills)."""
    protocol = load_protocol(protocol_file)
    ctx = AdaptContext(source="request", received_at="2026-01-01T00:00:00Z", system=None)
    out: dict[str, set[str]] = {}
    for n in numbers:
        for event in prepare(AGENCY, child(n), ctx, DRILL_LINKAGE, content_type=CONTENT_TYPE).events:
            out[event["event_id"]] = {d.subscriber for d in decide_all(protocol, event) if d.outcome == "deliver"}
    return out


def exactly_once_problems(delivered: dict[str, Counter[str]], entitlement: dict[str, set[str]],
                          acknowledged: set[str]) -> dict[str, Any]:
    """Everything wrong with what the delivery topics hold: an acknowledged event missing from a subscriber it is
    entitled to, any event on a topic more than once, any delivery nobody was entitled to. `entitlement` covers every
    record sent (one refused with a 503 may still have reached Kafka, and may be delivered, once); `acknowledged`
    the events that got a 202, which must be. Empty: exactly once."""
    missing = sorted((s, e) for e in acknowledged for s in entitlement.get(e, set())
                     if delivered.get(s, Counter())[e] == 0)
    duplicated = sorted((s, e, n) for s, counts in delivered.items() for e, n in counts.items() if n > 1)
    unentitled = sorted((s, e) for s, counts in delivered.items() for e in counts
                        if s not in entitlement.get(e, set()))
    problems = {"missing": missing, "duplicated": duplicated, "unentitled": unentitled}
    return {k: v for k, v in problems.items() if v}


# --- reading the cluster --------------------------------------------------------------------------------------------
async def delivered_counts(bootstrap: str, topics: dict[str, str]) -> dict[str, Counter[str]]:
    """Subscriber -> how many times each event id is on its delivery topic: every message from the beginning to the
    end a `read_committed` reader sees (the last stable offset), raw, none opened."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=ISOLATION,
                                auto_offset_reset="earliest", request_timeout_ms=10_000)
    await consumer.start()
    try:
        by_topic = {t: s for s, t in topics.items()}
        tps = [TopicPartition(t, p) for t in by_topic for p in sorted(consumer.partitions_for_topic(t) or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        counts: dict[str, Counter[str]] = {s: Counter() for s in topics}
        deadline = time.monotonic() + 30
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "the delivery topics could not be read to their end"
            for tp, messages in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
                for m in messages:
                    counts[by_topic[tp.topic]][header(m.headers, "event_id") or ""] += 1
        return counts
    finally:
        await consumer.stop()


async def _end_offsets(bootstrap: str, topics: Iterable[str], isolation: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, request_timeout_ms=10_000)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or {0})]
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def open_transactions(bootstrap: str, topics: Iterable[str]) -> bool:
    """Whether a transaction is open on any of the topics: its last stable offset trails its high-water mark."""
    topics = list(topics)
    stable = await _end_offsets(bootstrap, topics, "read_committed")
    high = await _end_offsets(bootstrap, topics, "read_uncommitted")
    return any(stable[tp] < high[tp] for tp in high)


async def unsettled(bootstrap: str, consumed: dict[str, str], written: Iterable[str]) -> str:
    """What may still appear ("" once nothing can): a group (group -> input topic) not yet committed to the end of
    its input, or a transaction open on the topics they write. In exactly-once mode a delivery is committed with its
    input offsets, so once this is "" every delivery that will ever be made for what was consumed is readable."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    behind = []
    try:
        for group, topic in consumed.items():
            ends = await _end_offsets(bootstrap, [topic], "read_committed")
            committed = await admin.list_consumer_group_offsets(group)
            lag = sum(end - (committed[tp].offset if committed.get(tp) else 0) for tp, end in ends.items())
            if lag > 0:
                behind.append(f"{group} {lag} behind on {topic}")
    finally:
        await admin.close()
    if await open_transactions(bootstrap, written):
        behind.append("a transaction open")
    return "; ".join(behind)


@dataclass(frozen=True)
class TopicState:
    replicas: int  # the fewest replicas of any partition
    in_sync: int  # the fewest in-sync replicas of any partition
    min_insync: int  # the topic's effective min.insync.replicas
    leaders: tuple[int, ...]  # each partition's leader, by partition


async def describe(bootstrap: str, topics: list[str]) -> dict[str, TopicState]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
    finally:
        await admin.close()
    isr = {resource[3]: int({entry[0]: entry[1] for entry in resource[4]}["min.insync.replicas"])
           for response in configs for resource in response.resources}
    out = {}
    for t in described:
        parts = sorted(t["partitions"], key=lambda p: p["partition"])
        out[t["topic"]] = TopicState(min(len(p["replicas"]) for p in parts), min(len(p["isr"]) for p in parts),
                                     isr[t["topic"]], tuple(p["leader"] for p in parts))
    return out


def whole(bootstrap: str, topics: list[str]) -> bool:
    """Every partition of the topics has all its replicas in sync again (after a node came back)."""
    with contextlib.suppress(Exception):  # metadata may still be settling after a restart
        return all(s.in_sync == s.replicas for s in run(describe(bootstrap, topics)).values())
    return False


# --- the audit store ------------------------------------------------------------------------------------------------
def audit_delivered(data_dir: Path) -> Counter[tuple[str, str]]:
    """(subscriber, event id) -> `delivered` records in the audit store (what the indexer chained)."""
    store = open_audit_store(data_dir)
    try:
        return Counter((r["record"]["subscriber"], r["record"]["event_id"])
                       for r in store.search(kind="delivered", limit=1_000_000))
    finally:
        store.close()


def audit_verifies(data_dir: Path) -> tuple[bool, str]:
    store = open_audit_store(data_dir)
    try:
        result = store.verify()
        return bool(result.ok), f"{result.checked} entries checked; {result.reason or 'ok'}"
    finally:
        store.close()


def record_numbers(start: int = 0) -> Iterator[int]:
    """Record numbers for one module's intake loops; far above the other tests' so no event id repeats theirs."""
    return itertools.count(500_000 + start)


# --- one module's drills --------------------------------------------------------------------------------------------
@dataclass
class Drill:
    """The cluster, the stack on it, and every record the module's intake loops got a 202 for: each drill checks
    the whole ledger, so a later drill that duplicated an earlier delivery is caught too."""

    kafka: ApacheKafka
    stack: Stack
    numbers: Iterator[int] = field(default_factory=record_numbers)
    acknowledged: dict[int, list[str]] = field(default_factory=dict)  # record -> event ids of its 202
    posted: set[int] = field(default_factory=set)  # every record sent, whatever the answer
    _entitlement: dict[int, dict[str, set[str]]] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap_servers

    def intake(self, rate: float = 40.0, senders: int = 3) -> Intake:
        return Intake(self.stack.base_url, self.stack.token(), self.numbers, rate=rate, senders=senders)

    def absorb(self, intake: Intake) -> None:
        self.acknowledged |= intake.events
        self.posted |= set(intake.answers)

    def events_leader(self) -> int:
        (leader,) = run(describe(self.bootstrap, [self.stack.settings.topics.events]))[
            self.stack.settings.topics.events].leaders
        return leader

    def wait_whole(self, timeout: float = 90) -> None:
        topics = self.stack.broker_topics()
        wait_for(lambda: whole(self.bootstrap, topics), timeout, "every replica back in sync", every=0.5)

    def settle(self, timeout: float = 120) -> None:
        s = self.stack.settings
        consumed = {s.group("share"): s.topics.events, s.group("audit-indexer"): s.topics.audit}
        written = [*self.stack.delivery_topics().values(), s.topics.audit, s.topics.deadletter]

        last = ["not asked yet"]

        def done() -> bool:
            assert not self.stack.exited(), f"a broker process exited: {self.stack.exited()}"
            try:
                last[0] = run(unsettled(self.bootstrap, consumed, written))
            except Exception as exc:  # a coordinator moving after a restart: ask again
                last[0] = type(exc).__name__
            return not last[0]
        try:
            wait_for(done, timeout, "every consumed event committed and no transaction open", every=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (last: {last[0]})") from None

    def entitlement(self) -> dict[str, set[str]]:
        for n in self.posted - set(self._entitlement):
            self._entitlement[n] = entitled(self.stack.protocol_file, [n])
        return {e: subs for n in self.posted for e, subs in self._entitlement[n].items()}

    def verify(self) -> dict[str, Counter[str]]:
        """Once settled: every acknowledged event on each entitled subscriber's topic exactly once, nothing else on
        them; the audit store holds one `delivered` record per delivery and its chain verifies."""
        self.settle()
        entitlement = self.entitlement()
        subscribers = set(self.stack.subscribers)
        acknowledged = {e for ids in self.acknowledged.values() for e in ids}
        # the stated expectation: this protocol releases every one of these records to both subscribers
        assert entitlement and all(subs == subscribers for subs in entitlement.values()), "protocol premise"
        # the 202 answers name the very events these records make
        made = {e for n in self.acknowledged for e in self._entitlement[n]}
        assert acknowledged == made, f"202 answers and records disagree: {sorted(acknowledged ^ made)[:10]}"
        delivered = run(delivered_counts(self.bootstrap, self.stack.delivery_topics()))
        problems = exactly_once_problems(delivered, entitlement, acknowledged)
        assert problems == {}, {k: (len(v), v[:10]) for k, v in problems.items()}
        audited = audit_delivered(self.stack.data_dir)
        on_topics = Counter({(s, e): n for s, counts in delivered.items() for e, n in counts.items()})
        assert audited == on_topics, (f"audit store vs delivery topics: {len(audited)} vs {len(on_topics)}; "
                                      f"differ: {sorted(set(audited.items()) ^ set(on_topics.items()))[:10]}")
        ok, detail = audit_verifies(self.stack.data_dir)
        assert ok, detail
        print(f"[drill] verified: {len(self.acknowledged)} records acknowledged of {len(self.posted)} sent, "
              f"{sum(on_topics.values())} deliveries", file=sys.stderr, flush=True)
        return delivered
