"""End to end through real Kafka: HTTP intake -> events topic -> share workers (separate processes) -> delivery topics.

The service (`mash-broker run --share-workers 0`) and the share workers (`mash-broker worker`) run as child processes
on the embedded broker (or KAFKA_BOOTSTRAP_SERVERS), with the sample protocol and its five subscribers. This process
posts the synthetic mix over HTTP and, in an observer thread, reads every delivery topic (arrival per subscriber and
event id) and the audit topic (each event's decisions: an event is done when all subscribers have a decision, whether
it was delivered or withheld). Latency is from the moment a delivery became due to the moment it is readable: the
POST of the announcement whose decision released it. Most deliveries are released by the first POST that carries
their event; an event announced again (a child's identity event is resent by each of the child's CIN records) may
be withheld at first and released at a later announcement (the hub's s17 rule needs an open case, which the first
record opens only after its identity event), and is then timed from that announcement's POST. A withholding is no
latency: the wait between announcements is the records' spacing, not the pipeline's, and is reported only as a
count (`released_later`). Which announcement released a delivery is read from the audit topic: each announcement of
an event has one decision per subscriber, so the decisions seen before its first `deliver` say which it was.

The baseline sends the same number of messages of the same size through the same Kafka (same partitions, the
broker's producer settings) and reads them back, with no processing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
from aiokafka import TopicPartition

from broker import aio
from broker.bench.records import Format, mix
from broker.kafka.admin import ensure_topics
from broker.kafka.clients import GROUP_FETCH_WAIT_MS, reader, start_producer
from broker.kafka.embedded import die_with_parent, free_port
from broker.kafka.scan import scan_topic
from broker.pipeline.share_plan import REDECIDED
from broker.service.messages import header

PARTITIONS = 6
WARMUP_RECORDS = 600  # enough to meet every fictitious child once: their data keys exist before timing starts


def percentiles(values: list[float], points: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles, in milliseconds (values in seconds)."""
    if not values:
        return {f"p{p:g}": float("nan") for p in points} | {"max": float("nan")}
    ordered = sorted(values)
    out = {f"p{p:g}": ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] * 1000
           for p in points}
    return out | {"max": ordered[-1] * 1000}


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process (Linux /proc), in MB; None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Observed:
    """Filled by the observer thread: when each delivery and each decision was first readable."""

    deliveries: dict[tuple[str, str], float] = field(default_factory=dict)  # (subscriber, event id) -> first seen
    delivery_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)  # event id -> decision records seen
    released: set[tuple[str, str]] = field(default_factory=set)  # (subscriber, event id) decided `deliver`
    decided_at: dict[str, float] = field(default_factory=dict)  # event id -> when its last decision was seen
    messages: Counter[str] = field(default_factory=Counter)  # topic role (events, deliver, audit) -> messages
    message_bytes: Counter[str] = field(default_factory=Counter)  # topic role -> value bytes
    # (event id, when, announcement) for each first-seen delivery, in arrival order: a soak's rows read it by index,
    # from another thread, where iterating a dict that grows would fail
    delivery_log: list[tuple[str, float, int]] = field(default_factory=list)
    # (subscriber, event id) -> the announcement (0 the first) whose decision released it, for those released by a
    # later one only: a withheld identity event released when the child's next record announces it again
    released_at: dict[tuple[str, str], int] = field(default_factory=dict)

    def decision_seen(self, rec: Mapping[str, Any], now: float, subscribers: int) -> None:
        """A `decision` or `decisions_withheld` audit record read from the audit topic at `now`."""
        eid = rec["event_id"]
        before = self.decisions[eid]
        if rec["kind"] == "decisions_withheld":
            # a group of an event's plain withholds stands for one decision per subscriber it names
            # (broker/audit/withheld.py): the store expands it, the topic carries it whole
            self.decisions[eid] = before + len(rec["withheld"])
        elif rec.get("outcome") != "deliver" or _announced(rec):
            self.decisions[eid] = before + 1
        else:
            # a release decided again inside the batch of an announcement already counted (broker/pipeline/
            # share_plan.py), so not one of the one-per-subscriber decisions each announcement has
            before = max(before - 1, 0)
        if rec.get("outcome") == "deliver":
            key = (rec["subscriber"], eid)
            if key not in self.released:  # the first release: a redelivery decided again is never delivered again
                self._released_by(key, before // subscribers, decided=True)
                self.released.add(key)
        if self.decisions[eid] >= subscribers:
            self.decided_at.setdefault(eid, now)

    def delivery_seen(self, subscriber: str, event_id: str, now: float, subscribers: int) -> None:
        """A delivery read from a subscriber's topic at `now`. It can be read before its decision record (they are
        on different topics): then the decisions seen so far are all of earlier announcements."""
        key = (subscriber, event_id)
        self.delivery_counts[key] += 1
        if key in self.deliveries:
            return
        self.deliveries[key] = now
        if key not in self.released:
            self._released_by(key, self.decisions[event_id] // subscribers)
        self.delivery_log.append((event_id, now, self.released_at.get(key, 0)))

    def _released_by(self, key: tuple[str, str], announcement: int, *, decided: bool = False) -> None:
        """Which announcement released `key`. The decision record's count is the one to keep: a delivery read first
        only implies it (a batch's audit records can be split over two messages, read apart)."""
        if decided and not announcement:
            self.released_at.pop(key, None)
        elif decided:
            self.released_at[key] = announcement
        elif announcement:
            self.released_at.setdefault(key, announcement)

    def latencies(self, sent: Sent) -> list[float]:
        """Seconds from due (the POST that released it) to readable, of each delivery of an event sent timed."""
        out = []
        for key, at in self.deliveries.items():
            due = sent.due(key[1], self.released_at.get(key, 0))
            if due is not None:
                out.append(at - due)
        return out

    def released_later(self, sent: Sent) -> int:
        """Deliveries of timed events released by a later announcement than the first (timed from that one)."""
        return sum(1 for (_, e) in self.released_at if e in sent.accepted)


class Observer:
    """A group-less consumer over the delivery topics and the audit topic, in its own thread and event loop. Its
    fetch wait is short, like a prompt subscriber's: the embedded broker answers a fetch when the wait runs out, so a
    long wait would be counted as pipeline latency."""

    def __init__(self, bootstrap: str, delivery_topics: dict[str, str], audit_topic: str, subscribers: int) -> None:
        self.bootstrap, self.delivery_topics, self.audit_topic = bootstrap, delivery_topics, audit_topic
        self.subscribers = subscribers
        self.seen = Observed()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: aio.run(self._run()), daemon=True, name="observer")

    def start(self) -> Observer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("observer did not start")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _run(self) -> None:
        consumer = reader(self.bootstrap, fetch_wait_ms=GROUP_FETCH_WAIT_MS)  # a share worker's
        await consumer.start()
        try:
            by_topic = {t: s for s, t in self.delivery_topics.items()}
            tps = [TopicPartition(t, p) for t in [*by_topic, self.audit_topic]
                   for p in sorted(consumer.partitions_for_topic(t) or {0})]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            self._ready.set()
            seen = self.seen
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=50, max_records=5000)
                now = time.monotonic()
                for tp, records in batch.items():
                    role = "audit" if tp.topic == self.audit_topic else "deliver"
                    seen.messages[role] += len(records)
                    seen.message_bytes[role] += sum(len(r.value or b"") for r in records)
                    if role == "audit":
                        for r in records:
                            value = orjson.loads(r.value)  # one request's audit records, as an array
                            for rec in value if isinstance(value, list) else [value]:
                                if rec.get("kind") in ("decision", "decisions_withheld"):
                                    seen.decision_seen(rec, now, self.subscribers)
                        continue
                    subscriber = by_topic[tp.topic]
                    for r in records:
                        seen.delivery_seen(subscriber, header(r.headers, "event_id") or "", now, self.subscribers)
        finally:
            self._ready.set()
            await consumer.stop()


def _announced(rec: Mapping[str, Any]) -> bool:
    """Whether a `deliver` decision record is the one an announcement makes for its subscriber, not a release the
    share plan decided again inside the announcement's batch once the child's case opened (its reason says so; its
    id is the engine's as any delivery's, so the id cannot tell them apart)."""
    return not str(rec.get("reason", "")).endswith(REDECIDED)


@dataclass
class Processes:
    service: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    indexer: subprocess.Popen[bytes]
    base_url: str
    credentials: dict[str, str]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from broker.cli.main import app; app()", *args]


def service_env(bootstrap: str, workdir: Path, protocol_file: Path, prefix: str, port: int) -> dict[str, str]:
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MASH_DATA_DIR": str(workdir / "data"),
            "MASH_PROTOCOL_FILE": str(protocol_file), "MASH_TOPIC_PREFIX": prefix, "MASH_PORT": str(port),
            "MASH_DEV_MODE": "1", "MASH_LOG_LEVEL": "WARNING", "MASH_EVENT_PARTITIONS": str(PARTITIONS)}


def start_cli(env: dict[str, str], log_file: Path, *args: str) -> subprocess.Popen[bytes]:
    """`mash-broker <args>` as a child process, its output to log_file (e.g. start_cli(env, log, "worker"))."""
    with open(log_file, "ab") as log:
        # die_with_parent: a bench killed mid-run (timeout, ^C twice) must not leave workers behind
        return subprocess.Popen(_cli(*args), env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)


@contextlib.contextmanager
def running(env: dict[str, str], workers: int, log_dir: Path) -> Iterator[Processes]:
    """The service (HTTP intake only), `workers` share-worker processes and the audit indexer in a process of its
    own (so every run measures the same placement); stopped with SIGTERM."""
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        proc = start_cli(env, log_dir / f"{name}.log", *args)
        procs.append(proc)
        return proc

    try:
        service = spawn("service", "run", "--share-workers", "0", "--no-audit-indexer")
        base = f"http://127.0.0.1:{env['MASH_PORT']}"
        creds_file = Path(env["MASH_DATA_DIR"]) / "dev-credentials.json"
        deadline = time.monotonic() + 60
        while True:
            if service.poll() is not None:
                raise RuntimeError(f"service exited with status {service.returncode} (see {log_dir}/service.log)")
            with contextlib.suppress(httpx.HTTPError):
                if creds_file.exists() and httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("service did not start within 60 s")
            time.sleep(0.1)
        workers_ = [spawn(f"worker-{i}", "worker", "--no-audit-indexer") for i in range(workers)]
        indexer = spawn("audit-indexer", "worker", "--share-workers", "0")
        yield Processes(service, workers_, indexer, base, orjson.loads(creds_file.read_bytes()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@dataclass
class Sent:
    accepted: dict[str, float] = field(default_factory=dict)  # event id -> when its POST was sent
    # event id -> when each later POST that carried it again was sent (its announcements after the first)
    resent: dict[str, list[float]] = field(default_factory=dict)
    records: int = 0
    requests: int = 0
    rejected: int = 0
    repeated: int = 0  # event ids already accepted earlier in the run (or in the warm-up): excluded from timing
    errors: int = 0
    first_send: float = 0.0
    answered: list[float] = field(default_factory=list)  # per accepted event, when its 202 came back (stall checks)

    def due(self, event_id: str, announcement: int) -> float | None:
        """When the POST of the event's `announcement` (0 the first) was sent; None for an event not sent timed, or
        an announcement this run has no POST for (one whose answer was lost: an HTTP error)."""
        if event_id not in self.accepted:
            return None
        if not announcement:
            return self.accepted[event_id]
        times = sorted([self.accepted[event_id], *self.resent.get(event_id, ())])
        return times[announcement] if announcement < len(times) else None


async def post_mix(base: str, credentials: dict[str, str], items: Iterable[tuple[Format, tuple[int, ...]]], *,
                   rate: float,
                   concurrency: int, events_per_record: dict[str, int], sent: Sent,
                   exclude: frozenset[str] | dict[str, float] = frozenset(),
                   on_progress: Callable[[int], None] | None = None, until: float | None = None) -> None:
    """POST each body (one or more records); `rate` (events/s, 0 = as fast as possible) paces sends by each body's
    expected event count. `until` (time.monotonic()) stops sending then, whatever is left: a soak lasts its
    duration even when intake takes less than the offered rate."""
    queue: asyncio.Queue[tuple[Format, tuple[int, ...]] | None] = asyncio.Queue(maxsize=concurrency * 2)

    async def sender(http: aiohttp.ClientSession) -> None:
        while (item := await queue.get()) is not None:
            fmt, numbers = item
            headers = {"Authorization": f"Bearer {credentials[f'intake:{fmt.agency}']}",
                       "Content-Type": fmt.content_type}
            if fmt.system:
                headers["X-Source-System"] = fmt.system
            body = fmt.make(*numbers)
            t0 = time.monotonic()
            sent.first_send = sent.first_send or t0
            try:
                async with http.post(f"{base}/v1/records/{fmt.agency}", data=body, headers=headers) as r:
                    status, answer = r.status, await r.read()
            except (aiohttp.ClientError, TimeoutError):
                sent.errors += 1
                continue
            sent.records += len(numbers)
            sent.requests += 1
            if status == 202:
                answered = time.monotonic()
                events = orjson.loads(answer)["events"]
                for e in events:
                    if e["event_id"] in sent.accepted:
                        sent.repeated += 1  # the same record identity again: decided again, never re-delivered
                        sent.resent.setdefault(e["event_id"], []).append(t0)  # it may release a withheld one
                    elif e["event_id"] in exclude:
                        sent.repeated += 1  # first sent in the warm-up: never timed
                    else:
                        sent.accepted[e["event_id"]] = t0
                        sent.answered.append(answered)
                if on_progress:
                    on_progress(len(events))
            else:
                sent.rejected += 1

    # aiohttp, not httpx, drives the load: the generator shares the two cores with the broker under test, and httpx
    # spent about 3 ms of CPU per request against aiohttp's 0.3 ms (measured with a trivial server).
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        tasks = [asyncio.create_task(sender(http)) for _ in range(concurrency)]
        start, expected = time.monotonic(), 0
        for fmt, numbers in items:
            if until is not None and time.monotonic() >= until:
                break
            if rate:
                delay = start + expected / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            expected += events_per_record[fmt.name] * len(numbers)
            await queue.put((fmt, numbers))
        for _ in tasks:
            await queue.put(None)
        await asyncio.gather(*tasks)


def wait_until_decided(observer: Observer, event_ids: Any, timeout: float,
                       on_progress: Callable[[int], None] | None = None, idle_timeout: float | None = None) -> bool:
    """Until every event has all its decisions; False after `timeout`, or after `idle_timeout` with no event
    decided (a stalled pipeline is reported as one, not waited on for hours)."""
    deadline = time.monotonic() + timeout
    pending = list(event_ids)
    progressed = time.monotonic()
    while time.monotonic() < deadline:
        decided = observer.seen.decided_at
        still = [e for e in pending if e not in decided]  # only the undecided are looked at again: a soak has 10^5
        if len(still) < len(pending):
            progressed = time.monotonic()
            if on_progress:
                on_progress(len(pending) - len(still))
        elif idle_timeout is not None and time.monotonic() - progressed > idle_timeout:
            return False
        pending = still
        if not pending:
            return True
        time.sleep(0.05)
    return False


@dataclass
class RunResult:
    events: int
    records: int
    seconds: float
    events_per_s: float
    latency_ms: dict[str, float]
    deliveries: int
    duplicates: int
    missing_decisions: int
    rejected_records: int
    repeated_event_ids: int
    http_errors: int
    memory_mb: dict[str, dict[str, Any]]
    cpu_ms_per_event: dict[str, float]
    batch: int = 1
    requests: int = 0
    kafka_traffic: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> messages, bytes (timed part)
    stalls: list[dict[str, Any]] = field(default_factory=list)  # soak.find_stalls over the timed part
    sending_s: float = 0.0  # from the first POST to the last answer
    rows: list[dict[str, Any]] = field(default_factory=list)  # a soak's rows, one per Watch.every seconds
    # of `deliveries`, those released by a later announcement of their event than the first (Observed.released_at),
    # timed from that announcement's POST
    released_later: int = 0

    def traffic(self) -> tuple[int, int]:
        """(messages, mean bytes) the pipeline moved through Kafka in the timed part: events, deliveries, audit."""
        messages = sum(t["messages"] for t in self.kafka_traffic.values())
        size = sum(t["bytes"] for t in self.kafka_traffic.values())
        return messages, (size // messages if messages else 0)

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class Watch:
    """A soak's periodic report: every `every` seconds a row (progress, latency of the deliveries seen since the last
    row, each process's RSS and CPU share) goes to `on_row` as it is made, so a long run shows how it goes."""

    every: float
    on_row: Callable[[dict[str, Any]], None] = lambda row: None


def bodies(formats: list[Format], events: int, events_per_record: dict[str, int],
           batch: int = 1) -> Iterator[tuple[Format, tuple[int, ...]]]:
    """The mix, one body at a time, until the bodies carry `events` events: an hour's soak is 10^5 bodies or more."""
    wheel = [f for f in formats for _ in range(f.weight)]
    total = i = 0
    while total < events:
        fmt = wheel[i % len(wheel)]
        yield fmt, tuple(range(i * batch, (i + 1) * batch))
        total += events_per_record[fmt.name] * batch
        i += 1


def pipeline_run(bootstrap: str, workdir: Path, protocol_file: Path, formats: list[Format], *, events: int,
                 workers: int, rate: float, concurrency: int, events_per_record: dict[str, int],
                 warmup: int = WARMUP_RECORDS, batch: int = 1, kafka_pids: Mapping[str, int] | None = None,
                 progress: Callable[[str, int, int], None] | None = None, watch: Watch | None = None,
                 idle_timeout: float | None = None, final_wait: float | None = None,
                 duration: float | None = None) -> RunResult:
    """One timed run; `kafka_pids` names the Kafka's own processes (the embedded broker, each Apache Kafka JVM) so
    their CPU and memory are counted with mash-broker's. `idle_timeout` ends the final wait once nothing has been
    decided for that long (a soak's stall is reported, not waited out); `final_wait` bounds that wait in all (a
    soak that fell behind has failed already, and is not drained for hours); `duration` ends the sending after that
    many seconds (a soak), `events` is then the most it sends."""
    from broker.bench.soak import find_stalls
    from broker.policy import load_protocol

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    env = service_env(bootstrap, workdir, protocol_file, prefix, free_port())
    subscribers = list(load_protocol(protocol_file).subscribers)
    topics = {s: f"{prefix}.deliver.{s}" for s in subscribers}
    total = events
    warm = [(fmt, tuple(10_000_000 + n for n in numbers)) for fmt, numbers in mix(formats, -(-warmup // batch), batch)]
    observe = (bootstrap, topics, f"{prefix}.audit", len(subscribers))
    rows: list[dict[str, Any]] = []
    with running(env, workers, workdir / "logs") as procs:
        observer = Observer(*observe)
        deadline = time.monotonic() + 60
        while True:  # the service creates the topics; the observer needs them to exist
            try:
                observer.start()
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                observer = Observer(*observe)
        try:
            # warm-up: the workers have joined the group and key caches are warm once these are decided
            warm_sent = Sent()
            aio.run(post_mix(procs.base_url, procs.credentials, warm, rate=0, concurrency=concurrency,
                             events_per_record=events_per_record, sent=warm_sent))
            # as long as they keep being decided (a busy machine is slow, not stuck); 90 s without one is stuck
            if not wait_until_decided(observer, warm_sent.accepted, 900, idle_timeout=90):
                raise RuntimeError("warm-up events stopped being decided for 90 s (see the logs in the work dir)")
            pids = ({"service": procs.service.pid} | {f"worker-{i}": w.pid for i, w in enumerate(procs.workers)}
                    | {"audit indexer": procs.indexer.pid})
            # The load generator's memory is left out: its observer keeps every event id it saw, by design.
            mem_pids = pids | dict(kafka_pids or {})
            cpu_pids = mem_pids | {"load generator": os.getpid()}
            memory: dict[str, list[tuple[float, float]]] = defaultdict(list)
            sampling = threading.Event()
            sent, wall_start_ms = Sent(), int(time.time() * 1000)
            warm_decided = len(observer.seen.decided_at)
            cpu_before = {name: cpu_seconds(pid) or 0.0 for name, pid in cpu_pids.items()}
            t_start = time.monotonic()

            def sample() -> None:  # at the start, every 0.5 s, and once more at the end
                next_row = t_start + (watch.every if watch else 0)
                cpu_last, seen_upto, row_t = dict(cpu_before), 0, t_start
                while True:
                    now = time.monotonic()
                    for name, pid in mem_pids.items():
                        if (mb := rss_mb(pid)) is not None:
                            memory[name].append((now - t_start, mb))
                    if watch is not None and now >= next_row:
                        log = observer.seen.delivery_log
                        window, seen_upto = log[seen_upto:len(log)], len(log)
                        cpu_now = {name: cpu_seconds(pid) or 0.0 for name, pid in cpu_pids.items()}
                        decided_now = len(observer.seen.decided_at) - warm_decided
                        rss_now = {n: s[-1][1] for n, s in memory.items() if s}
                        row = soak_row(now - t_start, now - row_t, rate, sent, decided_now, window, rss_now,
                                       {n: cpu_now[n] - cpu_last[n] for n in cpu_now}, most=events)
                        rows.append(row)
                        watch.on_row(row)
                        cpu_last, row_t, next_row = cpu_now, now, next_row + watch.every
                    if sampling.is_set():
                        return
                    sampling.wait(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            traffic_before = (Counter(observer.seen.messages), Counter(observer.seen.message_bytes))
            on_sent = (lambda k: progress("sent", k, total)) if progress else None
            aio.run(post_mix(procs.base_url, procs.credentials, bodies(formats, events, events_per_record, batch),
                             rate=rate, concurrency=concurrency, events_per_record=events_per_record, sent=sent,
                             exclude=warm_sent.accepted, on_progress=on_sent,
                             until=None if duration is None else time.monotonic() + duration))
            sending_ended = time.monotonic()
            on_done = (lambda k: progress("decided", k, len(sent.accepted))) if progress else None
            wait_s = 60 + len(sent.accepted) / 50 if final_wait is None else final_wait
            complete = wait_until_decided(observer, sent.accepted, wait_s, on_done, idle_timeout=idle_timeout)
            waited_until = time.monotonic()
            time.sleep(0.5)  # the last audit messages (written after the decisions they follow) reach the observer
            traffic = {role: {"messages": observer.seen.messages[role] - traffic_before[0][role],
                              "bytes": observer.seen.message_bytes[role] - traffic_before[1][role]}
                       for role in ("deliver", "audit")}
            sampling.set()
            sampler.join()
            cpu = {name: (cpu_seconds(pid) or 0.0) - cpu_before[name] for name, pid in cpu_pids.items()}
            # the events topic is counted after the timing, so reading it costs the measured run nothing
            traffic["events"] = aio.run(_topic_traffic(bootstrap, f"{prefix}.events", wall_start_ms))
        finally:
            observer.stop()
    seen = observer.seen
    decided = [seen.decided_at[e] for e in sent.accepted if e in seen.decided_at]
    end = max(decided) if complete and decided else waited_until
    latencies = seen.latencies(sent)
    duplicates = sum(c - 1 for (_, e), c in seen.delivery_counts.items() if e in sent.accepted and c > 1)
    seconds = end - sent.first_send
    first = sent.first_send or t_start
    stalls = find_stalls(start=first, sending_ended=max(sent.answered, default=sending_ended), end=end,
                         accepted_at=sent.answered, sent_at=list(sent.accepted.values()), decided_at=decided)
    return RunResult(
        events=len(sent.accepted), records=sent.records, seconds=seconds,
        events_per_s=len(decided) / seconds if seconds > 0 else 0.0, latency_ms=percentiles(latencies),
        deliveries=len(latencies), released_later=seen.released_later(sent), duplicates=duplicates,
        missing_decisions=0 if complete else len(sent.accepted) - len(decided),
        rejected_records=sent.rejected, repeated_event_ids=sent.repeated, http_errors=sent.errors,
        memory_mb={name: _memory_summary(v) for name, v in memory.items() if v},
        cpu_ms_per_event={name: round(c * 1000 / max(len(sent.accepted), 1), 3) for name, c in cpu.items()},
        batch=batch, requests=sent.requests, kafka_traffic=traffic, stalls=[s.to_dict() for s in stalls],
        sending_s=max(sent.answered, default=first) - first, rows=rows)


def soak_row(t_s: float, window_s: float, rate: float, sent: Sent, decided: int,
             window: Sequence[tuple[str, float, int]], rss: dict[str, float], cpu_s: dict[str, float],
             most: int | None = None) -> dict[str, Any]:
    """One soak row: progress so far, latency of the deliveries first seen in the window (Observed.delivery_log's
    entries, each timed from when it became due: its announcement's POST), RSS now (MB) and each process's CPU over
    the window (percent of one core). `most`: the run's events, what "offered" stops at."""
    latencies = []
    for event_id, at, announcement in window:
        due = sent.due(event_id, announcement)
        if due is not None:
            latencies.append(at - due)
    lat = percentiles(latencies)
    offered = round(rate * t_s) if most is None else min(round(rate * t_s), most)
    return {"t_s": round(t_s, 1), "offered": offered, "accepted": len(sent.accepted), "decided": decided,
            "behind": max(len(sent.accepted) - decided, 0), "deliveries": len(latencies), "http_errors": sent.errors,
            "released_later": sum(1 for event_id, _, later in window if later and event_id in sent.accepted),
            "latency_ms": {k: (None if math.isnan(v) else round(v, 1)) for k, v in lat.items()},
            "rss_mb": {k: round(v, 1) for k, v in rss.items()},
            "cpu_percent": {k: round(100 * v / window_s, 1) if window_s > 0 else 0.0 for k, v in cpu_s.items()}}


def _memory_summary(samples: list[tuple[float, float]]) -> dict[str, Any]:
    """RSS start, peak and end (MB), the growth over the last three quarters of the run (a soak's caches fill early,
    so growth after the first quarter is what would point to a leak), and soak.memory_trend's verdict."""
    from broker.bench.soak import memory_trend

    values = [mb for _, mb in samples]
    quarter = values[len(values) // 4]
    trend = memory_trend(samples)
    return {"start": round(values[0], 1), "quarter": round(quarter, 1), "peak": round(max(values), 1),
            "end": round(values[-1], 1), "growth_after_quarter": round(values[-1] - quarter, 1),
            "slope_mb_per_hour": round(trend.slope_mb_per_hour, 1), "flat": trend.flat}


async def _topic_traffic(bootstrap: str, topic: str, since_ms: int) -> dict[str, int]:
    """Messages (and their value bytes) written to `topic` at or after `since_ms` (producer timestamps)."""
    messages = size = 0
    async for record in scan_topic(bootstrap, topic):
        if record.timestamp >= since_ms:
            messages, size = messages + 1, size + len(record.value or b"")
    return {"messages": messages, "bytes": size}


async def _baseline(bootstrap: str, count: int, size: int, rate: float) -> tuple[float, list[float]]:
    topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [(topic, PARTITIONS)])
    prod, _ = await start_producer(bootstrap)  # the service's producer (idempotent where granted): like for like
    cons = reader(bootstrap)
    await cons.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        cons.assign(tps)
        await cons.seek_to_beginning(*tps)
        sent_at: dict[int, float] = {}
        got: dict[int, float] = {}
        body = b"x" * max(size - 8, 0)

        async def consume() -> None:
            while len(got) < count:
                batch = await cons.getmany(timeout_ms=100, max_records=5000)
                now = time.monotonic()
                for records in batch.values():
                    for r in records:
                        got.setdefault(int.from_bytes(r.value[:8], "big"), now)

        reading = asyncio.create_task(consume())
        start = time.monotonic()
        pending = []
        for i in range(count):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent_at[i] = time.monotonic()
            pending.append(await prod.send(topic, i.to_bytes(8, "big") + body, key=str(i % 200).encode()))
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await asyncio.wait_for(reading, 60 + count / 1000)
        seconds = max(got.values()) - start
        return count / seconds, [got[i] - sent_at[i] for i in got]
    finally:
        await prod.stop()
        await cons.stop()


def baseline_run(bootstrap: str, count: int, size: int, rate: float = 0) -> dict[str, Any]:
    """Produce and consume `count` messages of `size` bytes through the same Kafka, no processing."""
    per_s, latencies = aio.run(_baseline(bootstrap, count, size, rate))
    return {"messages": count, "message_bytes": size, "messages_per_s": round(per_s),
            "latency_ms": {k: round(v, 3) for k, v in percentiles(latencies).items()}}
