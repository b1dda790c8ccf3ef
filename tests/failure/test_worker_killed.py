"""A share worker process SIGKILLed mid-stream and restarted: nothing lost, no subscriber sees an event twice."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections import Counter

import pytest

from broker.bench.e2e import Observer, Sent, post_mix, running, service_env, start_cli
from broker.bench.records import mix, usable_formats
from broker.bench.stages import install_protocol
from broker.kafka.embedded import free_port
from broker.policy import load_protocol

pytestmark = pytest.mark.integration

RECORDS = 120
RATE = 60  # events/s: the stream lasts a few seconds, so the kill lands in the middle of it


def test_sigkilled_worker_restarts_without_loss_or_duplicates(kafka_bootstrap, tmp_path):
    formats, _, per_record = usable_formats()
    protocol_file, _ = install_protocol(tmp_path)
    prefix = f"kill{uuid.uuid4().hex[:6]}"
    env = service_env(kafka_bootstrap, tmp_path, protocol_file, prefix, free_port())
    subscribers = list(load_protocol(protocol_file).subscribers)
    topics = {s: f"{prefix}.deliver.{s}" for s in subscribers}
    with running(env, 1, tmp_path / "logs") as procs:
        observer = Observer(kafka_bootstrap, topics, f"{prefix}.audit", len(subscribers)).start()
        try:
            warm = Sent()  # the worker has joined the share group once these are decided
            asyncio.run(post_mix(procs.base_url, procs.credentials, mix(formats, 5), rate=0, concurrency=4,
                                 events_per_record=per_record, sent=warm))
            deadline = time.monotonic() + 30
            while not all(e in observer.seen.decided_at for e in warm.accepted):
                assert time.monotonic() < deadline, "the worker never started delivering"
                time.sleep(0.05)
            sent = Sent()
            poster = threading.Thread(target=lambda: asyncio.run(post_mix(
                procs.base_url, procs.credentials, [(f, tuple(k + 1000 for k in n)) for f, n in mix(formats, RECORDS)],
                rate=RATE,
                concurrency=4, events_per_record=per_record, sent=sent, exclude=warm.accepted)))
            poster.start()
            deadline = time.monotonic() + 30
            while len(observer.seen.decided_at) < len(warm.accepted) + 20:  # the worker is delivering
                assert time.monotonic() < deadline, "the first worker delivered nothing"
                time.sleep(0.05)
            victim = procs.workers[0]
            victim.send_signal(signal.SIGKILL)
            victim.wait(5)
            decided_at_kill = len(observer.seen.decided_at) - len(warm.accepted)
            replacement = start_cli(env, tmp_path / "logs" / "worker-restarted.log", "worker", "--no-audit-indexer")
            procs.workers.append(replacement)
            poster.join(60)
            assert sent.errors == 0 and sent.rejected == 0
            deadline = time.monotonic() + 40
            while not all(e in observer.seen.decided_at for e in sent.accepted):
                assert time.monotonic() < deadline, "events accepted at intake were never decided"
                time.sleep(0.1)
            time.sleep(1.0)  # let any late duplicate arrive before counting
        finally:
            observer.stop()
    accepted = set(sent.accepted)
    assert decided_at_kill < len(accepted), "the kill came after the stream had finished"
    counts = Counter({key: n for key, n in observer.seen.delivery_counts.items() if key[1] in accepted})
    assert counts, "no deliveries observed"
    duplicates = {key: n for key, n in counts.items() if n > 1}
    assert duplicates == {}, f"{len(duplicates)} deliveries were sent more than once"
    # every event was decided for every subscriber; every delivery the protocol decided reached its subscriber once,
    # and nothing reached a subscriber without a decision to deliver
    assert all(observer.seen.decisions[e] >= len(subscribers) for e in accepted)
    released = {key for key in observer.seen.released if key[1] in accepted}
    assert set(counts) == released, (len(set(counts) - released), len(released - set(counts)))
    assert len({event_id for _, event_id in released}) >= len(accepted) // 5, "too few deliveries to tell anything"
