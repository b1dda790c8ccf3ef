"""Issue 23, through the service on real Kafka: a file of 10 records of which 3 are bad gives exactly 3 dead letters
on the topic (one per bad record, each naming its record and input line and listing its problems), the 7 good
records published, and an audit trail at the same places; the HTTP answer lists every problem, each with its
line. One bad record has two fields the canonical schema refuses: still one dead letter."""

from __future__ import annotations

import hashlib

import httpx

from broker.pipeline.deadletter import INPUT_KIND
from tests.integration.intake_helpers import FHIR_JSON, audit_entries, topic_values
from tests.integration.service import running_service
from tests.integration.topics import read_topic
from tests.unit.test_deadletter_per_record import LONG, ten_patients_three_bad


async def test_ten_records_three_bad_give_three_located_dead_letters(kafka_bootstrap, tmp_path):
    body, starts = ten_patients_three_bad()
    digest = hashlib.sha256(body).hexdigest()
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=60) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                            headers=svc.headers("intake:health", **FHIR_JSON))
        assert r.status_code == 202, r.text
        answer = r.json()
        assert answer["accepted"] == 7 and len(answer["deadletter_ids"]) == 3
        assert {(x["record"], x["line"]) for x in answer["rejections"]} == {
            (f"Bundle.entry[{i}]", starts[i]) for i in (2, 5, 8)}
        assert len(answer["rejections"]) >= 4 and LONG not in r.text and "2015-02-31" not in r.text
        assert len(await read_topic(kafka_bootstrap, svc.settings.topics.events, 7)) == 7

        letters = await topic_values(kafka_bootstrap, svc.settings.topics.deadletter)
        assert len([m for m in letters if m.get("kind") == INPUT_KIND]) == 1
        records = sorted((m for m in letters if "deadletter_id" in m), key=lambda m: m["rejection"]["line"])
        assert [m["deadletter_id"] for m in records] == sorted(answer["deadletter_ids"], key=lambda i: next(
            m["rejection"]["line"] for m in records if m["deadletter_id"] == i))
        assert [(m["rejection"]["record"], m["rejection"]["line"]) for m in records] == [
            (f"Bundle.entry[{i}]", starts[i]) for i in (2, 5, 8)]
        assert sorted(p["field"] for p in records[0]["problems"]) == ["subject.child.family_name",
                                                                     "subject.child.given_names[0]"]

        # received, adapted, 7 published, and a rejection and a dead letter per bad record; the indexer may lag on
        # a loaded host: a bound on waiting (attempts of 0.1 s), not a duration asserted
        entries = await audit_entries(svc, digest, want=2 + 7 + 2 * 3, attempts=1200)
        mine = [e["record"] for e in entries if e.get("record", {}).get("content_sha256") == digest]
        located = {f"Bundle.entry[{i}], line {starts[i]}" for i in (2, 5, 8)}
        for kind in ("record_rejected", "deadlettered"):
            assert {m["position"] for m in mine if m["kind"] == kind} == located
            assert len([m for m in mine if m["kind"] == kind]) == 3
