"""/v1/insight and /insight on a real SQLite audit store holding the hand-built log (tests/insight/known_log.py), with
the broker's real API-key dependency: its own role, disclosure control on every answer, every read audited, exports,
gauges, and the page's files served from the broker under a strict policy."""

from __future__ import annotations

import csv
import io
import shutil
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from broker.api.auth import ApiKeyStore, require
from broker.api.errors import install
from broker.audit.store import open_audit_store
from broker.insight.detect import Rise
from broker.policy import load_protocol
from broker.web.insight import make_insight_router
from tests.insight.known_log import D1, D2, A, B, C, known_log
from tests.policy.conftest import SAMPLE

TOKENS = (A, B, C, D1, D2)


@pytest.fixture()
def insight(tmp_path):
    store = open_audit_store(tmp_path, create_key=True)
    store.append(known_log())
    keys = ApiKeyStore(tmp_path / "api-keys.json")
    board, _ = keys.create("insight")
    ig, _ = keys.create("ig_auditor")
    totals: list[dict[str, Any]] = []
    app = FastAPI()
    install(app)
    app.state.api_keys = keys
    protocol = load_protocol(SAMPLE, prove=False)
    rise = Rise(measure="contacts", unit_kind="area", unit="ZZ7", period="2026-W48", period_kind="week",
                observed=4, expected=0.8, baseline=7, baseline_periods=8, p_value=0.0001, alpha=0.01)
    app.include_router(make_insight_router(lambda: store, require("insight"), lambda: protocol, totals.append,
                                           min_population=1, rises=lambda records: [rise] if records else []))
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {board}"}, {"Authorization": f"Bearer {ig}"}, store, totals
    store.close()


def _figures(table: dict[str, Any]) -> list[Any]:
    out = [v for row in table["rows"] for v in row["cells"].values()]
    out += [row.get("total") for row in table["rows"]] + list((table.get("column_totals") or {}).values())
    return [*out, table.get("total")]


def test_only_the_insight_role_reads_it(insight) -> None:
    client, board, ig, _, _ = insight
    for path in ("/v1/insight/overview", "/v1/insight/tables", "/v1/insight/tables/contacts", "/v1/insight/map.svg",
                 "/v1/insight/measures"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=ig).status_code == 403, path  # IG has its own page, with exact figures
    assert client.get("/v1/insight/measures", headers=board).status_code == 200


def test_no_small_figure_and_no_token_ever_leaves(insight) -> None:
    """The hand-built log is small: most cells are 1 to 5. Every one is "c", and no token appears."""
    client, board, _, _, _ = insight
    r = client.get("/v1/insight/overview", headers=board)
    assert r.status_code == 200
    for token in TOKENS:
        assert token not in r.text
    data = r.json()
    tables = data["trends"] + data["timeliness"] + data["areas"]
    assert tables
    assert any("c" in _figures(t) for t in tables), "nothing suppressed: the log is too big to test this"
    for t in tables:
        assert t["exact"] is False
        assert not [v for v in _figures(t) if isinstance(v, int) and 1 <= v <= 5], t["measure"]
    for by in ("agency", "area", "outcome"):
        r = client.get("/v1/insight/tables", headers=board, params={"by": by})
        assert r.status_code == 200
        for t in r.json():
            assert not [v for v in _figures(t) if isinstance(v, int) and 1 <= v <= 5], (by, t["measure"])


def test_exports_are_protected_and_bad_asks_are_plain_4xx(insight) -> None:
    client, board, _, _, _ = insight
    r = client.get("/v1/insight/tables/contacts", headers=board, params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="contacts-by-agency-month.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and all(not (row["value"].isdigit() and 1 <= int(row["value"]) <= 5) for row in rows)
    assert client.get("/v1/insight/tables/contacts", headers=board).json()["exact"] is False
    missing = client.get("/v1/insight/tables/no_such_measure", headers=board)
    assert missing.status_code == 404 and "no_such_measure" not in missing.text
    assert client.get("/v1/insight/tables/contacts", headers=board, params={"by": "../etc"}).status_code == 422
    wrong = client.get("/v1/insight/tables/contacts", headers=board, params={"by": "subscriber"})
    assert wrong.status_code == 422  # contacts do not break down by recipient: said, not a 5xx
    assert client.get("/v1/insight/tables/contacts", headers=board, params={"format": "xml"}).status_code == 422
    # weeks are not published beside months (linked tables: tests/insight/test_sdc_linked.py); quarters are derived
    weeks = client.get("/v1/insight/tables", headers=board, params={"period": "week"})
    assert weeks.status_code == 422 and "week" in weeks.json()["detail"]
    quarters = client.get("/v1/insight/tables/contacts", headers=board, params={"period": "quarter"})
    assert quarters.status_code == 200 and quarters.json()["columns_by"] == "quarter"


def test_every_read_and_export_is_audited_without_a_number(insight) -> None:
    client, board, _, store, _ = insight
    client.get("/v1/insight/overview", headers=board)
    client.get("/v1/insight/tables/contacts", headers=board, params={"format": "csv"})
    client.get("/v1/insight/tables/contacts", headers=board, params={"format": "json", "by": "area"})
    client.get("/v1/insight/tables", headers=board, params={"by": "outcome"})
    reads = [e["record"] for e in store.search(kind="insight_read", limit=100)]
    assert {(r["action"], r.get("target")) for r in reads} >= {
        ("insight.page", None), ("insight.export.csv", "contacts:agency:month"),
        ("insight.export.json", "contacts:area:month"), ("insight.tables", "by:outcome:month")}
    assert all(r["actor"].startswith("insight:k_") for r in reads)
    assert all(set(r) <= {"record_id", "kind", "time", "actor", "action", "target", "seq", "prev_hash", "hash"}
               for r in reads)


def test_gauges_get_published_totals_only(insight) -> None:
    client, board, _, _, totals = insight
    client.get("/v1/insight/overview", headers=board)
    assert totals, "the gauges were not given the page's figures"
    latest = totals[-1]
    assert "contacts" in latest  # an operational measure
    assert all(v is None or not 1 <= v <= 5 for v in latest.values())


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (Debian package graphviz)")
def test_the_map_of_the_protocol_in_force(insight) -> None:
    client, board, _, store, _ = insight
    r = client.get("/v1/insight/map.svg", headers=board)
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert "<svg" in r.text and "mash&#45;s17&#45;child&#45;in&#45;need" in r.text
    assert [e["record"]["target"] for e in store.search(kind="insight_read", limit=10)] == [
        "exampleshire-mash-isp:" + load_protocol(SAMPLE, prove=False).version]


def test_the_page_and_its_library_come_from_the_broker(insight) -> None:
    client, _, _, _, _ = insight
    page = client.get("/insight")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe" not in page.headers["content-security-policy"]
    assert 'src="/insight/static/plotly.min.js"' in page.text and "http" not in page.text.split("<body>")[0]
    lib = client.get("/insight/static/plotly.min.js")
    assert lib.status_code == 200 and "plotly.js" in lib.text[:400] and "MIT" in lib.text[:400]
    assert client.get("/insight/static/insight.js").status_code == 200
    assert client.get("/insight/static/..%2Fig.js").status_code == 404
    assert client.get("/insight/static/ig.js").status_code == 404


def test_a_rise_is_named_where_and_when_never_with_its_counts(insight) -> None:
    """The detector's rise carries exact counts (observed 4, baseline 7): the board gets the district, the period
    and the test, not the numbers."""
    client, board, _, _, _ = insight
    rises = client.get("/v1/insight/overview", headers=board).json()["rises"]
    assert rises == [{"measure": "contacts", "name": rises[0]["name"], "unit_kind": "area", "unit": "ZZ7",
                      "period": "2026-W48", "method": rises[0]["method"], "alpha": 0.01}]
    assert rises[0]["name"] != "contacts"  # the measure's name in words
