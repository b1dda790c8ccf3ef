"""Operation Encompass in live use, through the real service and Apache Kafka (issue 16): a police domestic abuse
incident never names the child's school, so the broker must find it from what education sent.

- A school's record (a CTF naming the pupil's school, URN 999001: the sample's Oakfield Primary) teaches the identity
  register the child's school; the police incident about the same child (tied to the school's stream by the UPN)
  then reaches the school DSL, whose delivery meets the Encompass clock (`hub_clock` met).
- With no school record, the incident is withheld from the school and the clock breaches once due (an incident
  dated on a Sunday evening in the past: due the Monday morning, by the partnership calendar).
- Erasure forgets the learned school: it no longer opens the route.
Fictitious children from the benchmark's generators (999-range NHS numbers, LA 380 UPNs, "Example<n>").
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from broker.policy.conditions import registered_with
from broker.service.facts import read_facts
from tests.integration.service import Service, running_service
from tests.integration.test_hub_watch import police_incident, post, school_concern

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "deploy" / "protocols" / "sample-partnership.yaml"
CALENDAR = ROOT / "deploy" / "calendars" / "exampleshire.yaml"
SCHOOL, URN = "oakfield_dsl", "999001"


def school_record(n: int, when: str) -> bytes:
    """The CTF of `school_concern`, its sending school (the child's school) made the sample's Oakfield Primary."""
    body = school_concern(n, when).decode()
    urn = body.split("<URN>")[1].split("</URN>")[0]
    return body.replace(f"<URN>{urn}</URN>", f"<URN>{URN}</URN>").encode()


def domestic_abuse(n: int, when: str, *, upn: bool = False) -> bytes:
    """The police's domestic abuse notification about child `n`, with the child present: names no school."""
    submission = orjson.loads(police_incident(n, when, upn=upn))
    submission["records"][0]["event_type"] = "domestic_abuse"
    return orjson.dumps(submission)


async def eventually(check: Any, attempts: int = 600) -> Any:
    for _ in range(attempts):
        if found := check():
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


def audits(svc: Service, kind: str, **where: str) -> list[dict[str, Any]]:
    return [a["record"] for a in svc.runtime.audit_store.search(kind=kind, limit=10000)
            if all(a["record"].get(k) == v for k, v in where.items())]


async def school_decision(svc: Service, event_id: str) -> dict[str, Any]:
    """The share stage's decision for the school DSL about one event, once made."""
    return (await eventually(lambda: audits(svc, "decision", subscriber=SCHOOL, event_id=event_id)))[0]


async def clock(svc: Service, event_id: str) -> dict[str, Any]:
    """The event's settled Encompass clock (`hub_clock`), once the hub watch settles it."""
    return (await eventually(lambda: audits(svc, "hub_clock", event_id=event_id, target="encompass")))[0]


def token_of(svc: Service, event_id: str) -> str | None:
    hits = svc.runtime.audit_store.search(kind="event_published", event_id=event_id, limit=1)
    return hits[0]["record"].get("subject") if hits else None


@pytest.fixture(scope="module")
async def svc(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    async with running_service(tmp_path_factory.mktemp("encompass"), kafka_bootstrap, protocol=str(SAMPLE),
                               calendar_file=CALENDAR, hub_clock_interval_seconds=0.5) as service:
        yield service


async def test_the_school_learned_from_educations_record_receives_the_notice_in_time(svc: Service) -> None:
    # an incident just now: due at the start of the next school day, still ahead, so only a delivery settles it
    now = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
    async with httpx.AsyncClient(timeout=60) as http:
        await post(svc, http, "education", school_record(21, "2026-09-07T09:00:00"), "application/xml")
        police = await post(svc, http, "police", domestic_abuse(21, now.isoformat().replace("+00:00", "Z"),
                                                                upn=True), "application/json")
    decided = await school_decision(svc, police[-1])
    assert decided["outcome"] == "deliver" and decided["rule_id"] == "school-operation-encompass", decided["reason"]
    assert "by the identity register" in decided["reason"]
    assert (await clock(svc, police[-1]))["action"] == "met"
    sent = svc.runtime.delivered.sent_at([SCHOOL], [police[-1]])
    assert sent.get(police[-1])  # the delivered log's time is what met it


async def test_without_a_school_record_the_notice_is_withheld_and_the_clock_breaches(svc: Service) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        police = await post(svc, http, "police", domestic_abuse(22, "2026-11-29T19:00:00Z"), "application/json")
    decided = await school_decision(svc, police[-1])
    assert decided["outcome"] == "withhold" and "registered with the subscriber's school" in decided["reason"]
    audit = await clock(svc, police[-1])
    assert audit["action"] == "breached"


async def test_an_erased_childs_learned_school_no_longer_opens_the_route(svc: Service) -> None:
    rt = svc.runtime
    async with httpx.AsyncClient(timeout=60) as http:
        [*_, learned] = await post(svc, http, "education", school_record(23, "2026-09-07T09:00:00"),
                                   "application/xml")
        token = await eventually(lambda: token_of(svc, learned))
        assert read_facts(rt, [token]).for_event(token, None).school_urn == URN
        register_files = list(svc.settings.data_dir.glob("identities.sqlite*"))
        assert not any(URN.encode() in p.read_bytes() for p in register_files)  # sealed, never in the clear

        r = await http.post(f"{svc.base_url}/v1/admin/keys/shred/{token}", headers=svc.headers("admin"))
        assert r.status_code == 200, r.text
    tokens = rt.identities.aliases(token)
    assert rt.identities.sealed_registrations(tokens) == {}
    facts = read_facts(rt, [token]).for_event(token, None)
    assert facts.school_urn is None
    notice = {"subject": {"child": {}, "linkage": {"token": token}}, "payload": {}}
    assert not registered_with(notice, "school", rt.protocol.subscribers[SCHOOL], facts)
