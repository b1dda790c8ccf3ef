"""Promise: nothing acknowledged is lost on a restart of the embedded broker: a resend after Kafka lost its topics
reaches every subscriber again, and no acknowledged cursor, kept or presented, skips a delivery."""

from __future__ import annotations

import signal

import httpx
import pytest

from tests.integration.cli_service import CliService
from tests.integration.protocols import child, health_protocol

pytestmark = [pytest.mark.integration, pytest.mark.tansu]  # the embedded Tansu, the fallback without Java
FHIR = "application/fhir+json"


def _ids(page: dict) -> set[str]:
    return {d["event_id"] for d in page["deliveries"]}


def test_acknowledged_then_killed_then_resent_reaches_everyone(tmp_path) -> None:
    """Two subscribers acknowledge all or part of three deliveries; the service is killed with SIGKILL, which takes
    the embedded broker's topics with it; on the next start the agencies resend two of the records and send a new
    one. Each subscriber, resuming from its acknowledged cursor, must get all three, and every way a subscriber
    could present a pre-loss cursor (after, ack, Last-Event-ID) must be refused rather than skip anything."""
    svc = CliService(tmp_path, health_protocol(tmp_path / "source", both_subscribers=True))
    try:
        svc.start()
        ids = {n: svc.post("health", child(n), FHIR).json()["events"][0]["event_id"] for n in (1, 2, 3)}
        hub = svc.pull_until("test_hub", 3)
        other = svc.pull_until("test_other", 3)
        assert svc.ack("test_hub", hub["next_cursor"]).status_code == 200
        assert svc.ack("test_other", other["deliveries"][0]["cursor"]).status_code == 200
        stale = hub["next_cursor"]
        svc.kill(signal.SIGKILL)

        svc.start()
        for name in ("test_hub", "test_other"):  # presenting the old cursor in every way there is
            assert svc.pull(name, after=stale).status_code in (400, 410)
            assert svc.ack(name, stale).status_code in (400, 410)
            with httpx.stream("GET", f"{svc.base_url}/v1/subscribers/{name}/stream", timeout=30,
                              headers=svc.headers(f"subscriber:{name}", **{"Last-Event-ID": stale})) as r:
                assert r.status_code in (400, 410)
        resent = {ids[2], ids[3]}
        for n in (2, 3):
            assert svc.post("health", child(n), FHIR).status_code == 202
        fresh = svc.post("health", child(5), FHIR).json()["events"][0]["event_id"]
        for name in ("test_hub", "test_other"):
            assert _ids(svc.pull_until(name, 3)) == resent | {fresh}, name
    finally:
        svc.stop()
