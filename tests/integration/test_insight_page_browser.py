"""Issue 17's page, in a real headless Chromium against the real service (Apache Kafka, SQLite stores, HTTP): with
the bench's fictitious mix and the hub's decisions loaded (broker/bench/demo.py, `mash-broker insight demo-load`),
/insight shows each available measure with disclosure control applied (no figure of 1 to 5 anywhere, a cell the
exact table holds as 1 to 5 shown "c"), the area table, timeliness against target and the process map, within
1,366 px; behind its own role; every read and export audited; CSV and JSON exports protected the same way; the
operational measures' published totals as Prometheus gauges; the JSON endpoints in the OpenAPI document.
Screenshots at 1,366 x 768: tests/artifacts/insight-*.png."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.bench.demo import load_demo
from broker.insight.compute import compute_all
from broker.insight.measures import default_measures
from broker.insight.source import records_from_store
from tests.integration.service import running_service

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"
MIN_POPULATION = 8  # a small demo: districts of about a dozen contacts each show alone
SMALL = re.compile(r"^[1-5]$")  # a figure disclosure control must never show
TOKEN = re.compile(r"lt[0-9]+_[A-Za-z0-9_-]{20,}")
RISE = "ZZ7"  # the demo's synthetic rise in contacts, in this district, over the last two complete weeks
WEEKS = 10  # the detector's eight weeks of history before the last complete week, and one to spare


async def eventually(check: Any, attempts: int = 1200) -> Any:
    for _ in range(attempts):
        if found := check():
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


def _audited(svc: Any, **filters: str) -> list[dict[str, Any]]:
    return [e["record"] for e in svc.runtime.audit_store.search(limit=5000, **filters)]


def _figures(table: dict[str, Any]) -> list[Any]:
    """Every number a published table shows: cells, row totals, column totals, the grand total (rates are
    percentages and may be anything)."""
    out = [v for row in table["rows"] for v in row["cells"].values()]
    out += [row.get("total") for row in table["rows"]] + list((table.get("column_totals") or {}).values())
    return [*out, table.get("total")]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium")
async def test_the_board_sees_every_measure_protected_the_areas_timeliness_and_the_map(kafka_bootstrap, tmp_path):
    async_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(SAMPLE),
                               insight_min_population=MIN_POPULATION) as svc, \
            httpx.AsyncClient(timeout=120) as http:
        summary = await load_demo(svc.base_url, svc.settings.data_dir, records=60, weeks=WEEKS, rise=RISE,
                                  protocol_file=svc.settings.protocol_file)
        assert summary["hub_decisions"] > 0, summary
        await eventually(lambda: _audited(svc, kind="hub_clock"))  # the hub watch has settled decision clocks
        board = svc.headers("insight")

        # its own role: IG, admin and a subscriber are refused, as is no key
        for other in ("ig_auditor", "admin", "subscriber:mash_hub"):
            r = await http.get(f"{svc.base_url}/v1/insight/overview", headers=svc.headers(other))
            assert r.status_code == 403, (other, r.status_code)
        assert (await http.get(f"{svc.base_url}/v1/insight/overview")).status_code == 401

        r = await http.get(f"{svc.base_url}/v1/insight/overview", headers=board)
        assert r.status_code == 200, r.text
        data = r.json()
        assert not TOKEN.search(r.text), "a linkage token reached the board"
        available = {m["id"] for m in data["measures"] if m["available"]}
        charted = {t["measure"] for t in data["trends"] + data["timeliness"]}
        assert available - charted == set(), "an available measure is not on the page"
        assert {t["measure"] for t in data["timeliness"]} == {"decision_within_one_working_day",
                                                              "encompass_before_next_school_day"} & available
        assert data["areas"], "no area table"
        # the rises the detector finds now, as the insight watch runs it (the last complete week): the demo's
        # district and no other, where and when, never a count
        assert all(set(r) == {"measure", "name", "unit_kind", "unit", "period", "method", "alpha"}
                   for r in data["rises"])
        assert {(r["unit_kind"], r["unit"]) for r in data["rises"]} == {("area", RISE)}, data["rises"]
        for table in data["trends"] + data["timeliness"] + data["areas"]:
            assert table["exact"] is False
            small = [v for v in _figures(table) if isinstance(v, int) and 1 <= v <= 5]
            assert small == [], (table["measure"], small)

        # a cell the exact table holds as 1 to 5 is "c" on the page (so the test shows suppression happening)
        exact = {(t.measure, t.rows_by): t for t in compute_all(
            records_from_store(svc.runtime.audit_store), default_measures(), by="agency", across="month",
            subscriber_partner={n: s.partner for n, s in svc.runtime.protocol.subscribers.items()})}
        hidden = 0
        for table in data["trends"]:
            source = exact.get((table["measure"], table["rows_by"]))
            if source is None:
                continue
            for row in table["rows"]:
                for column, shown in row["cells"].items():
                    if 1 <= source.count(row["row"], column) <= 5:
                        assert shown == "c", (table["measure"], row["row"], column)
                        hidden += 1
        assert hidden > 0, "the demo gave no small cell: the suppression check proves nothing"

        # exports: CSV and JSON of a table, protected the same way, audited
        contacts = next(t for t in data["trends"] if t["measure"] == "contacts")
        r = await http.get(f"{svc.base_url}/v1/insight/tables/contacts", headers=board,
                           params={"by": contacts["rows_by"], "period": "month", "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        values = [line["value"] for line in csv.DictReader(io.StringIO(r.text))]
        assert values and not [v for v in values if SMALL.match(v)]
        r = await http.get(f"{svc.base_url}/v1/insight/tables/contacts", headers=board,
                           params={"by": "area", "period": "month", "format": "json"})
        assert r.status_code == 200 and r.json()["exact"] is False
        bad = await http.get(f"{svc.base_url}/v1/insight/tables/not_a_measure", headers=board)
        assert bad.status_code == 404 and "not_a_measure" not in bad.text
        bad = await http.get(f"{svc.base_url}/v1/insight/tables/contacts", headers=board,
                             params={"by": "no_such_breakdown"})
        assert bad.status_code == 422

        # the gauges: published totals of operational measures, nothing else
        metrics = (await http.get(f"{svc.base_url}/metrics")).text
        gauges = [line for line in metrics.splitlines() if line.startswith("mash_insight_latest_month_total{")]
        assert gauges, "no insight gauge"
        assert all(not (1 <= float(line.rsplit(" ", 1)[1]) <= 5) for line in gauges)

        # the JSON endpoints are documented
        paths = (await http.get(f"{svc.base_url}/openapi.json")).json()["paths"]
        assert {"/v1/insight/overview", "/v1/insight/tables", "/v1/insight/tables/{measure}",
                "/v1/insight/map.svg", "/v1/insight/measures"} <= set(paths)

        async with async_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            try:
                context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-GB",
                                                    timezone_id="Europe/London", accept_downloads=True)
                page = await context.new_page()
                failed: list[str] = []
                errors: list[str] = []
                page.on("requestfailed", lambda req: failed.append(req.url))
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(f"{svc.base_url}/insight")
                await page.fill("#apikey", svc.credentials["insight"])
                await page.click("#login-form button[type=submit]")
                await page.wait_for_selector("#trend-charts .card .js-plotly-plot")
                cards = page.locator("#trend-charts .card, #timeliness-charts .card")
                assert await cards.count() == len(charted)
                # every card has its chart, or says why there is nothing to chart (all its figures hidden)
                await page.wait_for_function("document.querySelectorAll('.card .js-plotly-plot, .card .chart.empty')"
                                             f".length === {len(charted)}")
                assert await page.locator(".card .js-plotly-plot").count() >= 3
                await page.wait_for_function("document.getElementById('map-image').naturalWidth > 0")
                for measure in charted:
                    assert await page.locator(f'.card[data-measure="{measure}"] h3').count() == 1

                # no figure of 1 to 5 in any table on the page, the "c" shown, the areas there
                cells = await page.eval_on_selector_all("td", "tds => tds.map(td => td.textContent.trim())")
                assert cells and not [c for c in cells if SMALL.match(c.split(" ")[0])]
                assert "c" in cells
                assert await page.locator("#area-tables table").count() >= 1
                assert await page.locator("#rises li").count() == len(data["rises"])
                assert RISE in await page.inner_text("#rises")
                text = await page.inner_text("body")
                assert not TOKEN.search(text)
                assert "target: one working day, every time" in await page.inner_text("#timeliness-charts")
                scroll = await page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= 1366, scroll

                await page.screenshot(path=str(ARTIFACTS / "insight-page.png"), full_page=True)
                await page.screenshot(path=str(ARTIFACTS / "insight-first-screen.png"))
                await page.locator("#trends").screenshot(path=str(ARTIFACTS / "insight-trends.png"))
                await page.locator("#timeliness").screenshot(path=str(ARTIFACTS / "insight-timeliness.png"))
                await page.locator("#areas").screenshot(path=str(ARTIFACTS / "insight-areas.png"))
                await page.locator("#map").screenshot(path=str(ARTIFACTS / "insight-map.png"))

                # an export from the page: the CSV the board member saves
                async with page.expect_download() as download:
                    await page.click('.card[data-measure="contacts"] button[data-export="contacts:csv"]')
                saved = Path(await (await download.value).path()).read_text()
                assert saved.startswith("measure,") and not [line for line in csv.DictReader(io.StringIO(saved))
                                                             if SMALL.match(line["value"])]
                assert failed == [] and errors == [], (failed, errors)
            finally:
                await browser.close()

        # every read and export audited, by the board's credential, naming what (never a number)
        reads = await eventually(lambda: (found := _audited(svc, kind="insight_read"))
                                 and {"insight.page", "insight.export.csv", "insight.export.json",
                                      "insight.map"} <= {r["action"] for r in found} and found)
        assert all(r["actor"].startswith("insight:") for r in reads)
        assert any(r.get("target") == "contacts:area:month" for r in reads)
