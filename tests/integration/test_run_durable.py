"""`make run` on Java 17+: `mash-broker run --dev` on a durable single-node Apache Kafka under <data_dir>/kafka,
started and stopped with the service. A restart, clean or after kill -9, loses nothing that got a 202, keeps every
cursor valid and fires no epoch reconcile (Kafka kept its topics). Skipped, with the reason, only without Java."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from broker.kafka.apache import unavailable_reason
from tests.integration.cli_service import CliService
from tests.integration.protocols import child, health_protocol

pytestmark = pytest.mark.integration
FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module", autouse=True)
def _needs_apache_kafka() -> None:
    if reason := unavailable_reason():
        pytest.skip(f"Apache Kafka unavailable: {reason}")


def kafka_pid(svc: CliService) -> int:
    return int((svc.data_dir / "kafka" / "node-1" / "pid").read_text())


def gone(pid: int, within: float = 60.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True
        time.sleep(0.2)
    return False


def post(svc: CliService, n: int) -> str:
    r = svc.post("health", child(n), FHIR_JSON)
    assert r.status_code == 202, r.text
    [accepted] = r.json()["events"]
    return accepted["event_id"]


def restart_loses_nothing(svc: CliService, how: signal.Signals, first_child: int) -> None:
    """One stop (kill -9 or clean) and restart of a running service, checked: what got a 202 is delivered after it,
    the cursor acknowledged before it still works, no epoch reconcile. Leaves nothing unacknowledged."""
    assert svc.pull("test_hub").json()["deliveries"] == []  # each round starts with everything acknowledged
    kafka = kafka_pid(svc)
    acked_ids = [post(svc, first_child), post(svc, first_child + 1)]
    page = svc.pull_until("test_hub", 2)
    assert sorted(d["event_id"] for d in page["deliveries"]) == sorted(acked_ids)
    acked = page["next_cursor"]
    assert svc.ack("test_hub", acked).status_code == 200
    # 202'd, not yet pulled: a crash straight after intake must not lose these
    pending = [post(svc, first_child + 2), post(svc, first_child + 3)]

    svc.kill(how)  # kill -9: the node gets SIGTERM from PR_SET_PDEATHSIG; either way it must be gone
    assert gone(kafka), f"the service's Apache Kafka outlived it ({how.name})"

    ready = svc.start(timeout=180)  # same data dir, same Kafka data: nothing resent
    assert ready.json()["status"] == "ready", ready.text
    assert ready.json()["checks"]["kafka_epoch"] == "ok"
    assert "kafka_topics_lost" not in svc.log() and "kafka_epoch_recorded" not in svc.log()

    # the cursor acknowledged before the stop is still valid: pull and ack with it, no 410
    r = svc.pull("test_hub", after=acked)
    assert r.status_code == 200, r.text
    resumed = svc.pull_until("test_hub", 2)
    got = [d["event_id"] for d in resumed["deliveries"]]
    assert sorted(got) == sorted(pending)  # nothing lost, nothing acknowledged served again
    assert [svc.open("test_hub", d)["event_id"] for d in resumed["deliveries"]] == got
    assert svc.ack("test_hub", acked).status_code == 200
    assert svc.ack("test_hub", resumed["next_cursor"]).status_code == 200

    # and the restarted stack goes on delivering
    later = post(svc, first_child + 4)
    page = svc.pull_until("test_hub", 1)
    assert [d["event_id"] for d in page["deliveries"]] == [later]
    assert svc.ack("test_hub", page["next_cursor"]).status_code == 200


def test_a_restart_on_apache_kafka_loses_nothing_and_keeps_cursors(tmp_path) -> None:
    """Promise: on `make run` with Java, every record that got a 202 before a stop (clean or kill -9) is delivered or
    deliverable after the restart, and the cursor acknowledged before it still works.

    One service stopped both ways in turn, kill -9 and then a clean stop of the restarted stack: the same checks as
    a service of each stop's own, one Apache Kafka start (and storage format) fewer."""
    svc = CliService(tmp_path, health_protocol(tmp_path / "source"), local_kafka="apache")
    try:
        ready = svc.start(timeout=180)
        assert ready.json()["kafka_in_use"].startswith("Apache Kafka ")
        assert "Kafka: Apache Kafka" in svc.log()  # the plain start line says which Kafka
        assert "embedded broker" not in svc.log()
        restart_loses_nothing(svc, signal.SIGKILL, first_child=1)
        restart_loses_nothing(svc, signal.SIGTERM, first_child=6)
        last_kafka = kafka_pid(svc)
    finally:
        svc.stop()
    assert gone(last_kafka), "the service's Apache Kafka outlived a clean stop"
    assert not (svc.data_dir / "kafka" / "node-1" / "pid").exists()
