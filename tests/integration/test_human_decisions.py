"""Recorded human decisions through the real service and Kafka: an objection under public task refers the share to a
person instead of overriding it or dropping it; the person shares in part, withholds, or finds the child erased; the
audit shows what was referred and what each person decided, with their credential and reason.

Fictitious children (test names, NHS numbers of the test range). The protocol shares health events with the hub under
public task (s17, a power): an objection withholds them pending a recorded human decision.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from broker.cli.decisions import app as decisions_app
from broker.service.messages import header
from tests.integration.service import Service, running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
PROTOCOL = """# Human decision tests: fictitious partnership.
protocol:
  id: human-decision-test-isp
  version: "0.1.0"
  title: Human decision test protocol
  effective_from: "2026-01-01"
purposes:
  triage: Hub triage in tests
partners:
  - {id: test-csc, name: Test Children's Services, agency: social_care, role: safeguarding_partner}
  - {id: test-icb, name: Test Integrated Care Board, agency: health, role: safeguarding_partner}
  - {id: test-police, name: Test Police, agency: police, role: safeguarding_partner}
subscribers:
  - {name: test_hub, partner: test-csc, role: mash_hub, purposes: [triage], key_file: keys/test_hub.pub,
     key_suite: x25519, delivery: http-pull, confidentiality: social_work_professional}
rules:
  - id: hub-health-s17
    description: The hub receives children's health records under s17 (a power, public task).
    subscribers: [test_hub]
    event_types: ["person.*", "health.*"]
    source_agencies: [health]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_e, uk_gdpr_art9_2_g, dpa2018_sch1_para6, children_act_1989_s17]
    conditions: {subject_under_18: true}
    fields:
      - classifications: [contact]
        action: withhold
      - classifications: [identity, demographic, health]
        action: release
"""
HUB = "test_hub"
runner = CliRunner()


def protocol_file(tmp_path: Path) -> str:
    path = tmp_path / "human-decision-protocol.yaml"
    path.write_text(PROTOCOL)
    return str(path)


def patient(pid: str, nhs: str, family: str) -> bytes:
    return json.dumps({"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "2015-03-04",
                       "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
                       "name": [{"family": family, "given": ["Testchild"]}]}).encode()


def attendance(control_id: str, nhs: str, family: str, at: str) -> bytes:
    return (f"MSH|^~\\&|PAS|RXX01^1.2.3^ISO|MASH|MASH|{at}||ADT^A04^ADT_A01|{control_id}|P|2.4\r"
            f"EVN|A04|{at}\rPID|1||{nhs}^^^NHS^NH||{family}^Testchild||20150304|F\rPV1|1|E\r").encode()


async def post(svc: Service, http: httpx.AsyncClient, body: bytes) -> list[str]:
    """The event ids intake accepted."""
    content_type = "x-application/hl7-v2+er7" if body.startswith(b"MSH") else "application/fhir+json"
    r = await http.post(f"{svc.base_url}/v1/records/health", content=body,
                        headers=svc.headers("intake:health", **{"Content-Type": content_type}))
    assert r.status_code == 202, r.text
    return [e["event_id"] for e in r.json()["events"]]


async def pulled(svc: Service, http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every delivery the hub can pull from the start, opened."""
    client = svc.client_for(HUB)
    r = await http.get(f"{svc.base_url}/v1/subscribers/{HUB}/events", params={"limit": 1000},
                       headers=svc.headers(f"subscriber:{HUB}"))
    assert r.status_code == 200, r.text
    return [client.open(base64.b64decode(d["sealed"])) for d in r.json()["deliveries"]]


async def delivered_ids(svc: Service) -> list[str]:
    """Event ids of every message on the hub's delivery topic (raw Kafka: what was sent, whatever HTTP hides)."""
    records = await read_topic(svc.runtime.bootstrap, svc.settings.topics.deliver(HUB))
    return [header(r.headers, "event_id") for r in records]


async def eventually(check: Any, attempts: int = 150) -> Any:
    for _ in range(attempts):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


def referrals_url(svc: Service, referral_id: str | None = None) -> str:
    return f"{svc.base_url}/v1/decisions/referrals" + (f"/{referral_id}" if referral_id else "")


async def pending(svc: Service, http: httpx.AsyncClient, decider: str, want: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        r = await http.get(referrals_url(svc), headers=svc.headers(decider))
        assert r.status_code == 200, r.text
        found = r.json()["referrals"]
        return found if len(found) >= want else None
    return await eventually(check)


async def child_with_objection(svc: Service, http: httpx.AsyncClient, nhs: str, family: str) -> str:
    """A child known to the broker (its Patient delivered to the hub) with an objection recorded by IG."""
    [patient_event] = await post(svc, http, patient(family.lower(), nhs, family))
    opened = await eventually(lambda: _about(svc, http, patient_event))
    token = opened["subject"]["linkage"]["token"]
    r = await http.put(f"{svc.base_url}/v1/admin/consent/{token}", headers=svc.headers("admin"),
                       json={"status": "not_sought", "objection": True, "recorded_on": "2026-11-01"})
    assert r.status_code == 200, r.text
    return token


async def _about(svc: Service, http: httpx.AsyncClient, event_id: str) -> dict[str, Any] | None:
    return next((e for e in await pulled(svc, http) if e["event_id"] == event_id), None)


async def audit_of(svc: Service, kind: str, want: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        found = [e["record"] for e in svc.runtime.audit_store.search(kind=kind, limit=1000)]
        return found if len(found) >= want else None
    return await eventually(check)


async def test_objection_refers_then_person_shares_in_part_or_withholds_and_the_audit_shows_both(
        kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, protocol=protocol_file(tmp_path)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        token = await child_with_objection(svc, http, "9434765870", "Betaexample")
        [first] = await post(svc, http, attendance("HD0001", "9434765870", "Betaexample", "20240301101500"))
        [second] = await post(svc, http, attendance("HD0002", "9434765870", "Betaexample", "20240302101500"))

        # referred, not overridden and not delivered: the hub's decider sees both, value-free
        referrals = await pending(svc, http, "decision_maker:test-csc", 2)
        by_event = {r["event_id"]: r for r in referrals}
        assert set(by_event) == {first, second}
        one = by_event[first]
        assert (one["subject"], one["rule_id"], one["restriction"], one["status"]) == \
            (token, "hub-health-s17", "objection", "pending")
        assert "children_act_1989_s17" in one["basis"] and "human decision" in one["reason"]
        assert one["deciders"] == ["test-csc", "test-icb"]  # the hub, and the owning agency (health) for its data
        listing = json.dumps(referrals)
        assert "Betaexample" not in listing and "9434765870" not in listing  # never the event's personal fields
        assert first not in await delivered_ids(svc) and second not in await delivered_ids(svc)
        # the withholding decision's audit record says it was referred, and on what
        decisions = [d for d in await audit_of(svc, "decision", 3) if d["event_id"] == first]
        assert decisions and decisions[0]["outcome"] == "withhold"
        assert decisions[0]["human_decision"] == {"status": "referred", "rule_id": "hub-health-s17",
                                                  "restriction": "objection", "recorded_on": "2026-11-01",
                                                  "basis": one["basis"]}
        # the police partner is not named for a health event: it sees nothing and cannot decide
        r = await http.get(referrals_url(svc), headers=svc.headers("decision_maker:test-police"))
        assert r.status_code == 200 and r.json()["referrals"] == []

        # the hub's decider shares in part: sex (demographic) and the NHS number withheld
        r = await http.post(referrals_url(svc, one["referral_id"]), headers=svc.headers("decision_maker:test-csc"),
                            json={"decision": "share_in_part", "reason": "compelling grounds: strategy discussion "
                                  "needs the attendance, not the identifiers", "withhold_classifications":
                                  ["demographic"], "withhold_paths": ["subject.child.nhs_number"]})
        assert r.status_code == 200, r.text
        assert r.json()["delivered"] is True and r.json()["status"] == "share_in_part"
        got = await eventually(lambda: _about(svc, http, first))
        child = got["subject"]["child"]
        assert "nhs_number" not in child and "sex" not in child  # what the person withheld
        assert child["family_name"] == "Betaexample" and got["payload"]["setting"]  # what the rule releases
        assert got["delivery"]["human_decision"]["choice"] == "share_in_part"
        assert got["delivery"]["decision_id"] == r.json()["decision_id"]
        assert (await delivered_ids(svc)).count(first) == 1

        # the owning agency's decider withholds the other: audited, nothing sent
        other = by_event[second]
        r = await http.post(referrals_url(svc, other["referral_id"]), headers=svc.headers("decision_maker:test-icb"),
                            json={"decision": "withhold", "reason": "no compelling grounds over the objection"})
        assert r.status_code == 200 and r.json()["delivered"] is False and r.json()["status"] == "withhold"
        # deciding twice is a conflict, whoever tries
        r = await http.post(referrals_url(svc, other["referral_id"]), headers=svc.headers("decision_maker:test-csc"),
                            json={"decision": "share", "reason": "second opinion"})
        assert r.status_code == 409, r.text

        humans = {h["event_id"]: h for h in await audit_of(svc, "human_decision", 2)}
        shared, kept = humans[first], humans[second]
        assert shared["actor"].startswith("decision_maker:test-csc:k_") and shared["outcome"] == "deliver"
        assert shared["reason"].startswith("compelling grounds")
        assert shared["human_decision"]["choice"] == "share_in_part"
        assert shared["human_decision"]["withheld_classifications"] == ["demographic"]
        assert {"subject.child.nhs_number", "subject.child.sex"} <= set(shared["fields_withheld"])
        assert "subject.child.nhs_number" not in shared["fields_released"]
        assert kept["actor"].startswith("decision_maker:test-icb:k_") and kept["outcome"] == "withhold"
        assert kept["reason"] == "no compelling grounds over the objection"
        sent = [d for d in await audit_of(svc, "delivered", 2) if d["event_id"] in (first, second)]
        assert [(d["event_id"], d["decision_id"]) for d in sent] == [(first, shared["decision_id"])]
        # the disclosure view (and so the subject access report) lists the person's share
        disclosed = [d for d in svc.runtime.audit_store.disclosures(subject=token) if d.event_id == first]
        assert disclosed and disclosed[0].delivered_at is not None
        await asyncio.sleep(1.0)
        assert second not in await delivered_ids(svc)


async def test_a_decision_to_share_an_erased_childs_event_is_recorded_and_delivers_nothing(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, protocol=protocol_file(tmp_path)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        token = await child_with_objection(svc, http, "9434765919", "Alphaexample")
        [visit] = await post(svc, http, attendance("HD0003", "9434765919", "Alphaexample", "20240303101500"))
        [referral] = await pending(svc, http, "decision_maker:test-csc", 1)
        r = await http.post(f"{svc.base_url}/v1/admin/keys/shred/{token}", headers=svc.headers("admin"))
        assert r.status_code == 200, r.text
        # through the command line this time: list as the host's operator, decide with a decision_maker key
        listed = await asyncio.to_thread(runner.invoke, decisions_app, ["list", "--partner", "test-icb", "--data-dir",
                                                                       str(svc.settings.data_dir)])
        assert listed.exit_code == 0 and referral["referral_id"] in listed.output, listed.output
        args = ["decide", referral["referral_id"], "--decision", "share", "--url", svc.base_url,
                "--key", svc.credentials["decision_maker:test-csc"]]
        refused = await asyncio.to_thread(runner.invoke, decisions_app, [*args, "--reason", "mum said a@b.c"])
        assert refused.exit_code == 1 and "a@b.c" not in refused.output
        decided = await asyncio.to_thread(runner.invoke, decisions_app,
                                          [*args, "--reason", "shared before the erasure was known"])
        assert decided.exit_code == 0, decided.output
        assert "not sent" in decided.output and "erased" in decided.output
        assert not svc.runtime.delivered.sent([HUB], [visit])
        [human] = await audit_of(svc, "human_decision", 1)
        assert human["event_id"] == visit and human["human_decision"]["choice"] == "share"
        await asyncio.sleep(1.0)
        assert visit not in await delivered_ids(svc)
