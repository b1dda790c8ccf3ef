"""Failure drills on a three-node Apache Kafka cluster: replication factor 3, min.insync.replicas 2, acks=all.

One cluster and one broker stack (service, share worker, audit indexer, each a real process) for the module; the
drills run in file order and each leaves the cluster and the stack whole for the next:

  (a) SIGKILL the node leading the events topic's partition mid-stream, then bring it back;
  (b) SIGKILL the share worker mid-batch (caught with a Kafka transaction open), then start another;
  -   kill two nodes of three: while there is no quorum intake answers 503, never a 202; then bring them back;
  (c) SIGKILL the whole stack (service, worker, indexer and all three nodes) and start it all again.

During each, a loop of real HTTP POSTs of fictitious records; every answer counted. A record that did not get its
202 is sent again afterwards, as a sender would, until it does: so every record of the module is acknowledged in
the end, some of them twice. Then, once the pipeline has settled (the share group and the audit indexer committed
to the end of their inputs, no transaction open), every delivery topic is read raw from its beginning with
`read_committed` and nothing opened: each acknowledged event must be on the topic of each subscriber the protocol
entitles it to (computed here with `decide_all`; the drill protocol releases every record to both subscribers)
exactly once, and on no other. The audit store must hold one `delivered` record per delivery and verify.

The cluster's own default min.insync.replicas is a stock 1 (tests/failure/cluster.py): the 2 is the service's doing.
Skipped, with the reason, only where Java 17+ or the Kafka jars cannot be had.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.kafka.apache import unavailable_reason
from tests.failure.cluster import (
    HTTP_TIMEOUT_S,
    MIN_INSYNC,
    REPLICATION,
    Drill,
    Stack,
    describe,
    drill_cluster,
    exactly_once_problems,
    open_transactions,
    run,
    timed,
    wait_for,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
STREAM = 40  # records acknowledged on each side of a kill: the kill lands mid-stream, with a stream after it


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"Apache Kafka unavailable: {reason}")
    with timed("three nodes started"):
        kafka = drill_cluster(tmp_path_factory.mktemp("drill-kafka")).start()
    stack = None
    try:
        with timed("stack started"):
            stack = Stack.create(kafka.bootstrap_servers, tmp_path_factory.mktemp("drill-stack")).start()
        drill = Drill(kafka, stack)
        with drill.intake(rate=20, senders=1) as warm:  # the worker has joined and delivers, transactions work
            wait_for(lambda: warm.acknowledged() >= 5, 60, "the first records accepted")
        drill.absorb(warm)
        assert warm.resend_unacknowledged() == []
        drill.verify()
        yield drill
    finally:
        if stack is not None:
            stack.stop()
        for node in (1, 2, 3):  # a throwaway cluster: no clean shutdown owed to it
            kafka.kill(node)


def test_the_count_catches_a_loss_a_duplicate_and_a_stray_delivery() -> None:
    """The drills' yardstick, checked against what it must catch (no cluster needed)."""
    both = {"hub", "other"}
    entitlement = {"e1": both, "e2": both, "e3": {"hub"}, "e4": both}  # e4 was refused (503): may or may not come
    exact = {"hub": Counter({"e1": 1, "e2": 1, "e3": 1}), "other": Counter({"e1": 1, "e2": 1, "e4": 1})}
    assert exactly_once_problems(exact, entitlement, {"e1", "e2", "e3"}) == {}
    lost = {"hub": Counter({"e1": 1, "e3": 1}), "other": exact["other"]}
    assert exactly_once_problems(lost, entitlement, {"e1", "e2", "e3"}) == {"missing": [("hub", "e2")]}
    twice = {"hub": exact["hub"], "other": Counter({"e1": 1, "e2": 2})}
    assert exactly_once_problems(twice, entitlement, {"e1", "e2"}) == {"duplicated": [("other", "e2", 2)]}
    stray = {"hub": exact["hub"], "other": Counter({"e1": 1, "e2": 1, "e3": 1, "e9": 1})}
    assert exactly_once_problems(stray, entitlement, {"e1", "e2"}) == {"unentitled": [("other", "e3"),
                                                                                       ("other", "e9")]}


def streamed(intake, at_least: int, timeout: float = 60) -> int:
    """Wait until `at_least` more records are acknowledged; returns how many are."""
    target = intake.acknowledged() + at_least
    return wait_for(lambda: intake.acknowledged() >= target and intake.acknowledged(), timeout,
                    f"{at_least} more records accepted")


def test_the_service_creates_every_topic_with_three_replicas_and_min_insync_two(drill: Drill) -> None:
    """acks=all keeps a 202 on two nodes only if the topic says so: the cluster's default here is 1."""
    states = run(describe(drill.bootstrap, drill.stack.broker_topics()))
    assert set(states) == set(drill.stack.broker_topics())
    assert {t: (s.replicas, s.min_insync) for t, s in states.items()} == \
        {t: (REPLICATION, MIN_INSYNC) for t in states}


def test_a_sigkilled_events_leader_mid_stream_loses_and_duplicates_nothing(drill: Drill) -> None:
    kafka, leader = drill.kafka, drill.events_leader()
    with drill.intake() as intake:
        streamed(intake, STREAM)
        kafka.kill(leader)
        killed_at = intake.acknowledged()
        streamed(intake, STREAM)  # accepted again: on a new leader, with the other two replicas
        assert drill.events_leader() != leader
    with timed("killed leader back"):
        kafka.start_node(leader)
    drill.wait_whole()
    assert killed_at < intake.acknowledged()
    drill.absorb(intake)
    intake.resend_unacknowledged()
    drill.absorb(intake)
    drill.verify()


def caught_mid_transaction(proc: subprocess.Popen[bytes], bootstrap: str, topics: list[str],
                           timeout: float = 60) -> bool:
    """Freeze the process until it is caught with a transaction open on the topics (then leave it frozen)."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while time.monotonic() < deadline:
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.05)  # what it had sent reaches the cluster
        if run(open_transactions(bootstrap, topics)):
            return True
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.01 + 0.03 * (attempt % 3))
        attempt += 1
    return False


def test_b_a_share_worker_sigkilled_mid_batch_loses_and_duplicates_nothing(drill: Drill) -> None:
    stack = drill.stack
    written = [*stack.delivery_topics().values(), stack.settings.topics.audit]
    with drill.intake() as intake:
        streamed(intake, STREAM)
        caught = caught_mid_transaction(stack.processes["worker"], drill.bootstrap, written)
        stack.kill("worker")
        killed_at = intake.acknowledged()
        stack.start_worker()
        streamed(intake, STREAM)
    assert caught, "the worker was never caught with a transaction open"
    assert killed_at < intake.acknowledged()
    drill.absorb(intake)
    intake.resend_unacknowledged()
    drill.absorb(intake)
    drill.verify()


def test_without_a_quorum_intake_answers_503_never_a_202_it_cannot_keep(drill: Drill) -> None:
    """Two nodes of three killed, the events leader left running with the only live replica: no write may be
    acknowledged on that one copy, and intake must say so, 503 (resend), within the request timeout. Every POST sent
    after the loss is counted, the loop's and four more sent at once."""
    kafka, leader = drill.kafka, drill.events_leader()
    others = [n for n in (1, 2, 3) if n != leader]
    refused = []
    with drill.intake() as intake:
        streamed(intake, STREAM)
        for node in others:
            kafka.kill(node)
        lost_at = time.monotonic()
        # POSTs sent once the quorum is gone, beside the loop's requests still in flight
        during = drill.intake(rate=1000, senders=1)
        threads = [threading.Thread(target=lambda: refused.append(during.send_one())) for _ in range(4)]
        for t in threads:
            t.start()
    for t in threads:
        t.join(HTTP_TIMEOUT_S + 5)
    answered_in = time.monotonic() - lost_at
    assert sorted(refused) == [503] * 4, refused
    after_loss = Counter(status for sent_at, status in intake.sent + during.sent if sent_at >= lost_at)
    assert set(after_loss) == {503}, after_loss  # no 202 without a quorum, and never no answer
    assert answered_in < HTTP_TIMEOUT_S
    drill.absorb(intake)  # what was acknowledged before the loss (and by requests in flight as it happened)
    drill.absorb(during)  # refused, yet they may have reached the leader's log: delivered once, or not at all
    with timed("two nodes back"):
        kafka.start_nodes(others)
    drill.wait_whole()
    drill.verify()  # everything acknowledged before the loss arrives, once
    intake.resend_unacknowledged()
    during.resend_unacknowledged()  # the refused records, sent again: accepted, delivered once
    drill.absorb(intake)
    drill.absorb(during)
    assert len(during.events) == 4
    drill.verify()


def test_c_the_whole_stack_sigkilled_and_restarted_loses_and_duplicates_nothing(drill: Drill) -> None:
    kafka, stack = drill.kafka, drill.stack
    with drill.intake() as intake:
        streamed(intake, STREAM)
        stack.kill()  # service, share worker, audit indexer
        intake.halt()  # a sender seeing connections refused: the records in flight are resent later
        for node in (1, 2, 3):
            kafka.kill(node)
        killed_at = intake.acknowledged()
    with timed("three nodes restarted"):
        kafka.start()  # same data, same ports
    with timed("stack restarted"):
        stack.start()
    with drill.intake() as after:
        streamed(after, STREAM // 2)  # accepted again after the restart
    assert killed_at > 0
    drill.absorb(intake)
    drill.absorb(after)
    intake.resend_unacknowledged()
    after.resend_unacknowledged()
    drill.absorb(intake)
    drill.absorb(after)
    drill.verify()
    # and as an operator would check it: `mash-broker audit verify` on the data directory exits 0
    out = subprocess.run([sys.executable, "-m", "broker.cli.main", "audit", "verify", "--data-dir",
                          str(stack.data_dir)], cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
