"""An identity merge folds the hub watch's histories and enquiries, through the real service and Apache Kafka (issue
16). One fictitious child's police incident is keyed by the NHS number and its school's attendance concern by the
UPN: two tokens, and the watch records each under its own (two histories, two open enquiries) before anything joins
them. The GP's record then carries both identifiers: the identity register folds the UPN's stream into the NHS
number's (`person.linked`), and only the fold of the two histories makes the GP's concern the third from a second
agency, so the cumulative concern names all three; the two enquiries become one, which the GP's concern joins.

The watch must have written both histories before the GP's record exists: otherwise it could read all three in one
batch, after the identity register already knew the merge, and raise without ever folding (what the test in
test_hub_watch.py cannot tell apart). The times are relative to now, so that the link (dated when intake saw the
GP's record) falls within the enquiry window of the two contributions it joins, whenever the test runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from broker.bench.records import nhs_number, pupil_number
from tests.integration.service import Service, running_service
from tests.integration.test_hub_watch import (
    CALENDAR,
    RULE,
    SAMPLE,
    gp_flag,
    hub_events,
    police_incident,
    post,
    school_concern,
)

pytestmark = pytest.mark.integration
CHILD = 37  # Testchild Example37, from the benchmark's fictitious generators (attendance 84%: a concern)


@pytest.fixture(scope="module")
async def svc(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    async with running_service(tmp_path_factory.mktemp("hub-merge"), kafka_bootstrap, protocol=str(SAMPLE),
                               calendar_file=CALENDAR, hub_clock_interval_seconds=0.5) as service:
        yield service


def of(opened: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in opened if e["event_type"] == event_type]


def enquiry_about(opened: list[dict[str, Any]], event_id: str) -> dict[str, Any] | None:
    return next((e for e in of(opened, "mash.enquiry")
                 if e["payload"].get("contribution", {}).get("event_id") == event_id), None)


async def test_a_merge_folds_two_histories_into_one_cumulative_concern_and_two_enquiries_into_one(
        svc: Service) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    async with httpx.AsyncClient(timeout=60) as http:
        police = (await post(svc, http, "police", police_incident(CHILD, (now - dt.timedelta(hours=3)).isoformat()
                                                                  .replace("+00:00", "Z")), "application/json"))[-1]
        school = (await post(svc, http, "education", school_concern(
            CHILD, (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")), "application/xml"))[-1]

        # the watch has planned both under their own tokens: one enquiry each, no concern yet
        opened = await hub_events(svc, http, lambda o: enquiry_about(o, police) and enquiry_about(o, school))
        by_police, by_school = enquiry_about(opened, police), enquiry_about(opened, school)
        assert by_police and by_school
        nhs_token, upn_token = by_police["subject"]["linkage"]["token"], by_school["subject"]["linkage"]["token"]
        assert nhs_token != upn_token  # two streams: nothing has joined them yet
        assert by_police["payload"]["action"] == by_school["payload"]["action"] == "opened"
        assert by_police["payload"]["enquiry_id"] != by_school["payload"]["enquiry_id"]
        assert not of(opened, "mash.cumulative_concern")

        gp_types: list[str] = []
        gp = (await post(svc, http, "health", gp_flag(CHILD, now.date().isoformat()), "application/fhir+json",
                         gp_types))[-1]
        assert "person.linked" in gp_types
        child = svc.runtime.identities.current(upn_token)
        assert child == svc.runtime.identities.current(nhs_token)
        absorbed = upn_token if child == nhs_token else nhs_token

        def settled(o: list[dict[str, Any]]) -> bool:
            return bool(of(o, "mash.cumulative_concern") and enquiry_about(o, gp)
                        and any(e["payload"]["action"] == "folded" for e in of(o, "mash.enquiry")))

        opened = await hub_events(svc, http, settled)

    # one cumulative concern, under the child's token, naming the three concerns only the fold brought together
    (concern,) = of(opened, "mash.cumulative_concern")
    assert concern["subject"]["linkage"]["token"] == child and concern["payload"]["rule"] == RULE
    assert {c["event_id"] for c in concern["payload"]["contributing"]} == {police, school, gp}
    assert {c["agency"] for c in concern["payload"]["contributing"]} == {"police", "education", "health"}
    text = orjson.dumps(concern).decode()
    for personal in (f"Example{CHILD}", "Testchild", nhs_number(CHILD), pupil_number(CHILD)):
        assert personal not in text

    # one enquiry: the later-opened one folded into the earlier, and the GP's concern joined what survived
    (folded,) = [e for e in of(opened, "mash.enquiry") if e["payload"]["action"] == "folded"]
    survivor, gone = by_police["payload"]["enquiry_id"], by_school["payload"]["enquiry_id"]
    assert folded["payload"]["enquiry_id"] == survivor and folded["payload"]["folded_enquiry_id"] == gone
    joined = enquiry_about(opened, gp)
    assert joined is not None and joined["payload"]["enquiry_id"] == survivor
    assert joined["payload"]["action"] == "joined" and joined["payload"]["contributions"] == 3

    # the register holds it all under the child's token, nothing under the one folded away (read once the watch
    # has written the batch it published from)
    def held() -> Any:
        return svc.runtime.history.facts([child, absorbed])

    for _ in range(150):
        facts = held()
        if {e.event_id for e in facts.history.get(child, [])} >= {police, school, gp}:
            break
        await asyncio.sleep(0.2)
    assert {e.event_id for e in facts.history.get(child, [])} >= {police, school, gp}
    assert absorbed not in facts.history and absorbed not in facts.enquiries
    enquiries = {q.enquiry_id: q for q in svc.runtime.history.enquiries(child)}
    assert enquiries[survivor].open and set(enquiries[survivor].contributions) == {police, school, gp}
    assert not enquiries[gone].open
    assert svc.runtime.history.enquiries(absorbed) == []
    assert svc.runtime.metrics.hub_enquiries.labels("folded")._value.get() == 1
