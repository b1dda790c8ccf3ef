"""The IG page's Protocol tab in a real headless Chromium: the agreement's furniture (controllers, joint
arrangement, DPIA, appropriate policy documents, roles, retention, review, breach and subject-rights routing) and
the rules of the sample protocol, served by the real IG routers with the real API-key check."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from broker.api import ig_policy
from broker.audit.store import AuditStore
from broker.policy import load_protocol
from tests.audit.igapp import build_ig_app
from tests.audit.test_ig_browser import ARGS, ARTIFACTS, CHROMIUM, _serving

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "protocols" / "sample-partnership.yaml"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium "
                                                     "(apt-get install chromium)"),
]


def test_the_protocol_tab_shows_the_agreement_and_every_rule(sqlite_store: AuditStore, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    protocol = load_protocol(SAMPLE)
    ig = build_ig_app(sqlite_store, tmp_path)
    ig.app.include_router(ig_policy.router)
    ig.app.state.runtime = SimpleNamespace(protocol=protocol)  # the one attribute the /protocol route reads
    ARTIFACTS.mkdir(exist_ok=True)
    with _serving(ig) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            failed: list[str] = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(f"{base}/ig")
            page.fill("#apikey", ig.ig_key)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#verify-badge")
            page.click("#tabs button[data-tab=protocol]")
            page.wait_for_selector("#protocol-rules table")
            head = page.inner_text("#protocol-head")
            assert protocol.id in head and protocol.version in head
            agreement = page.inner_text("#protocol-agreement")
            g = protocol.governance
            assert g is not None
            assert g.dpia["reference"] in agreement and g.joint_controllers["arrangement"] in agreement
            for role in g.roles:  # every DPO, SIRO and Caldicott guardian mailbox is on the page
                assert role["contact"] in agreement
            for doc in g.appropriate_policy_documents:
                assert doc["reference"] in agreement
            assert g.breach["report_to"] in agreement and g.subject_rights["contact"] in agreement
            assert g.review["next_review"] in agreement
            sync_api.expect(page.locator("#protocol-agreement table").nth(1).locator("tbody tr")).to_have_count(
                len(g.retention))
            sync_api.expect(page.locator("#protocol-rules tbody tr")).to_have_count(len(protocol.rules))
            rules = page.inner_text("#protocol-rules")
            assert "a person: health to police about an adult" in rules  # the MARAC rule decides nothing itself
            page.screenshot(path=str(ARTIFACTS / "ig-protocol.png"))
            page.screenshot(path=str(ARTIFACTS / "ig-protocol-full.png"), full_page=True)
            assert failed == []
        finally:
            browser.close()


def test_the_protocol_api_refuses_a_subscriber_key(sqlite_store: AuditStore, tmp_path: Path) -> None:
    """The agreement and rules are for IG staff: a subscriber's key gets 403, not the protocol."""
    from fastapi.testclient import TestClient

    ig = build_ig_app(sqlite_store, tmp_path)
    ig.app.include_router(ig_policy.router)
    ig.app.state.runtime = SimpleNamespace(protocol=load_protocol(SAMPLE))
    client = TestClient(ig.app)
    assert client.get("/v1/ig/policy/protocol", headers={"Authorization": f"Bearer {ig.subscriber_key}"}
                      ).status_code == 403
    answer = client.get("/v1/ig/policy/protocol", headers={"Authorization": f"Bearer {ig.ig_key}"}).json()
    assert answer["governance"]["dpia"]["reference"].startswith("EX-DPIA")
    assert {r["id"] for r in answer["rules"]} >= {"mash-police-contact", "gp-unborn-cp-plan-notice"}
