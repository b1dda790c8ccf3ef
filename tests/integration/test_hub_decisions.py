"""The hub's decision loop through the real service, Apache Kafka and the sample protocol: the police's contact
reaches the hub; the hub posts its decision (POST /v1/hub/decisions); each referrer and contributor is told the
outcome, each partner named in the plan what it must do, and nobody but the hub the rationale behind it."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adapters.police.builders import VALID_NHS, as_json, child, mother, record, submission
from tests.integration.service import Service, running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"
RATIONALE = "Zebracorn intelligence: an adult in the household is known to the force."  # must reach the hub only
INSTRUCTIONS = "Bring this term's attendance record to the strategy discussion."
OTHER_NHS = "9990000026"  # valid, a different fictitious child


def decision(token: str, concerns: list[str], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reference": "MASH-2026-0042", "subject_token": token,
        "child": {"nhs_number": VALID_NHS, "given_names": ["Testchild"], "family_name": "Example",
                  "date_of_birth": "2015-01-02"},
        "concerns": concerns, "rag": "red", "outcome": "strategy_discussion_section_47",
        "lead": {"partner": "exampleshire-csc", "professional_role": "social_worker",
                 "professional_contact": "mash.duty@exampleshire.example.org"},
        "contributing_partners": ["exampleshire-police", "oakfield-primary"],
        "referring_partners": ["exampleshire-police"],
        "actions": [{"partner": "oakfield-primary", "action": "attend_strategy_discussion",
                     "meeting_at": "2026-12-01T10:00:00Z", "instructions": INSTRUCTIONS},
                    {"partner": "exampleshire-police", "action": "visit", "due_by": "2026-12-01T18:00:00Z"}],
        "rationale": RATIONALE, "decided_at": "2026-11-30T15:00:00Z"}
    out.update(extra)
    return out


async def delivered(svc: Service, http: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    client = svc.client_for(name)
    r = await http.get(f"{svc.base_url}/v1/subscribers/{name}/events", params={"limit": 500},
                       headers=svc.headers(f"subscriber:{name}"))
    r.raise_for_status()
    return [client.open(base64.b64decode(d["sealed"])) for d in r.json()["deliveries"]]


async def wait_for(svc: Service, http: httpx.AsyncClient, name: str, event_ids: set[str]) -> dict[str, Any]:
    """The subscriber's deliveries once every one of `event_ids` is among them (a condition, not a sleep)."""
    for _ in range(300):
        got = {e["event_id"]: e for e in await delivered(svc, http, name)}
        if event_ids <= set(got):
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} did not receive {len(event_ids - set(got))} of its events")


async def decided(svc: Service, event_ids: set[str]) -> None:
    """Every subscriber's decision about these events is in the audit log (so absences below are real)."""
    want = len(event_ids) * len(svc.runtime.protocol.subscribers)
    for _ in range(300):
        found = [r for r in svc.runtime.audit_store.search(kind="decision", limit=5000)
                 if r["record"].get("event_id") in event_ids]
        if len(found) >= want:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("not every decision was audited")


async def test_the_hubs_decision_reaches_the_referrers_with_what_the_protocol_allows_each(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(SAMPLE)) as svc, \
            httpx.AsyncClient(timeout=60) as http:
        # 1. the police's contact: a domestic abuse notification about a fictitious child
        police = as_json(submission(record("domestic_abuse", reference="INC-4201", persons=[child(), mother()])))
        r = await http.post(f"{svc.base_url}/v1/records/police", content=police,
                            headers=svc.headers("intake:police", **{"Content-Type": "application/json"}))
        assert r.status_code == 202, r.text
        [contact] = [e["event_id"] for e in r.json()["events"]]
        hub_view = (await wait_for(svc, http, "mash_hub", {contact}))[contact]
        token = hub_view["subject"]["linkage"]["token"]
        # thresholds: the adapter sent the DASH grading as recorded, the protocol placed it on the common scale
        assert hub_view["risk"]["agency_levels"] == [{"scale": "police_dash", "level": "high"}]
        assert hub_view["risk"]["level"] == "high"

        # 2. the hub decides
        hub = svc.headers("hub_decision:mash_hub")
        r = await http.post(f"{svc.base_url}/v1/hub/decisions", json=decision(token, [contact]), headers=hub)
        assert r.status_code == 202, r.text
        published = r.json()["events"]
        assert [e["event_type"] for e in published] == ["mash.decision", "mash.action", "mash.action"]
        decision_id, school_action, police_action = (e["event_id"] for e in published)

        # 3. the hub's own record is whole
        hub_got = await wait_for(svc, http, "mash_hub", {decision_id, school_action, police_action})
        assert hub_got[decision_id]["payload"]["rationale"] == RATIONALE
        assert hub_got[decision_id]["payload"]["concerns"] == [contact]
        assert hub_got[decision_id]["risk"]["level"] == "high"  # RAG red on the mash_rag scale

        # 4. the police referred: the outcome and its own action, never the rationale or the school's action
        police_got = await wait_for(svc, http, "police_ppu", {decision_id, police_action})
        feedback = police_got[decision_id]["payload"]
        assert feedback["outcome"] == "strategy_discussion_section_47"
        assert feedback["concerns"] == [contact] and feedback["lead"]["professional_contact"]
        assert {"rationale", "actions", "rag", "contributing_partners", "referring_partners"}.isdisjoint(feedback)
        assert police_got[police_action]["payload"]["action"] == "visit"

        # 5. the school contributed: the outcome, and what it must do, with the child it is about
        school_got = await wait_for(svc, http, "oakfield_dsl", {decision_id, school_action})
        action = school_got[school_action]
        assert action["payload"]["action"] == "attend_strategy_discussion"
        assert action["payload"]["instructions"] == INSTRUCTIONS
        assert action["payload"]["meeting_at"] == "2026-12-01T10:00:00Z"
        assert action["subject"]["child"]["family_name"] == "Example"
        assert "assigned_partner" not in action["payload"]

        everything = {decision_id, school_action, police_action, contact}
        await decided(svc, everything)
        # the school never sees the police's record, its action, or the intelligence behind the decision
        school_all = {e["event_id"]: e for e in await delivered(svc, http, "oakfield_dsl")}
        assert contact not in school_all and police_action not in school_all
        assert RATIONALE not in str(school_all) and "Zebracorn" not in str(school_all)
        police_all = {e["event_id"]: e for e in await delivered(svc, http, "police_ppu")}
        assert school_action not in police_all and "Zebracorn" not in str(police_all)
        # a practice neither referred nor contributed: nothing; early help is not in this plan: nothing
        assert not everything & {e["event_id"] for e in await delivered(svc, http, "riverside_gp")}
        assert not {decision_id, school_action, police_action} & \
            {e["event_id"] for e in await delivered(svc, http, "early_help")}

        # 6. the rationale and the instructions are never in the clear on the events topic
        raw = b"".join(m.value for m in await read_topic(kafka_bootstrap, svc.settings.topics.events))
        assert b"Zebracorn" not in raw and INSTRUCTIONS.encode() not in raw

        # 7. audited like any record, under the hub's credential
        audits = svc.runtime.audit_store.search(kind="event_published", limit=1000)
        mine = {a["record"]["event_id"]: a["record"] for a in audits if a["record"]["event_id"] in
                {decision_id, school_action, police_action}}
        assert len(mine) == 3
        assert all(a["actor"].startswith("hub_decision:mash_hub:k_") and a["agency"] == "mash_hub"
                   for a in mine.values())

        # 8. the IG timeline shows the decision and the feedback: who was told what about the child, under which rule
        r = await http.get(f"{svc.base_url}/v1/ig/children/{token}/timeline", headers=svc.headers("ig_auditor"))
        assert r.status_code == 200, r.text
        told = {(d["subscriber"], d["event_id"]): d["rule_id"] for d in r.json()["disclosures"]}
        assert told[("police_ppu", decision_id)] == "feedback-outcome-to-police"
        assert told[("oakfield_dsl", decision_id)] == "feedback-outcome-to-school"
        assert told[("oakfield_dsl", school_action)] == "coordination-school-actions"
        assert told[("mash_hub", decision_id)] == "hub-own-decisions"
        assert ("riverside_gp", decision_id) not in told
        kinds = {(e.get("record", {}).get("kind"), e.get("record", {}).get("event_id")) for e in r.json()["entries"]}
        assert ("event_published", decision_id) in kinds

        # 9. a resend is the same decision, delivered once
        r = await http.post(f"{svc.base_url}/v1/hub/decisions", json=decision(token, [contact]), headers=hub)
        assert r.status_code == 202 and [e["event_id"] for e in r.json()["events"]] == \
            [decision_id, school_action, police_action]


async def test_the_hub_route_refuses_plainly_and_records_nothing(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(SAMPLE)) as svc, \
            httpx.AsyncClient(timeout=60) as http:
        police = as_json(submission(record("domestic_abuse", reference="INC-4301", persons=[child(), mother()])))
        r = await http.post(f"{svc.base_url}/v1/records/police", content=police,
                            headers=svc.headers("intake:police", **{"Content-Type": "application/json"}))
        [contact] = [e["event_id"] for e in r.json()["events"]]
        token = (await wait_for(svc, http, "mash_hub", {contact}))[contact]["subject"]["linkage"]["token"]
        url, hub = f"{svc.base_url}/v1/hub/decisions", svc.headers("hub_decision:mash_hub")

        # not the hub's credential: an agency's intake key, a decision maker, a subscriber
        for grant in ("intake:police", "decision_maker:exampleshire-csc", "subscriber:mash_hub"):
            r = await http.post(url, json=decision(token, [contact]), headers=svc.headers(grant))
            assert r.status_code == 403, (grant, r.text)
        # a token no record named: 404, nothing recorded
        r = await http.post(url, json=decision("lt1_" + "Q" * 32, [contact]), headers=hub)
        assert r.status_code == 404, r.text
        # identifiers of another child than the token's: 422, value-free
        other = decision(token, [contact], child={"nhs_number": OTHER_NHS, "family_name": "Example"})
        r = await http.post(url, json=other, headers=hub)
        assert r.status_code == 422 and OTHER_NHS not in r.text, r.text
        # a partner the protocol does not know: 422 naming the position
        r = await http.post(url, json=decision(token, [contact], referring_partners=["secret-unit"]), headers=hub)
        assert r.status_code == 422 and "referring_partners[0]" in r.text and "secret-unit" not in r.text
        # bad field values: 422 naming the field, never echoing the value
        r = await http.post(url, json=decision(token, [contact], rag="Testchild-Purple"), headers=hub)
        assert r.status_code == 422 and "Testchild-Purple" not in r.text, r.text
        assert any(e["loc"][-1] == "rag" for e in r.json()["detail"])

        published = [a for a in svc.runtime.audit_store.search(kind="event_published", limit=1000)
                     if a["record"].get("agency") == "mash_hub"]
        assert published == []

        # a small hub without an application: `mash-broker hub decide`, the rationale from a file, never argv
        rationale = tmp_path / "rationale.txt"
        rationale.write_text(RATIONALE)
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "broker.cli.main", "hub", "decide", "--url", svc.base_url,
            "--reference", "MASH-CLI-1", "--subject-token", token, "--concern", contact, "--rag", "amber",
            "--outcome", "section_17_assessment", "--lead-partner", "exampleshire-csc",
            "--contributor", "exampleshire-police", "--referrer", "exampleshire-police",
            "--action", "oakfield-primary:monitor_and_report:2026-12-07T09:00:00Z",
            "--rationale-file", str(rationale), env={**os.environ, "MASH_API_KEY": svc.credentials[
                "hub_decision:mash_hub"]}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await cli.communicate()
        assert cli.returncode == 0, err.decode()
        assert [line.split("\t")[1] for line in out.decode().splitlines()] == ["mash.decision", "mash.action"]
        # and a refusal is exit 1 with the service's value-free reason
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "broker.cli.main", "hub", "decide", "--url", svc.base_url,
            "--reference", "MASH-CLI-2", "--subject-token", token, "--concern", contact, "--rag", "amber",
            "--outcome", "section_17_assessment", "--lead-partner", "no-such-partner",
            env={**os.environ, "MASH_API_KEY": svc.credentials["hub_decision:mash_hub"]},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await cli.communicate()
        assert cli.returncode == 1 and "lead.partner: not a partner of the protocol" in err.decode()
