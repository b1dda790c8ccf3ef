"""The IG page in a real headless Chromium against the app served by uvicorn: sign in, search, open a child's
timeline, see the chain verified. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from broker.audit import audit_record
from broker.audit.store import AuditStore
from tests.audit.conftest import CHILD_A, CHILD_B, _eid, seed_records
from tests.audit.igapp import IgApp, build_ig_app

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium "
                                                     "(apt-get install chromium)"),
]


@contextmanager
def _serving(ig: IgApp, lifespan: str = "auto") -> Iterator[str]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(ig.app, log_level="warning", access_log=False, lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def served(sqlite_store: AuditStore, tmp_path: Path) -> Iterator[tuple[str, IgApp]]:
    sqlite_store.append(seed_records())
    ig = build_ig_app(sqlite_store, tmp_path)
    with _serving(ig) as base:
        yield base, ig


def test_ig_page_in_chromium(served: tuple[str, IgApp]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    expect = sync_api.expect
    base, ig = served
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            failed: list[str] = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(f"{base}/ig")
            assert page.locator("#app").is_hidden()  # nothing to see without the key

            page.fill("#apikey", "mbk_not-a-key-fictitious")
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#login-error:has-text('not accepted')")
            page.fill("#apikey", ig.subscriber_key)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#login-error:has-text('IG auditor role')")
            assert page.locator("#app").is_hidden()

            page.fill("#apikey", ig.ig_key)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#verify-badge.ok")
            assert page.inner_text("#verify-badge") == "Verification OK"
            assert "14 records verified" in page.inner_text("#verify-text")

            page.screenshot(path=str(ARTIFACTS / "ig-signed-in.png"))
            page.select_option("#search-form select[name=agency]", "health")
            page.click("#search-form button[type=submit]")
            page.wait_for_selector("#search-results table")
            expect(page.locator("#search-results tbody tr")).to_have_count(2)
            assert "Record received" in page.inner_text("#search-results")  # in words, not the record's kind code
            page.screenshot(path=str(ARTIFACTS / "ig-search.png"), full_page=True)

            page.select_option("#search-form select[name=agency]", "")
            page.fill("#search-form input[name=subscriber]", "csc-front-door")
            page.select_option("#kind-select", "decision")
            page.click("#search-form button[type=submit]")
            expect(page.locator("#search-results tbody tr")).to_have_count(2)  # (the page's CSP forbids eval)
            page.locator(f"#search-results a.token[data-token='{CHILD_A}']").first.click()
            page.wait_for_selector("#timeline-results table")
            assert page.locator("#timeline-results tbody tr").count() == 5
            assert page.locator("#timeline-disclosures tbody tr").count() == 1
            text = page.inner_text("#tab-timeline")
            assert "health-to-front-door" in text and "birth date (child): age band" in text
            assert "subject.child.birth_date" not in text  # field paths only with "Show technical details"
            read = page.locator("#timeline-disclosures tbody td.col-read time")
            assert read.get_attribute("datetime") == "2026-03-02T11:00:00.000Z"  # read by the recipient
            page.screenshot(path=str(ARTIFACTS / "ig-timeline.png"), full_page=True)

            page.click("#tabs button[data-tab=deadletters]")
            page.wait_for_selector("#deadletters-results table")
            assert page.locator("#deadletters-results button:has-text('Reprocess')").count() == 0  # an admin's act
            assert "administrator" in page.inner_text("#deadletters-message")
            assert page.locator("#deadletters-results tbody td").nth(6).inner_text() == _eid(900)
            page.screenshot(path=str(ARTIFACTS / "ig-deadletters.png"), full_page=True)

            page.click("#signout")
            assert page.locator("#app").is_hidden() and page.locator("#timeline-results tr").count() == 0
            assert failed == []
        finally:
            browser.close()


def test_a_childs_timeline_shows_the_tokens_the_identity_register_folded_into_it(sqlite_store: AuditStore,
                                                                                 tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    sqlite_store.append([*seed_records(), audit_record(
        "identity_linked", time="2026-03-04T09:00:00Z", actor="intake:social_care", agency="social_care",
        subject=CHILD_A, event_id=_eid(3), superseded=CHILD_B,
        reason="two children's streams joined: the superseded token is the same child")])
    ig = build_ig_app(sqlite_store, tmp_path, lambda token: [CHILD_A, CHILD_B] if token in (CHILD_A, CHILD_B)
                      else [token])
    with _serving(ig) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/ig")
            page.fill("#apikey", ig.ig_key)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#verify-badge.ok")
            page.select_option("#kind-select", "identity_linked")
            page.click("#search-form button[type=submit]")
            sync_api.expect(page.locator("#search-results tbody tr")).to_have_count(1)
            assert "two records of one child joined" in page.inner_text("#search-results")
            page.check("#show-tech")
            assert f"token folded in: {CHILD_B}" in page.inner_text("#search-results")
            page.locator(f"#search-results a.token[data-token='{CHILD_A}']").first.click()
            page.wait_for_selector("#timeline-results table")
            title = page.inner_text("#timeline-title")
            assert f"also recorded under {CHILD_B}" in title
            assert page.locator("#timeline-disclosures tbody tr").count() == 2  # one under each token
            page.screenshot(path=str(ARTIFACTS / "ig-timeline-linked.png"), full_page=True)
        finally:
            browser.close()
