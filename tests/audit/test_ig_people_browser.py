"""The IG page for people, in a real headless Chromium at 1,366 x 768 (a council laptop), in the UK time zone: every
view opened and filled, no view wider than the screen, plain labels and local times, technical columns behind a
toggle, a disclosure's consent override on its row, links from a disclosure to its rule and to the subject access
report, and the report shown in the page under its strict Content-Security-Policy. Screenshots: tests/artifacts/."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from broker.api import ig_policy
from broker.audit import audit_record
from broker.audit.sar import recipient_words
from broker.audit.store import AuditStore
from broker.policy import load_protocol
from broker.policy.codes import LAWFUL_BASIS
from broker.schema.classification import field_classes
from tests.audit.conftest import CHILD_A, _eid, seed_records
from tests.audit.igapp import build_ig_app
from tests.audit.test_ig_browser import ARGS, ARTIFACTS, CHROMIUM, _serving

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"
WIDTH, HEIGHT = 1366, 768
# the twelve longest field paths of the event type: the widest row a real decision makes
LONG_PATHS = sorted((p for p, c in field_classes("police.incident_child_present").items() if c != "operational"),
                    key=len)[-12:]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium "
                                                     "(apt-get install chromium)"),
]


def _overridden() -> list[dict]:
    """A disclosure to the sample protocol's MASH hub under one of its rules, the child's objection set aside, with
    many long field paths."""
    eid = _eid(5)
    t = "2026-03-05T{:02d}:00:00Z"
    recs = [
        audit_record("event_published", time=t.format(9), actor="intake:police", agency="police", event_id=eid,
                     event_type="police.incident_child_present", subject=CHILD_A),
        audit_record("decision", time=t.format(10), actor="share", subject=CHILD_A, event_id=eid,
                     event_type="police.incident_child_present", subscriber="mash_hub", decision_id="dec-0005",
                     outcome="deliver", rule_id="mash-police-contact", purpose="safeguarding",
                     lawful_basis=["uk_gdpr_art6_1_e", "children_act_1989_s47"], protocol_id="sample-partnership",
                     protocol_version="2",
                     fields_released=["subject.child.family_name", "subject.child.given_names[]", *LONG_PATHS],
                     consent_override={"restriction": "objection", "recorded_on": "2026-03-01",
                                       "gateway": "children_act_1989_s47"}),
        audit_record("delivered", time=t.format(10), actor="share", subject=CHILD_A, subscriber="mash_hub",
                     event_id=eid, decision_id="dec-0005"),
    ]
    return [{**r, "record_id": _eid(2000 + i)} for i, r in enumerate(recs)]


def _fits(page, view: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{view}: the page is {width} px wide on a {WIDTH} px screen"


def test_every_view_fits_a_laptop_and_speaks_plainly(sqlite_store: AuditStore, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    expect = sync_api.expect
    sqlite_store.append([*seed_records(), *_overridden()])
    protocol = load_protocol(SAMPLE)
    ig = build_ig_app(sqlite_store, tmp_path, recipients=lambda: recipient_words(protocol))
    ig.app.include_router(ig_policy.router)
    ig.app.state.runtime = SimpleNamespace(protocol=protocol)  # the one attribute the /protocol route reads
    ARTIFACTS.mkdir(exist_ok=True)
    with _serving(ig) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, timezone_id="Europe/London",
                                          locale="en-GB")
            page = context.new_page()
            failed: list[str] = []
            refused: list[str] = []  # anything the page's CSP blocked (the report's style, a frame)
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(f"{base}/ig")
            page.fill("#apikey", ig.ig_key)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#verify-badge.ok")
            assert "GMT" in page.inner_text("#verify-text")  # checked at, in local time

            # Search: plain words for what happened, local times, the technical columns hidden
            page.select_option("#search-form select[name=agency]", "health")
            page.click("#search-form button[type=submit]")
            expect(page.locator("#search-results tbody tr")).to_have_count(2)
            text = page.inner_text("#search-results")
            assert "Record received" in text and "record_received" not in text
            assert "2 Mar 2026, 09:00 GMT" in text and "2026-03-02T09:00" not in text
            assert page.locator("#search-results th.tech").first.is_hidden()
            _fits(page, "search")
            page.screenshot(path=str(ARTIFACTS / "ig-people-search.png"))

            # Child timeline: the recipient by name, what was shared in words, the override on its row
            page.select_option("#search-form select[name=agency]", "")
            page.click("#search-form button[type=submit]")
            page.locator(f"#search-results a.token[data-token='{CHILD_A}']").first.click()
            page.wait_for_selector("#timeline-disclosures table")
            rows = page.locator("#timeline-disclosures tbody tr")
            expect(rows).to_have_count(2)
            front = rows.filter(has_text="csc-front-door")  # not in this protocol: its code is all there is
            hub = rows.filter(has_text="Exampleshire County Council Children's Services (MASH hub)")
            expect(hub).to_have_count(1)
            assert ("OVERRIDDEN: objection (recorded 2026-03-01) set aside under "
                    + LAWFUL_BASIS["children_act_1989_s47"]) in hub.inner_text()
            assert "Identity: family name (child), given names (child)" in hub.inner_text()
            assert "Partly shown: birth date (child): age band" in front.inner_text()
            assert "2 Mar 2026, 11:00 GMT" in front.inner_text() and "not overridden" in front.inner_text()
            assert "subject.child" not in page.inner_text("#tab-timeline")  # field paths: technical only
            _fits(page, "timeline")
            page.screenshot(path=str(ARTIFACTS / "ig-people-timeline.png"), full_page=True)

            # the toggle shows the field paths and ids; the page still fits
            page.check("#show-tech")
            assert "subject.child.family_name" in page.inner_text("#timeline-disclosures")
            _fits(page, "timeline with technical details")
            page.screenshot(path=str(ARTIFACTS / "ig-people-timeline-technical.png"), full_page=True)
            page.uncheck("#show-tech")

            # the subject access report, one click from the timeline, inside the page
            page.click("#report-open")
            frame = page.frame_locator("#report-frame")
            expect(frame.locator("h1")).to_have_text("Subject access report")
            report = frame.locator("body").inner_text()
            assert "Exampleshire County Council Children's Services (MASH hub)" in report
            assert "Overridden: the objection (recorded 2026-03-01)" in report
            assert frame.locator("table.disclosures").evaluate("t => getComputedStyle(t).tableLayout") == "fixed"
            _fits(page, "report")
            page.locator("#report").screenshot(path=str(ARTIFACTS / "ig-people-report.png"))
            with page.expect_download() as download:
                page.click("#report-download")
            assert download.value.suggested_filename == "subject-access-report.html"
            page.click("#report-close")

            # the disclosure's rule, linked to its row in the protocol in force
            hub.locator("a.rule").click()
            page.wait_for_selector("#protocol-rules tr.highlight")
            assert page.inner_text("#protocol-rules tr.highlight").startswith("mash-police-contact")
            _fits(page, "protocol")
            page.screenshot(path=str(ARTIFACTS / "ig-people-protocol.png"))

            page.click("#tabs button[data-tab=disclosures]")
            page.fill("#disclosures-form input[name=name]", "mash_hub")
            page.click("#disclosures-form button[type=submit]")
            page.wait_for_selector("#disclosures-results table")
            assert page.inner_text("#disclosures-count").startswith(
                "1 disclosure(s) to Exampleshire County Council Children's Services (MASH hub)")
            _fits(page, "disclosures")
            page.screenshot(path=str(ARTIFACTS / "ig-people-disclosures.png"))

            for tab, ready in (("deadletters", "#deadletters-results table"),
                               ("protocols", "#protocols-results table")):
                page.click(f"#tabs button[data-tab={tab}]")
                page.wait_for_selector(ready)
                _fits(page, tab)
                page.screenshot(path=str(ARTIFACTS / f"ig-people-{tab}.png"))
            assert failed == [] and refused == []
        finally:
            browser.close()


def test_docs_work_offline(tmp_path: Path) -> None:
    """The broker's own /docs loads Swagger UI from the broker itself: with every other origin blocked, it renders
    the API. (The app's routes only: no lifespan, so no Kafka; /docs and /openapi.json need none.)"""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    from broker.api.app import create_app
    from broker.config import Settings

    app = create_app(Settings(data_dir=tmp_path))
    with _serving(SimpleNamespace(app=app), lifespan="off") as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            outside: list[str] = []

            def only_here(route) -> None:
                if route.request.url.startswith(base):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_here)
            page.goto(f"{base}/docs")
            page.wait_for_selector(".swagger-ui .info .title")
            assert "mash-broker" in page.inner_text(".swagger-ui .info .title")
            page.wait_for_selector(".opblock-tag-section")  # the operations, read from /openapi.json
            assert "information governance" in page.inner_text(".swagger-ui")
            assert outside == []
            page.screenshot(path=str(ARTIFACTS / "docs-offline.png"))
        finally:
            browser.close()
