"""Defect 2: the embedded broker loses every topic on a restart while the registers remember deliveries, cursors and
first-served copies. The next start must notice, say so plainly, and reconcile, so that a resend reaches the
subscriber again and no acknowledged cursor skips a delivery."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.integration.cli_service import CliService
from tests.integration.protocols import child, health_protocol

pytestmark = [pytest.mark.integration, pytest.mark.tansu]  # the embedded Tansu, the fallback without Java

FHIR_JSON = "application/fhir+json"


def deliver_and_ack(svc: CliService, body: bytes) -> tuple[str, str]:
    """Intake -> delivery -> pull -> ack: the event id and the acknowledged cursor."""
    r = svc.post("health", body, FHIR_JSON)
    assert r.status_code == 202, r.text
    [accepted] = r.json()["events"]
    page = svc.pull_until("test_hub", 1)
    assert [d["event_id"] for d in page["deliveries"]] == [accepted["event_id"]]
    assert svc.ack("test_hub", page["next_cursor"]).status_code == 200
    assert svc.pull("test_hub").json()["deliveries"] == []  # acknowledged: nothing left
    return accepted["event_id"], page["next_cursor"]


def wait_for_audit(svc: CliService, kind: str, text: str, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in svc.audit(kind) if text in json.dumps(e)]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {kind} audit record with {text}")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "clean-stop"])
def test_a_resend_after_the_broker_lost_its_topics_is_delivered(tmp_path, how) -> None:
    body = child(7)
    svc = CliService(tmp_path, health_protocol(tmp_path / "source"))
    try:
        first = svc.start()
        assert first.json()["checks"]["kafka_epoch"] == "ok"
        event_id, acked = deliver_and_ack(svc, body)
        svc.kill(how)

        ready = svc.start()  # same data dir, new embedded broker: every topic is gone
        lost = [line for line in svc.log().splitlines() if "kafka_topics_lost" in line]
        assert len(lost) == 1, svc.log()  # one plain line, naming what was cleared
        assert "delivered log" in lost[0] and "acknowledged cursors" in lost[0]
        assert ready.json()["status"] == "degraded"
        assert "lost its topics" in ready.json()["checks"]["kafka_epoch"]
        for name in ("kafka", "stores", "workers"):
            assert ready.json()["checks"][name] == "ok"

        # the old cursor names positions the new broker never had: refused plainly, not a silent skip
        r = svc.pull("test_hub", after=acked)
        assert r.status_code == 410 and "without `after`" in r.json()["detail"]
        assert svc.ack("test_hub", acked).status_code == 410

        # the agency resends: it reaches the subscriber again, from where a resuming pull starts
        r = svc.post("health", body, FHIR_JSON)
        assert r.status_code == 202 and r.json()["events"][0]["event_id"] == event_id
        page = svc.pull_until("test_hub", 1)
        [delivery] = page["deliveries"]
        assert delivery["event_id"] == event_id
        assert svc.open("test_hub", delivery)["event_id"] == event_id
        assert svc.ack("test_hub", page["next_cursor"]).status_code == 200

        [entry] = wait_for_audit(svc, "admin_action", "kafka.topics_lost")
        assert entry["record"]["actor"] == "runtime" and entry["record"]["count"] >= 3  # delivered, cursor, served

        # every restart of the embedded broker empties it again: said again, and again nothing acknowledged before
        # makes the next resend disappear
        svc.kill(how)
        svc.start()
        assert sum("kafka_topics_lost" in line for line in svc.log().splitlines()) == 1
        r = svc.post("health", body, FHIR_JSON)
        assert r.status_code == 202
        assert [d["event_id"] for d in svc.pull_until("test_hub", 1)["deliveries"]] == [event_id]
    finally:
        svc.stop()
