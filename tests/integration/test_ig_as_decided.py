"""IG through the real service (Kafka, SQLite registers, HTTP): a recorded decision explained as decided, its event
read back from the events topic, and Find a child by NHS number with the lookup audited. Fictitious child."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
import orjson
import pytest

from broker.service.as_decided import recorded_event
from tests.adapters.health.builders import VALID_NHS, bundle, patient
from tests.integration.service import running_service

pytestmark = pytest.mark.integration


async def _decision(svc, event_id: str) -> dict[str, Any]:
    for _ in range(300):  # the audit indexer writes behind the share stage
        found = svc.runtime.audit_store.search(kind="decision", event_id=event_id, subscriber="test_hub")
        if found:
            return found[0]["record"]
        await asyncio.sleep(0.1)
    raise AssertionError("no decision audited")


async def test_explain_a_recorded_decision_and_find_the_child(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=60) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=orjson.dumps(bundle(patient())),
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json"}))
        assert r.status_code == 202, r.text
        event_id = r.json()["events"][0]["event_id"]
        record = await _decision(svc, event_id)
        ig = svc.headers("ig_auditor")

        r = await http.get(f"{svc.base_url}/v1/ig/policy/decisions/{record['decision_id']}/explain", headers=ig)
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["recorded"]["decision_id"] == record["decision_id"]
        assert result["as_decided"]["same"] is True and result["decision"]["outcome"] == record["outcome"]
        assert result["as_decided"]["as_of"]["consent"] == "now"
        text = await http.get(f"{svc.base_url}/v1/ig/policy/decisions/{record['decision_id']}/explain",
                              params={"format": "text"}, headers=ig)
        assert "today's protocol decides the SAME" in text.text
        # the event given in the body (when the topic no longer holds it): the same verdict
        event = await recorded_event(svc.runtime, event_id)
        posted = await http.post(f"{svc.base_url}/v1/ig/policy/explain", headers=ig,
                                 json={"event": event, "decision_id": record["decision_id"]})
        assert posted.status_code == 200 and posted.json()["as_decided"]["same"] is True, posted.text
        # the CLI, the event read back from the events topic (no EVENT.json)
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "MASH_DATA_DIR": str(svc.settings.data_dir),
               "MASH_TOPIC_PREFIX": svc.settings.topic_prefix}
        proc = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "broker.cli.main", "policy", "explain", "--decision", record["decision_id"],
            "--protocol", str(svc.settings.protocol_file), "--format", "text"], env=env, capture_output=True,
            text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "today's protocol decides the SAME" in proc.stdout and VALID_NHS not in proc.stdout
        missing = await http.get(f"{svc.base_url}/v1/ig/policy/decisions/dec-not-recorded/explain", headers=ig)
        assert missing.status_code == 404 and "no decision record" in missing.text

        r = await http.post(f"{svc.base_url}/v1/ig/children/find", headers=ig,
                            json={"reason": "subject_access_request", "nhs_number": VALID_NHS})
        assert r.status_code == 200, r.text
        found = r.json()
        assert found["subject"] == record["subject"] and found["recorded"] is True
        assert VALID_NHS not in r.text
        lookups = [e["record"] for e in svc.runtime.audit_store.search(kind="admin_action", limit=50)
                   if e["record"].get("action") == "ig.find_child"]
        assert len(lookups) == 1 and lookups[0]["actor"].startswith("ig_auditor")
        timeline = await http.get(f"{svc.base_url}/v1/ig/children/{found['subject']}/timeline", headers=ig)
        assert any(d["event_id"] == event_id for d in timeline.json()["disclosures"]) == (
            record["outcome"] == "deliver")
