"""The hub watch through the real service and Apache Kafka (issue 16): what several agencies hold about one
fictitious child becomes what the hub sees. Records go in over HTTP as each agency sends them; the hub's own
events come out of the hub's subscription, sealed, and are opened with the hub's key.

- Three low-level concerns from the police, a school and a GP about one child raise one cumulative concern naming
  the three events by id, type, agency and time, and nothing of their content. The police's stream is keyed by the
  NHS number and the school's by the UPN until the GP's record carries both: the identity register joins the two
  streams (`person.linked`) and the hub watch folds their histories, so the raise sees all three.
- A police and a school contact about another child on the same day make one MASH enquiry.
- The police incident's Operation Encompass clock is settled and audited.
Fictitious children from the benchmark's generators (999-range NHS numbers, LA 380 UPNs, "Example<n>").
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from broker.bench.records import BY_NAME, nhs_number, pupil_number
from tests.integration.service import Service, running_service

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "deploy" / "protocols" / "sample-partnership.yaml"
CALENDAR = ROOT / "deploy" / "calendars" / "exampleshire.yaml"
UPN_SYSTEM = "https://www.gov.uk/government/publications/unique-pupil-numbers"
RULE = "three-low-concerns-two-agencies"


def school_concern(n: int, when: str) -> bytes:
    """A CTF whose pupil's attendance is below the threshold (an education.attendance_concern), dated `when`."""
    body = BY_NAME["education.ctf"].make(n).decode()
    stamp = body.split("<DateTime>")[1].split("</DateTime>")[0]
    return body.replace(stamp, when).encode()


def gp_flag(n: int, day: str) -> bytes:
    """The GP's record: the child with NHS number and UPN (tying the school's stream to it), and a safeguarding
    concern flag (SNOMED CT "Child is cause for safeguarding concern", medium: below the threshold)."""
    patient = {"resourceType": "Patient", "id": f"gp-child-{n}", "meta": {"versionId": "1"},
               "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number(n)},
                              {"system": UPN_SYSTEM, "value": pupil_number(n)}],
               "name": [{"family": f"Example{n}", "given": ["Testchild"]}], "birthDate": "2015-01-02"}
    flag = {"resourceType": "Flag", "id": f"gp-flag-{n}", "status": "active", "subject": {"reference":
            f"Patient/gp-child-{n}"}, "period": {"start": day},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "836881000000105"}]}}
    return orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000000{i}", "resource": r}
        for i, r in enumerate((patient, flag), start=1)]})


def police_incident(n: int, when: str, *, upn: bool = False) -> bytes:
    """An incident with the child present, DASH graded standard (low on the sample's police_dash scale)."""
    submission = orjson.loads(BY_NAME["police.pole"].make(n))
    record = submission["records"][0]
    record["dash_risk"], record["occurred"] = "standard", {"start": when}
    if upn:
        record["persons"][0]["upn"] = pupil_number(n)
    return orjson.dumps(submission)


async def post(svc: Service, http: httpx.AsyncClient, agency: str, body: bytes, content_type: str,
               types: list[str] | None = None) -> list[str]:
    """The event ids intake accepted, in order (`types`, when given, receives their event types)."""
    r = await http.post(f"{svc.base_url}/v1/records/{agency}", content=body,
                        headers=svc.headers(f"intake:{agency}", **{"Content-Type": content_type}))
    assert r.status_code == 202, r.text[:300]
    if types is not None:
        types.extend(e["event_type"] for e in r.json()["events"])
    return [e["event_id"] for e in r.json()["events"]]


async def hub_events(svc: Service, http: httpx.AsyncClient, done: Any, attempts: int = 300) -> list[dict[str, Any]]:
    """The hub's deliveries, opened, once `done(opened)` holds (polled: the watch and the share stage run behind)."""
    client = svc.client_for("mash_hub")
    opened: list[dict[str, Any]] = []
    for _ in range(attempts):
        r = await http.get(f"{svc.base_url}/v1/subscribers/mash_hub/events", params={"limit": 1000},
                           headers=svc.headers("subscriber:mash_hub"))
        r.raise_for_status()
        opened = [client.open(base64.b64decode(d["sealed"])) for d in r.json()["deliveries"]]
        if done(opened):
            return opened
        await asyncio.sleep(0.2)
    raise AssertionError(f"the hub never saw what was expected; it saw {sorted({e['event_type'] for e in opened})}")


@pytest.fixture(scope="module")
async def svc(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    async with running_service(tmp_path_factory.mktemp("hub"), kafka_bootstrap, protocol=str(SAMPLE),
                               calendar_file=CALENDAR, hub_clock_interval_seconds=0.5) as service:
        yield service


async def test_three_low_concerns_from_school_gp_and_police_raise_one_cumulative_concern(svc: Service) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        police = await post(svc, http, "police", police_incident(7, "2026-11-29T19:00:00Z"), "application/json")
        school = await post(svc, http, "education", school_concern(7, "2026-11-20T09:00:00"), "application/xml")
        gp_types: list[str] = []
        gp = await post(svc, http, "health", gp_flag(7, "2026-11-25"), "application/fhir+json", gp_types)
        assert "person.linked" in gp_types  # two streams about one child joined
        concerns = {school[-1], gp[-1], police[-1]}  # each request's concern is its last event

        def raised(opened: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in opened if e["event_type"] == "mash.cumulative_concern"]

        opened = await hub_events(svc, http, raised)
        (event,) = raised(opened)  # one, though every event of the child after the third passes the watch
        payload = event["payload"]
        assert payload["rule"] == RULE and payload["window_days"] == 90
        assert {c["event_id"] for c in payload["contributing"]} == concerns
        assert {c["agency"] for c in payload["contributing"]} == {"education", "health", "police"}
        assert all(set(c) == {"event_id", "event_type", "agency", "occurred_at"} for c in payload["contributing"])
        assert not event["subject"].get("child") and event["source"]["agency"] == "broker"
        text = orjson.dumps(event).decode()
        for personal in ("Example7", "Testchild", nhs_number(7), pupil_number(7)):
            assert personal not in text
        # the merge folded both streams' histories: the raise is under the token the child carries now
        police_delivery = next(e for e in opened if e.get("event_id") == police[-1])
        assert event["subject"]["linkage"]["token"] == \
            svc.runtime.identities.current(police_delivery["subject"]["linkage"]["token"])
        assert svc.runtime.metrics.hub_cumulative.labels(RULE)._value.get() == 1

        # the police incident's Operation Encompass clock (due Monday 30 November 08:45) is settled and audited
        for _ in range(150):
            audits = [a["record"] for a in svc.runtime.audit_store.search(limit=10000)
                      if a["record"]["kind"] == "hub_clock" and a["record"].get("event_id") == police[-1]]
            if audits:
                break
            await asyncio.sleep(0.2)
        (audit,) = audits
        assert audit["target"] == "encompass" and audit["action"] in {"met", "breached"}
        if audit["action"] == "breached":  # the child's school is not the sample's subscribing school
            opened = await hub_events(svc, http, lambda o: any(e["event_type"] == "mash.clock_breached" for e in o))
            breach = next(e for e in opened if e["event_type"] == "mash.clock_breached")
            assert breach["payload"]["event_id"] == police[-1] and breach["payload"]["clock"] == "encompass"
            assert breach["payload"]["due_by"] == "2026-11-30T08:45:00Z"
            # audited as published, like the watch's other events (the measures read who it concerns from it)
            for _ in range(150):  # the audit indexer runs behind
                published = [a["record"] for a in svc.runtime.audit_store.search(kind="event_published", limit=10000)
                             if a["record"].get("event_id") == breach["event_id"]]
                if published:
                    break
                await asyncio.sleep(0.2)
            assert [(p["actor"], p["event_type"]) for p in published] == [("hub-watch", "mash.clock_breached")]


async def test_a_police_and_a_school_contact_the_same_day_make_one_enquiry(svc: Service) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        police = await post(svc, http, "police", police_incident(8, "2026-11-30T08:10:00Z", upn=True),
                            "application/json")
        school = await post(svc, http, "education", school_concern(8, "2026-11-30T13:40:00"), "application/xml")
        mine = {police[-1], school[-1]}

        def enquiries(opened: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in opened if e["event_type"] == "mash.enquiry"
                    and e["payload"].get("contribution", {}).get("event_id") in mine]

        opened = await hub_events(svc, http, lambda o: len(enquiries(o)) == 2)
        found = enquiries(opened)
        assert sorted(e["payload"]["action"] for e in found) == ["joined", "opened"]
        (enquiry_id,) = {e["payload"]["enquiry_id"] for e in found}
        token = found[0]["subject"]["linkage"]["token"]
        (held,) = [q for q in svc.runtime.history.enquiries(token) if q.enquiry_id == enquiry_id]
        assert set(held.contributions) == mine and held.open
        clocks = {c.kind: state for c, state in svc.runtime.history.clocks(token) if c.enquiry_id == enquiry_id}
        assert clocks == {"decision": "running"} or clocks == {"decision": "breached"}
        assert svc.runtime.metrics.hub_enquiries.labels("joined")._value.get() >= 1
