"""The owning agency is told, in the IG page: the "Told to the source agency" tab in a real headless Chromium at
1,366 x 768 in the UK time zone lists one partner's disclosures of the day, the consent override first and marked on
its row, recipients by name, lawful bases in words, and fits the screen. Screenshot: tests/artifacts/ig-digest.png."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.audit.store import AuditStore
from broker.policy import load_protocol
from broker.web.ig_digest import make_digest_router
from tests.audit.conftest import CHILD_B, _eid
from tests.audit.igapp import build_ig_app
from tests.audit.test_digest import DAY, SAMPLE, _decision, _published
from tests.audit.test_ig_browser import ARGS, ARTIFACTS, CHROMIUM, _serving

WIDTH, HEIGHT = 1366, 768

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium "
                                                     "(apt-get install chromium)"),
]


def test_the_digest_tab_tells_the_police_what_of_theirs_went_where(sqlite_store: AuditStore, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    expect = sync_api.expect
    sqlite_store.append([
        _published(1, "police", "Y99PF"), _published(2, "police", "Y99PF", CHILD_B), _published(3, "health", "RXX"),
        *_decision(1, "mash_hub", "2026-07-01T08:00:00Z"),
        *_decision(2, "riverside_gp", "2026-07-01T12:00:00Z", child=CHILD_B, override=True),
        *_decision(3, "mash_hub", "2026-07-01T10:00:00Z"),  # the hospital's data: not in the police's digest
    ])
    protocol = load_protocol(SAMPLE)
    ig = build_ig_app(sqlite_store, tmp_path)
    from broker.api.auth import require

    ig.app.include_router(make_digest_router(lambda: sqlite_store, require("ig_auditor"), lambda: protocol))
    ARTIFACTS.mkdir(exist_ok=True)
    with _serving(ig) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, timezone_id="Europe/London",
                                          locale="en-GB", accept_downloads=True)
            page = context.new_page()
            page.goto(f"{base}/ig")
            page.fill("#apikey", ig.ig_key)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#verify-badge.ok")
            page.click("#tabs button[data-tab=digest]")
            expect(page.locator("#digest-partner option")).to_have_count(2)
            page.select_option("#digest-partner", "exampleshire-police")
            page.fill("#digest-form input[name=date]", DAY)
            page.click("#digest-form button[type=submit]")
            rows = page.locator("#digest-results tbody tr")
            expect(rows).to_have_count(2)
            first, second = rows.nth(0).inner_text(), rows.nth(1).inner_text()
            assert first.startswith("OVERRIDDEN: objection (recorded 2026-06-01) set aside under Children Act 1989")
            assert "Riverside Medical Practice" in first
            assert "1 Jul 2026, 13:00 BST" in first  # local time with the zone
            assert "Exampleshire County Council Children's Services" in second and "09:00 BST" in second
            assert "2 disclosure(s) of Exampleshire Police's data" in page.inner_text("#digest-summary")
            assert "1 with a consent override; for its data protection officer" in page.inner_text("#digest-summary")
            assert _eid(3) not in page.content()
            assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
            page.screenshot(path=str(ARTIFACTS / "ig-digest.png"), full_page=True)
            with page.expect_download() as download:
                page.click("#digest-csv")
            saved = tmp_path / "digest.csv"
            download.value.save_as(saved)
            lines = saved.read_text().splitlines()
            assert len(lines) == 3 and lines[1].startswith("objection set aside under")
            # two digests taken, each recorded with the key that took it
            asked = sqlite_store.search(kind="admin_action")
            assert [a["record"]["action"] for a in asked] == ["audit.digest", "audit.digest"]
        finally:
            browser.close()
