"""The IG API: every endpoint refuses missing, unknown and wrong-role keys; with the IG key each one answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.audit.store import AuditStore
from tests.audit.conftest import CHILD_A, _eid, seed_records
from tests.audit.igapp import IgApp, build_ig_app

LETTER = _eid(900)
PARAMS = {"subject": CHILD_A, "name": "csc-front-door", "deadletter_id": LETTER}


@pytest.fixture
def ig(sqlite_store: AuditStore, tmp_path: Path) -> IgApp:
    sqlite_store.append(seed_records())
    return build_ig_app(sqlite_store, tmp_path)


@pytest.fixture
def client(ig: IgApp) -> TestClient:
    return TestClient(ig.app)


def api_calls(ig: IgApp) -> list[tuple[str, str]]:
    """Every /v1/ig operation the app publishes in its OpenAPI document, with path parameters filled in."""
    calls = []
    for template, operations in ig.app.openapi()["paths"].items():
        if template.startswith("/v1/ig"):
            path = re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], template)
            calls.extend((method.upper(), path) for method in operations)
    return calls


def test_every_endpoint_refuses_without_the_ig_credential(ig: IgApp, client: TestClient,
                                                         sqlite_store: AuditStore) -> None:
    calls = api_calls(ig)
    # IG reads; it does not reprocess. Find a child is a read sent as POST, so no identifier reaches a URL.
    assert len(calls) == 8 and all(method == "GET" or path == "/v1/ig/children/find" for method, path in calls)
    head = sqlite_store.head()
    for method, path in calls:
        assert client.request(method, path).status_code == 401, path
        wrong = {"Authorization": "Bearer mbk_not-a-key-fictitious"}
        assert client.request(method, path, headers=wrong).status_code == 401, path
        assert client.request(method, path, headers={"Authorization": ig.ig_key}).status_code == 401, path
        other_role = {"Authorization": f"Bearer {ig.subscriber_key}"}
        assert client.request(method, path, headers=other_role).status_code == 403, path
    assert sqlite_store.head() == head
    ok = {"Authorization": f"Bearer {ig.ig_key}"}
    for method, path in calls:
        if method == "POST":  # needs a body (and a linkage key): tests/audit/test_find_child.py
            continue
        response = client.request(method, path, headers=ok)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["cache-control"] == "no-store"


def auth(ig: IgApp) -> dict[str, str]:
    return {"Authorization": f"Bearer {ig.ig_key}"}


def test_search(ig: IgApp, client: TestClient) -> None:
    page = client.get("/v1/ig/search", params={"agency": "police"}, headers=auth(ig)).json()
    assert [e["record"]["kind"] for e in page["entries"]] == ["deadlettered", "record_received"]
    page = client.get("/v1/ig/search", params={"limit": 4}, headers=auth(ig)).json()
    assert [e["seq"] for e in page["entries"]] == [14, 13, 12, 11] and page["next_before_seq"] == 11
    page = client.get("/v1/ig/search", params={"since": "2026-03-04T00:00:00Z"}, headers=auth(ig)).json()
    assert len(page["entries"]) == 2
    assert client.get("/v1/ig/search", params={"kind": "nope"}, headers=auth(ig)).status_code == 400
    assert client.get("/v1/ig/search", params={"since": "last week"}, headers=auth(ig)).status_code == 400
    assert client.get("/v1/ig/search", params={"subject": "Testchild"}, headers=auth(ig)).status_code == 422


def test_timeline_disclosures_protocols(ig: IgApp, client: TestClient) -> None:
    data = client.get(f"/v1/ig/children/{CHILD_A}/timeline", headers=auth(ig)).json()
    assert len(data["entries"]) == 5 and [d["decision_id"] for d in data["disclosures"]] == ["dec-0001"]
    data = client.get("/v1/ig/subscribers/csc-front-door/disclosures", headers=auth(ig)).json()
    assert [d["subject"] for d in data["disclosures"]] == [CHILD_A, "lt1_TestchildExampleBbbbbbbbbbbbb"]
    history = client.get("/v1/ig/protocols", headers=auth(ig)).json()["history"]
    assert [h["record"]["protocol_version"] for h in history] == ["1", "2"]
    report = client.get(f"/v1/ig/children/{CHILD_A}/report", headers=auth(ig))
    assert report.headers["content-type"].startswith("text/html") and "health-to-front-door" in report.text


def test_dead_letters_show_when_an_admin_reprocessed_them(ig: IgApp, client: TestClient,
                                                          sqlite_store: AuditStore) -> None:
    letters = client.get("/v1/ig/deadletters", headers=auth(ig)).json()["deadletters"]
    assert [d["record"]["deadletter_id"] for d in letters] == [LETTER] and letters[0]["reprocessed_at"] is None
    # reprocessing republishes data: IG has no route for it (an admin's, /v1/admin/deadletters/{id}/reprocess)
    head = sqlite_store.head()
    assert client.post(f"/v1/ig/deadletters/{LETTER}/reprocess", headers=auth(ig)).status_code in (404, 405)
    assert sqlite_store.head() == head
    sqlite_store.log("admin_action", actor="admin:k_fictitious01", action="deadletter.reprocess", target=LETTER)
    assert client.get("/v1/ig/deadletters", headers=auth(ig)).json()["deadletters"][0]["reprocessed_at"]
    assert sqlite_store.verify().ok


def test_verification_status(ig: IgApp, client: TestClient, sqlite_store: AuditStore) -> None:
    status = client.get("/v1/ig/verification", headers=auth(ig)).json()
    assert status["ok"] is True and status["head_seq"] == 14 == status["store_head_seq"]
    sqlite_store._sql.execute("UPDATE audit_entry SET body = replace(body, 'police', 'health') WHERE seq = 9")
    status = client.get("/v1/ig/verification", headers=auth(ig)).json()
    assert status["ok"] is False and status["first_bad_seq"] == 9


def test_page_and_assets_are_local_and_hold_no_data(client: TestClient) -> None:
    page = client.get("/ig")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # nothing from another origin
    assert CHILD_A not in page.text and "csc-front-door" not in page.text
    for name, kind in (("ig.js", "javascript"), ("ig.css", "css")):
        asset = client.get(f"/ig/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert "http://" not in asset.text and "https://" not in asset.text
    assert "innerHTML" not in client.get("/ig/static/ig.js").text
    for name in ("ig.html", "../ig.py", "%2e%2e%2fig.py", "nope.js"):
        assert client.get(f"/ig/static/{name}").status_code == 404


def test_a_subject_access_report_taken_through_the_api_is_audited_with_who_took_it(
        ig: IgApp, client: TestClient, sqlite_store: AuditStore) -> None:
    assert client.get(f"/v1/ig/children/{CHILD_A}/report", headers=auth(ig)).status_code == 200
    (taken,) = [e["record"] for e in sqlite_store.search(kind="admin_action")
                if e["record"]["action"] == "audit.export"]
    (caller,) = [p for p in ig.app.state.api_keys.principals() if p.role == "ig_auditor"]
    assert taken["actor"] == f"ig_auditor:{caller.key_id}" and taken["target"] == "sar"
    assert taken["subject"] == CHILD_A and taken["count"] == 1
