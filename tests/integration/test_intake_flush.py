"""Intake's flushes on a real Kafka (broker/service/intake.py, broker/service/group_commit.py): requests planned
while a flush is in flight are published together in the next one, and each is still answered for itself.

One embedded Kafka of the test's own (SIGSTOPped to hold a flush in flight, then to fail one), one service:

- the requests gathered behind a stopped flush go in one flush once Kafka answers: the good ones get their 202, the
  one whose every record is rejected its 422 and its dead letter, and a request's events (a CIN record: four about
  one child) keep their order on the child's partition;
- Kafka failing under a flush answers every request of it 503, and nothing claims them afterwards: no audit record
  of their receipt or publication, no identity link of their children; the next request is accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from collections.abc import Callable

import httpx
import pytest

import broker.service.intake as service_intake
from adapters.kit.interface import AdaptContext
from broker.bench.records import BY_NAME
from broker.kafka.embedded import EmbeddedKafka
from broker.pipeline.intake import prepare
from broker.service.messages import header
from tests.integration.intake_helpers import FHIR_JSON, audit_entries, bad_patient, bundle
from tests.integration.service import running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
FHIR, CIN = BY_NAME["health.fhir"], BY_NAME["social_care.cin"]


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(300):  # a guard against a hang (30 s), not a measure of speed
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


@pytest.mark.tansu  # SIGSTOPs the embedded Tansu it starts
async def test_requests_behind_a_flush_go_together_and_each_is_answered_for_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(service_intake, "PUBLISH_TIMEOUT_S", 30.0)  # phase 1: Kafka is stopped for well under it
    with EmbeddedKafka() as kafka:
        async with running_service(tmp_path, kafka.bootstrap_servers) as svc, httpx.AsyncClient(timeout=60) as http:
            rt, pid = svc.runtime, kafka.pid
            assert pid is not None

            async def post(agency: str, body: bytes, content_type: str) -> httpx.Response:
                return await http.post(f"{svc.base_url}/v1/records/{agency}", content=body,
                                       headers=svc.headers(f"intake:{agency}", **{"Content-Type": content_type}))

            def health(n: int) -> asyncio.Task[httpx.Response]:
                return asyncio.create_task(post("health", FHIR.make(n), FHIR.content_type))

            assert (await post("health", FHIR.make(1), FHIR.content_type)).status_code == 202  # clients warm
            flusher = service_intake._flusher(rt)
            flushes, flushed = flusher.flushes, flusher.flushed

            # --- phase 1: a flush held in flight; three requests gather behind it --------------------------------
            os.kill(pid, signal.SIGSTOP)
            try:
                lead = health(2)
                await _until(lambda: flusher.flushes == flushes + 1, "the lead request's flush started")
                cin_body = CIN.make(3)
                good, rejected, cin = (health(4), asyncio.create_task(post("health", bundle(bad_patient(5)),
                                                                           FHIR_JSON["Content-Type"])),
                                       asyncio.create_task(post("social_care", cin_body, CIN.content_type)))
                await _until(lambda: flusher.waiting == 3, "three requests waiting behind the flush in flight")
                assert not lead.done()
            finally:
                os.kill(pid, signal.SIGCONT)
            answers = [await t for t in (lead, good, rejected, cin)]
            assert [r.status_code for r in answers] == [202, 202, 422, 202], [r.text for r in answers]
            assert (flusher.flushes, flusher.flushed) == (flushes + 2, flushed + 4)  # the three in one flush
            assert answers[2].json()["deadletter_ids"]  # the rejected neighbour's dead letter went with the flush

            events = await read_topic(kafka.bootstrap_servers, svc.settings.topics.events)
            on_kafka = [header(m.headers, "event_id") for m in events]
            for r in (answers[0], answers[1], answers[3]):
                assert {e["event_id"] for e in r.json()["events"]} <= set(on_kafka)
            cin_ids = [e["event_id"] for e in answers[3].json()["events"]]
            assert len(cin_ids) == 4
            cin_records = [m for m in events if header(m.headers, "event_id") in cin_ids]
            assert len({(m.partition, m.key) for m in cin_records}) == 1  # one child: one key, one partition
            assert [header(m.headers, "event_id") for m in cin_records] == cin_ids  # in the request's order

            # --- phase 2: Kafka fails under a flush: every request of it 503, and none is claimed later ----------
            monkeypatch.setattr(service_intake, "PUBLISH_TIMEOUT_S", 2.0)
            failing = [FHIR.make(n) for n in (20, 21, 22)]
            unavailable = rt.metrics.kafka_unavailable._value.get()
            os.kill(pid, signal.SIGSTOP)
            try:
                refused = await asyncio.gather(*(post("health", body, FHIR.content_type) for body in failing))
            finally:
                os.kill(pid, signal.SIGCONT)
            assert [r.status_code for r in refused] == [503] * 3, [r.text for r in refused]
            assert all("did not acknowledge" in r.json()["detail"] for r in refused)
            assert rt.metrics.kafka_unavailable._value.get() == unavailable + 3

            later_body = FHIR.make(30)
            later = await post("health", later_body, FHIR.content_type)
            assert later.status_code == 202, later.text
            entries = await audit_entries(svc, hashlib.sha256(later_body).hexdigest(), want=2)
            audited = {e.get("record", {}).get("content_sha256") for e in entries}
            assert hashlib.sha256(later_body).hexdigest() in audited
            assert not audited & {hashlib.sha256(b).hexdigest() for b in failing}  # no receipt, no publication

            ctx = AdaptContext(source="request", received_at="2026-12-02T00:00:00Z", system=None,
                               settings=rt.adapter_settings)
            tokens = [i.token for body in failing
                      for ids in prepare("health", body, ctx, rt.linkage, content_type=FHIR.content_type).identities
                      for i in ids]
            assert tokens and not rt.identities.known(tokens).child_of  # the register learned none of their links
            resent = await post("health", failing[0], FHIR.content_type)  # the sender's resend is accepted
            assert resent.status_code == 202, resent.text
            assert rt.identities.known(tokens[:1]).child_of  # its link written before its 202
