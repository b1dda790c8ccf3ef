"""A synthetic rise in one fictitious postcode district reaches the MASH hub as `mash.hotspot_rise` (issue 17),
through the real service and Apache Kafka: police incidents go in over HTTP, their insight facts (the district only)
reach the audit store, the insight watch runs the rise detector over it and publishes the rise, and the share stage
delivers it to the hub under the sample protocol's rule. A steady district beside it raises nothing, and a second
run of the watch does not raise the same rise again. Fictitious children (Example<n>, 999-range NHS numbers) and
districts (ZZ8, ZZ9).
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

from broker.bench.records import BY_NAME, nhs_number
from broker.clock import now_iso
from broker.service.insight_watch import watch_once
from tests.integration.service import Service, running_service
from tests.integration.test_hub_watch import hub_events, post

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "deploy" / "protocols" / "sample-partnership.yaml"
CALENDAR = ROOT / "deploy" / "calendars" / "exampleshire.yaml"
RISING, STEADY = "ZZ9", "ZZ8"


def incidents(first: int, count: int, district: str, day: dt.date) -> bytes:
    """`count` police incidents with a child present, each about another fictitious child, at `district`."""
    records = []
    for n in range(first, first + count):
        record = orjson.loads(BY_NAME["police.pole"].make(n))["records"][0]
        record["occurred"] = {"start": f"{day.isoformat()}T00:01:00Z"}
        record["location"]["postcode"] = f"{district} 1ZZ"
        records.append(record)
    return orjson.dumps({"force_code": "99", "system": "benchrms", "records": records})


@pytest.fixture(scope="module")
async def svc(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    async with running_service(tmp_path_factory.mktemp("hotspot"), kafka_bootstrap, protocol=str(SAMPLE),
                               calendar_file=CALENDAR, insight_watch_interval_seconds=1.0, insight_period="week",
                               insight_measures="contacts", insight_min_population=20, insight_alpha=0.01) as s:
        yield s


async def test_a_rise_in_one_district_reaches_the_hub_and_a_steady_one_does_not(svc: Service) -> None:
    today = dt.datetime.now(dt.UTC).date()
    monday = today - dt.timedelta(days=today.weekday())
    n = 500
    async with httpx.AsyncClient(timeout=60) as http:
        for weeks_ago in range(9, 1, -1):  # eight weeks of history: 2 a week in ZZ9, 3 in ZZ8
            day = monday - dt.timedelta(weeks=weeks_ago) + dt.timedelta(days=2)
            await post(svc, http, "police", incidents(n, 2, RISING, day), "application/json")
            await post(svc, http, "police", incidents(n + 2, 3, STEADY, day), "application/json")
            n += 5
        last_week = monday - dt.timedelta(weeks=1)  # the last complete week, the one the watch tests: 12
        await post(svc, http, "police", incidents(n, 12, RISING, last_week), "application/json")
        await post(svc, http, "police", incidents(n + 12, 3, STEADY, last_week), "application/json")
        await post(svc, http, "police", incidents(n + 15, 1, STEADY, monday), "application/json")  # under way

        def rises(opened: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in opened if e["event_type"] == "mash.hotspot_rise"]

        opened = await hub_events(svc, http, rises, attempts=600)
        (event,) = rises(opened)
        payload = event["payload"]
        year, week, _ = last_week.isocalendar()
        assert payload["unit_kind"] == "area" and payload["unit_code"] == RISING  # ZZ8 is steady: not raised
        assert payload["measure"] == "contacts" and payload["period"] == f"{year}-W{week:02d}"
        assert payload["observed"] == 12 and payload["baseline"] == 16 and payload["expected"] == 2.0
        assert payload["method"] == "poisson-conditional-exact-holm" and payload["p_value"] < 0.01
        assert event["source"]["agency"] == "broker" and not event["subject"].get("child")
        text = orjson.dumps(event).decode()
        for personal in ("Example", "Testchild", "Fictional Road", nhs_number(500), "1ZZ"):
            assert personal not in text  # a place and its counts, never a child, never a whole postcode

        # a restarted or repeated run finds the same rise, knows it raised it (the audit store), and raises nothing
        for _ in range(300):
            audited = [a["record"] for a in svc.runtime.audit_store.search(limit=100000)
                       if a["record"]["kind"] == "event_published" and a["record"].get("event_id") == event["event_id"]]
            if audited:
                break
            await asyncio.sleep(0.2)
        assert audited and audited[0]["actor"] == "insight-watch"

        # the rise is counted by the kind of unit, never by the unit: no district in any metric
        def counted(text: str) -> list[str]:
            return [line for line in text.splitlines() if line.startswith("mash_insight_rises_total{")]
        for _ in range(300):
            metrics = (await http.get(f"{svc.base_url}/metrics")).text
            if counted(metrics):
                break
            await asyncio.sleep(0.2)
        assert counted(metrics) == ['mash_insight_rises_total{breakdown="area"} 1.0']
        assert RISING not in metrics and STEADY not in metrics

        assert await watch_once(svc.runtime, now_iso()) == []
        metrics = (await http.get(f"{svc.base_url}/metrics")).text
        assert counted(metrics) == ['mash_insight_rises_total{breakdown="area"} 1.0']  # not raised, not counted
