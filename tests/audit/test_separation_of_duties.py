"""Separation of duties: IG staff audit the sharing; reprocessing a dead letter republishes data, so it is an
administrator's act. An IG credential is refused at the admin route before anything runs, the IG API offers no
reprocess of its own, and the IG page never calls one."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from broker.api import admin
from broker.audit.store import AuditStore
from broker.web.ig import STATIC
from tests.audit.conftest import seed_records
from tests.audit.igapp import build_ig_app


def test_an_ig_key_cannot_reprocess_a_dead_letter(sqlite_store: AuditStore, tmp_path: Path) -> None:
    sqlite_store.append(seed_records())
    ig = build_ig_app(sqlite_store, tmp_path)
    ig.app.include_router(admin.router)  # the real admin routes, with the real role check
    head = sqlite_store.head()
    with TestClient(ig.app) as client:
        letter = sqlite_store.dead_letters(10)[0]["record"]["deadletter_id"]
        for target in (letter, str(uuid.uuid4())):
            r = client.post(f"/v1/admin/deadletters/{target}/reprocess",
                            headers={"Authorization": f"Bearer {ig.ig_key}"})
            # refused by the role check: the handler (which needs the running service) is never reached
            assert r.status_code == 403 and "admin role" in r.text, r.text
        ig_paths = [(m, path) for path, ops in ig.app.openapi()["paths"].items() if path.startswith("/v1/ig")
                    for m in ops]
        assert ig_paths and not [p for _, p in ig_paths if "reprocess" in p]
        assert {p for m, p in ig_paths if m != "get"} == {"/v1/ig/children/find"}  # a read, sent by POST
    assert sqlite_store.head() == head  # nothing recorded, nothing republished
    assert "/reprocess" not in (STATIC / "ig.js").read_text()  # the page has no button or call for it
