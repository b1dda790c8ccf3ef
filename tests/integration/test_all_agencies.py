"""All four agencies through the real service and the sample protocol: nothing personal in the clear on any topic,
one child linked across agencies, each subscriber gets exactly what the protocol releases, and a protocol diff can
replay the events topic."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from broker.pipeline.cases import case_transition
from broker.policy import decide_all, release
from broker.policy.thresholds import assessed
from broker.schema.classification import classify, iter_leaves
from broker.service.messages import decode, header
from tests.adapters.police.builders import VALID_NHS, as_json, child, mother, record, submission
from tests.integration.service import running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "deploy" / "protocols" / "sample-partnership.yaml"
SECRET_CLASSES = {"identity", "contact", "location", "narrative"}

FHIR_CHILD = json.dumps({
    "resourceType": "Patient", "id": "child-0001", "gender": "female", "birthDate": "2015-01-02",
    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": VALID_NHS}],
    "name": [{"use": "official", "family": "Example", "given": ["Testchild"]}],
    "address": [{"line": ["1 Fictional Road"], "city": "Testtown", "postalCode": "LS1 4HR"}]}).encode()


def _inputs(external: Path) -> list[tuple[str, str, bytes]]:
    sc = external / "social_care"
    return [
        ("health", "application/fhir+xml", (external / "health" / "UKCore-Patient-RichardSmith-Example.xml")
         .read_bytes()),
        ("health", "application/fhir+json", FHIR_CHILD),
        ("education", "application/xml", (ROOT / "tests/adapters/education/fixtures/ctf24.xml").read_bytes()),
        ("social_care", "application/xml", (sc / "cin-2022.xml").read_bytes()),
        ("social_care", "text/csv", _head(sc / "903-header.csv", 40)),
        ("social_care", "text/csv", (sc / "SSDA903_2020_episodes.csv").read_bytes()),
        ("police", "application/json", as_json(submission(
            record("domestic_abuse", reference="INC-7001", persons=[child(), mother()]),
            record("public_protection_notice", reference="PPN-7002", persons=[child(), mother()])))),
    ]


def _head(path: Path, lines: int) -> bytes:
    """The header row and the first records of a large third-party file (read from shared/, never copied)."""
    return b"".join(path.read_bytes().splitlines(keepends=True)[: lines + 1])


def _secrets(event: dict) -> set[str]:
    """Personal values of an event that must never appear in the clear, long enough not to occur by chance in
    megabytes of base64 ciphertext (short digit runs do: a 6-digit id matches about once per 70 kB)."""
    clear = {str(v) for p, v in iter_leaves(event) if classify(event, p) == "operational"}
    return {v for p, v in iter_leaves(event)
            if classify(event, p) in SECRET_CLASSES and isinstance(v, str) and v not in clear
            and (len(v) >= 10 if v.isdigit() else len(v) >= 6)}


async def test_four_agencies_through_the_sample_protocol(kafka_bootstrap, external_cases, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(SAMPLE)) as svc, \
            httpx.AsyncClient(timeout=60) as http:
        accepted: dict[str, str] = {}  # event id -> agency
        for agency, content_type, body in _inputs(external_cases):
            r = await http.post(f"{svc.base_url}/v1/records/{agency}", content=body,
                                headers=svc.headers(f"intake:{agency}", **{"Content-Type": content_type,
                                                                           "X-Source-System": "LA999"}))
            assert r.status_code == 202, (agency, content_type, r.text[:500])
            accepted.update({e["event_id"]: agency for e in r.json()["events"]})
        assert set(accepted.values()) == {"health", "education", "social_care", "police"}

        events_raw = await read_topic(kafka_bootstrap, svc.settings.topics.events, len(accepted))
        for _ in range(10):  # the hub watch's findings interleave: read on until every accepted event is in
            if set(accepted) <= {header(m.headers, "event_id") for m in events_raw}:
                break
            events_raw = await read_topic(kafka_bootstrap, svc.settings.topics.events, len(events_raw) + 1)
        events = {header(m.headers, "event_id"): svc.runtime.reveal(decode(m.value)).event for m in events_raw}
        # the hub watch's findings (mash.enquiry ..., made by the broker) share the topic; the rest is what was sent
        found = {eid for eid, e in events.items() if e["source"]["agency"] == "broker"}
        assert {events[eid]["event_type"].split(".")[0] for eid in found} <= {"mash"}
        events = {eid: e for eid, e in events.items() if eid not in found}
        assert set(events) == set(accepted)

        # one child, two agencies: the same linkage token, hence the same Kafka key and partition
        key_of = {header(m.headers, "event_id"): (m.key, m.partition) for m in events_raw}
        by_nhs = [eid for eid, e in events.items() if e["subject"]["child"].get("nhs_number") == VALID_NHS]
        assert {accepted[e] for e in by_nhs} == {"health", "police"}
        assert len({key_of[e] for e in by_nhs}) == 1

        # each subscriber receives exactly what the engine decides, masked as written, and nothing else; the case
        # register's state is the one each event was decided under (the hub shares only while a referral is open,
        # issue 19), replayed in the topic's order, which keeps one child's events in order
        case_at: dict[str, bool | None] = {}
        state: dict[str, bool] = {}
        for eid, event in events.items():
            token = event["subject"]["linkage"]["token"]
            if (transition := case_transition(event)) is not None:
                state[token] = transition
            case_at[eid] = state.get(token)
        await _settle(svc, http, events)
        delivered_somewhere = 0
        for name in svc.runtime.protocol.subscribers:
            client = svc.client_for(name)
            got, cursor = {}, ""
            while True:  # page through with the cursor
                r = await http.get(f"{svc.base_url}/v1/subscribers/{name}/events",
                                   params={"limit": 500, "after": cursor}, headers=svc.headers(f"subscriber:{name}"))
                page = r.json()
                for d in page["deliveries"]:
                    opened = client.open(base64.b64decode(d["sealed"]))
                    assert opened["event_id"] not in got, "duplicate delivery"
                    got[opened["event_id"]] = opened
                if not page["deliveries"]:
                    break
                cursor = page["next_cursor"]
            expected = {}
            for eid, event in events.items():
                token = event["subject"]["linkage"]["token"]
                for decision in decide_all(svc.runtime.protocol, event, svc.runtime.consent_for(token),
                                           case_open=case_at[eid]):
                    if decision.subscriber == name and decision.delivered:
                        # delivered on the common risk scale (the protocol's risk_scales: thresholds.py)
                        view = dict(assessed(svc.runtime.protocol.risk_scales, event))
                        expected[eid] = release(view, decision, mask_key=svc.runtime.mask_key)
            # the hub watch's findings (made by the broker, tested in test_hub_watch) are not this test's events
            got = {eid: e for eid, e in got.items() if eid not in found and e["source"]["agency"] != "broker"}
            assert set(got) == set(expected), (name, len(got), len(expected))
            for eid, opened in got.items():
                assert opened == expected[eid], (name, eid, {k for k in opened if opened[k] != expected[eid].get(k)})
            delivered_somewhere += len(got)
        assert delivered_somewhere > 0

        # no name, identifier, address, date of birth or narrative in the clear on any topic
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        topics = [t for t in await admin.list_topics() if t.startswith(svc.settings.topic_prefix + ".")]
        await admin.close()
        raw = b""
        for topic in topics:
            raw += b"".join((m.value or b"") + (m.key or b"") for m in await read_topic(kafka_bootstrap, topic))
        secrets = set().union(*(_secrets(e) for e in events.values()))
        assert len(secrets) > 20
        leaked = sorted(s for s in secrets if s.encode() in raw)
        where = {s: [t for t in topics if s.encode() in b"".join(
            (m.value or b"") for m in await read_topic(kafka_bootstrap, t))] for s in leaked[:3]}
        assert leaked == [], f"{len(leaked)} personal values in the clear, e.g. in {where}"

        # nor in any store on disk: audit store, keystore, registers
        stores = b"".join(f.read_bytes() for f in svc.settings.data_dir.rglob("*.sqlite*"))
        assert stores and sorted(s for s in secrets if s.encode() in stores) == []

        # a protocol change, dry-run against a replay of the events topic
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "MASH_DATA_DIR": str(svc.settings.data_dir),
               "MASH_TOPIC_PREFIX": svc.settings.topic_prefix}
        stricter = tmp_path / "stricter.yaml"
        stricter.write_text(SAMPLE.read_text().replace('version: "1.0.0"', 'version: "1.1.0"', 1)
                            .replace("risk_at_least: high", "risk_at_least: critical"))
        proc = subprocess.run([sys.executable, "-m", "broker.cli.main", "policy", "diff", "--from", str(SAMPLE),
                               "--to", str(stricter), "--replay", "--json"], env=env, capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
        report = json.loads(proc.stdout)
        assert proc.returncode == (1 if report["changed"] else 0), proc.stderr  # 1: the change alters a decision
        assert "mash_hub" in json.dumps(report)


async def _settle(svc, http, events) -> None:
    """Wait until the share stage has decided every event for every subscriber (decisions are audited)."""
    import asyncio

    want = len(events) * len(svc.runtime.protocol.subscribers)
    for _ in range(300):
        decided = sum(s.value for s in svc.runtime.metrics.decisions.collect()[0].samples
                      if s.name == "mash_decisions_total")
        if decided >= want:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("share stage did not decide every event")
    # Decided is not yet delivered: on Apache Kafka a batch's deliveries become readable (read_committed) when its
    # transaction commits, and its input offsets commit with it; wait for those offsets to reach the topic's end.
    await _share_offsets_at_end(svc)


async def _share_offsets_at_end(svc, timeout: float = 30) -> None:
    import asyncio
    import time

    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    bootstrap, topic = svc.runtime.bootstrap, svc.settings.topics.events
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed")
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        end = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            committed = await admin.list_consumer_group_offsets(svc.settings.group("share"), partitions=tps)
            if all(tp in committed and committed[tp].offset >= end[tp] for tp in tps if end[tp] > 0):
                return
            await asyncio.sleep(0.2)
        raise AssertionError("the share stage did not commit every decided event")
    finally:
        await consumer.stop()
        await admin.close()
