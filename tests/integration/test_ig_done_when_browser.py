"""Issue 15's "done when", in a real headless Chromium against the real service (Apache Kafka, SQLite registers,
HTTP): an IG officer who knows only a child's NHS number answers from the page alone who received what about the
child, when, under which rule and lawful basis, whether consent was overridden and whether they read it, and takes
the subject access report to send, with the child named (revealed for it, and audited).

The story: a trust's attendance record about a child who has objected (UK GDPR Art 21) reaches the hub once the
local authority has called upon the trust under Children Act 1989 s47(9), a duty to disclose that sets the
objection aside; the hub reads it over HTTP. Fictitious child: NHS number of the 999 range, "Testchild Example".
Screenshots at 1,366 x 768: tests/artifacts/ig-done-when-*.png."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.policy.codes import LAWFUL_BASIS
from tests.integration.service import Service, running_service

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
NHS = "9990000042"
HUB, LA, TRUST = "test_hub", "test-csc", "test-trust"
PROTOCOL = """# IG done-when test: fictitious partnership.
protocol:
  id: ig-done-when-isp
  version: "0.1.0"
  title: IG done-when test protocol
  effective_from: "2026-01-01"
purposes:
  triage: Hub triage in tests
partners:
  - {id: test-csc, name: Testshire Children's Services, agency: social_care, role: safeguarding_partner,
     source_systems: ["999"]}
  - {id: test-trust, name: Testshire NHS Trust, agency: health, role: safeguarding_partner, source_systems: ["Y99901"]}
subscribers:
  - {name: test_hub, partner: test-csc, role: mash_hub, purposes: [triage], key_file: keys/test_hub.pub,
     key_suite: x25519, delivery: http-pull, confidentiality: social_work_professional}
rules:
  - id: hub-health-s47-9
    description: A health partner the local authority called upon under s47(9) assists its s47 enquiry.
    subscribers: [test_hub]
    event_types: ["health.*"]
    source_agencies: [health]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_c, uk_gdpr_art9_2_g, dpa2018_sch1_para6, children_act_1989_s47_9]
    conditions: {s47_request: true}
    fields:
      - classifications: [contact]
        action: withhold
      - classifications: [identity, demographic, health]
        action: release
"""


def attendance(nhs: str) -> bytes:
    return (f"MSH|^~\\&|PAS|Y99901^1.2.3^ISO|MASH|MASH|20261101100000||ADT^A04^ADT_A01|CTL{uuid.uuid4().hex[:8]}|P"
            f"|2.4\rEVN|A04|20261101100000\rPID|1||{nhs}^^^NHS^NH||Example^Testchild||20150304|F\rPV1|1|E\r"
            ).encode()


async def eventually(check: Any, attempts: int = 600) -> Any:
    for _ in range(attempts):
        if found := check():
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def _send(svc: Service, http: httpx.AsyncClient) -> str:
    r = await http.post(f"{svc.base_url}/v1/records/health", content=attendance(NHS),
                        headers=svc.headers("intake:health", **{"Content-Type": "x-application/hl7-v2+er7"}))
    assert r.status_code == 202, r.text
    return r.json()["events"][0]["event_id"]


def _audited(svc: Service, **filters: str) -> list[dict[str, Any]]:
    return [e["record"] for e in svc.runtime.audit_store.search(limit=1000, **filters)]


async def _story(svc: Service, http: httpx.AsyncClient) -> dict[str, Any]:
    """The first record is withheld (no s47 request); the child objects; the LA calls upon the trust; the second
    record is disclosed with the objection set aside; the hub reads it."""
    first = await _send(svc, http)
    token = (await eventually(lambda: _audited(svc, kind="event_published", event_id=first)))[0]["subject"]
    withheld = (await eventually(lambda: _audited(svc, kind="decision", event_id=first, subscriber=HUB)))[0]
    assert withheld["outcome"] == "withhold"
    r = await http.put(f"{svc.base_url}/v1/admin/consent/{token}", headers=svc.headers("admin"),
                       json={"status": "refused", "objection": True, "recorded_on": "2026-11-01"})
    assert r.status_code == 200, r.text
    r = await http.post(f"{svc.base_url}/v1/decisions/subjects/{token}/s47-requests", json={"partners": [TRUST]},
                        headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 201, r.text
    second = await _send(svc, http)
    shared = (await eventually(lambda: _audited(svc, kind="decision", event_id=second, subscriber=HUB)))[0]
    assert shared["outcome"] == "deliver" and shared["consent_override"]["gateway"] == "children_act_1989_s47_9"
    await svc.pull_until(http, HUB, 1)  # the hub reads it (HTTP pull: a delivery_read record)
    await eventually(lambda: _audited(svc, kind="delivery_read", subscriber=HUB))
    return {"token": token, "decision": shared}


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium")
async def test_an_ig_officer_with_an_nhs_number_answers_everything_and_sends_the_report(kafka_bootstrap, tmp_path):
    async_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    expect = async_api.expect
    (tmp_path / "protocol.yaml").write_text(PROTOCOL)
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(tmp_path / "protocol.yaml")) as svc, \
            httpx.AsyncClient(timeout=60) as http, async_api.async_playwright() as p:
        story = await _story(svc, http)
        decision = story["decision"]
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1366, "height": 768},
                                                timezone_id="Europe/London", locale="en-GB", accept_downloads=True)
            page = await context.new_page()
            failed: list[str] = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            await page.goto(f"{svc.base_url}/ig")
            await page.fill("#apikey", svc.credentials["ig_auditor"])
            await page.click("#login-form button[type=submit]")
            await page.wait_for_selector("#verify-badge.ok")

            # all the officer knows: the NHS number, and why they look
            await page.click("#tabs button[data-tab=timeline]")
            await page.select_option("#find-form select[name=reason]", "subject_access_request")
            await page.fill("#find-form input[name=reference]", "SAR-2026-0099")
            await page.fill("#find-form input[name=nhs_number]", NHS)
            await page.click("#find-form button[type=submit]")
            await page.wait_for_selector("#timeline-disclosures table")
            row = page.locator("#timeline-disclosures tbody tr")
            await expect(row).to_have_count(1)  # the withheld first record was not a disclosure
            text = await row.inner_text()
            # who received what, when, under which rule and lawful basis, consent overridden, read
            assert "Testshire Children's Services (MASH hub)" in text and HUB not in text
            assert "Identity:" in text and "Health:" in text and "family name (child)" in text
            assert "GMT" in text and decision["rule_id"] in text
            assert LAWFUL_BASIS["children_act_1989_s47_9"] in text and LAWFUL_BASIS["uk_gdpr_art6_1_c"] in text
            assert "OVERRIDDEN: objection (recorded 2026-11-01) set aside under " + LAWFUL_BASIS[
                "children_act_1989_s47_9"] in text
            read = row.locator("td.col-read time")
            assert await read.count() == 1  # a time, not "not yet read"
            assert NHS not in await page.content() and "Testchild" not in await page.content()
            scroll = await page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= 1366, scroll
            await page.screenshot(path=str(ARTIFACTS / "ig-done-when-timeline.png"), full_page=True)

            # why: the recorded decision explained, and today's protocol decides the same
            await row.locator("button[data-decision]").click()
            await expect(page.locator("#explain-text")).to_contain_text("today's protocol decides the SAME")
            await page.locator("#explain").screenshot(path=str(ARTIFACTS / "ig-done-when-explain.png"))
            await page.click("#explain-close")

            # the report, one click away: the child named, the same answers, in words
            await page.click("#report-open")
            frame = page.frame_locator("#report-frame")
            await expect(frame.locator("h1")).to_have_text("Subject access report")
            report = await frame.locator("body").inner_text()
            assert "Testchild Example" in report and "2015-03-04" in report
            assert "Testshire Children's Services (MASH hub)" in report and "Read " in report
            assert "Overridden: the objection (recorded 2026-11-01)" in report
            assert "Objection (UK GDPR Art 21), the child: raised" in report
            assert LAWFUL_BASIS["children_act_1989_s47_9"] in report and "Audit chain verified" in report
            assert NHS not in report and "subject.child" not in report
            await page.locator("#report").screenshot(path=str(ARTIFACTS / "ig-done-when-report.png"))
            async with page.expect_download() as download:
                await page.click("#report-download")
            sent = await (await download.value).path()
            html = Path(sent).read_text()
            assert "Testchild Example" in html and "@page{size:A4" in html
            # the file the DPO sends, as a PDF on A4 (Chromium's print to PDF: what "Save as PDF" makes)
            printed = await context.new_page()
            await printed.set_content(html)
            await printed.pdf(path=str(ARTIFACTS / "ig-done-when-report.pdf"), format="A4", prefer_css_page_size=True)
            await printed.screenshot(path=str(ARTIFACTS / "ig-done-when-report-page.png"), full_page=True)
            assert failed == []
        finally:
            await browser.close()

        # who looked, why, and that the name was read for the report: in the audit log, never the name itself
        async def audited_actions() -> list[dict[str, Any]]:
            return await eventually(lambda: (found := [r for r in _audited(svc, kind="admin_action")
                                                       if r.get("action") in ("ig.find_child", "ig.reveal_identity",
                                                                              "audit.export")])
                                    and len({r["action"] for r in found}) == 3 and found)
        actions = await audited_actions()
        assert all(r["actor"].startswith("ig_auditor") for r in actions)
        assert {r["subject"] for r in actions if r["action"] == "ig.reveal_identity"} == {story["token"]}
        everything = str(svc.runtime.audit_store.search(limit=5000))
        assert "Testchild" not in everything and NHS not in everything
