"""The "Disclosures by subscriber" view in a real headless Chromium, on a log where the subscriber was refused more
than 1,000 events before it received any: the view must show every delivery and the right count (it said "0
disclosure(s) ... Nothing has been disclosed" when the store read the oldest 1,000 decisions, withholds included),
and the consent override on the overridden row. Screenshot at 1,366 x 768 into the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.audit.store import AuditStore
from tests.audit.igapp import build_ig_app
from tests.audit.test_disclosures_view import DELIVERIES, withholds_then_deliveries
from tests.audit.test_ig_browser import ARGS, CHROMIUM, _serving

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"),
]


def test_disclosures_after_a_thousand_withholds_in_chromium(sqlite_store: AuditStore, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    sqlite_store.append(withholds_then_deliveries("early_help"))
    ig = build_ig_app(sqlite_store, tmp_path)
    with _serving(ig) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"{base}/ig")
            page.fill("#apikey", ig.ig_key)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#verify-badge.ok")
            page.click("#tabs button[data-tab=disclosures]")
            page.fill("#disclosures-form input[name=name]", "early_help")
            page.click("#disclosures-form button[type=submit]")
            sync_api.expect(page.locator("#disclosures-results tbody tr")).to_have_count(DELIVERIES)
            count = page.inner_text("#disclosures-count")
            assert count == f"{DELIVERIES} disclosure(s) to early_help", count
            assert "Nothing has been disclosed" not in page.inner_text("#tab-disclosures")
            marks = page.locator("#disclosures-results tbody tr .override")
            sync_api.expect(marks).to_have_count(1)
            # the gateway in words (the code stays in the tooltip)
            assert "set aside under Children Act 1989 s47" in marks.inner_text()
            assert page.locator("#disclosures-results tbody tr").nth(6).locator(".override").count() == 1
            page.screenshot(path=str(tmp_path / "ig-disclosures-1366.png"))
            marks.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "ig-disclosures-override-1366.png"))
            print(f"screenshots: {tmp_path}")
        finally:
            browser.close()


def test_find_a_child_by_nhs_number_and_see_the_override_in_chromium(sqlite_store: AuditStore,
                                                                       tmp_path: Path) -> None:
    """An IG officer who knows only the NHS number: the lookup (with a reason) opens the child's timeline under
    every token it carried, and the overridden disclosure is marked on its row in both tables."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    from broker.audit import audit_record
    from broker.pipeline.resolve import Resolution
    from broker.stores.identities import IdentityRegister
    from tests.audit.conftest import _eid
    from tests.audit.test_disclosures_view import OVERRIDE
    from tests.audit.test_find_child import KEY, LA_ID, NHS, UPN, _intake

    child, ids = _intake({"nhs_number": NHS, "upn": UPN, "la_child_id": LA_ID})
    register = IdentityRegister(tmp_path / "identities.sqlite")
    register.apply([Resolution(child, tuple(ids))], "2026-03-01T09:00:00Z")
    sqlite_store.append([
        audit_record("event_published", time="2026-03-02T09:00:00Z", actor="intake:health", agency="health",
                     event_id=_eid(1), event_type="health.urgent_care_attendance", subject=child,
                     content_sha256="5f" * 32),
        audit_record("decision", time="2026-03-02T09:00:01Z", actor="share", subject=child, event_id=_eid(1),
                     event_type="health.urgent_care_attendance", subscriber="mash_hub", decision_id="dec-ov-1",
                     outcome="deliver", rule_id="mash-health-s47-9-assistance", purpose="safeguarding_triage",
                     lawful_basis=["uk_gdpr_art6_1_c"], protocol_id="sample-partnership", protocol_version="1.3.0",
                     fields_released=["payload.setting"], consent_override=OVERRIDE),
        audit_record("delivered", time="2026-03-02T09:00:02Z", actor="share", subject=child, subscriber="mash_hub",
                     event_id=_eid(1), decision_id="dec-ov-1")])
    ig = build_ig_app(sqlite_store, tmp_path, register.aliases, KEY)
    try:
        with _serving(ig) as base, sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1366, "height": 768})
                page.goto(f"{base}/ig")
                page.fill("#apikey", ig.ig_key)
                page.click("#login-form button[type=submit]")
                page.wait_for_selector("#verify-badge.ok")
                page.click("#tabs button[data-tab=timeline]")
                page.select_option("#find-form select[name=reason]", "subject_access_request")
                page.fill("#find-form input[name=reference]", "SAR-2026-0042")
                page.fill("#find-form input[name=nhs_number]", NHS)
                page.click("#find-form button[type=submit]")
                page.wait_for_selector("#timeline-disclosures table")
                assert "Found by nhs number" in page.inner_text("#find-result")
                assert page.input_value("#find-form input[name=nhs_number]") == ""  # not kept on the page
                assert page.input_value("#timeline-form input[name=subject]") == child
                sync_api.expect(page.locator("#timeline-disclosures tbody tr .override")).to_have_count(1)
                sync_api.expect(page.locator("#timeline-results tbody tr .override")).to_have_count(1)
                assert "OVERRIDDEN: objection (recorded" in page.inner_text("#timeline-disclosures")
                page.screenshot(path=str(tmp_path / "ig-find-child-1366.png"))
                page.locator("#timeline-disclosures .override").scroll_into_view_if_needed()
                page.screenshot(path=str(tmp_path / "ig-find-child-override-1366.png"))
                print(f"screenshots: {tmp_path}")
            finally:
                browser.close()
    finally:
        register.close()
    lookups = [e["record"] for e in sqlite_store.search(kind="admin_action", limit=10)
               if e["record"].get("action") == "ig.find_child"]
    assert len(lookups) == 1 and lookups[0]["subject"] == child and "SAR-2026-0042" in lookups[0]["reason"]
