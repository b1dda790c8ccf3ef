"""The first consent register's records through the real service: IG lists them (tokens and codes, never a name),
an IG officer or an administrator reviews each once (the API and `mash-broker consent`), each review is audited,
and `mash-broker doctor` stops warning once none awaits review. Fictitious tokens."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from broker.cli.consent import app as consent_app
from broker.ops.checks import check_consent_review
from tests.integration.service import Service, running_service

pytestmark = pytest.mark.integration
REFUSED, FLAGGED = "lt1_" + "r" * 32, "lt1_" + "f" * 32
runner = CliRunner()


def _first_register(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(data_dir / "consent.sqlite")
    old.execute("CREATE TABLE consent (subject TEXT PRIMARY KEY, status TEXT NOT NULL, objection INTEGER NOT NULL,"
                " recorded_on TEXT)")
    old.executemany("INSERT INTO consent VALUES (?, ?, ?, ?)",
                    [(REFUSED, "refused", 0, "2026-03-01"), (FLAGGED, "not_sought", 1, "2026-03-02")])
    old.commit()
    old.close()


def _url(svc: Service, token: str | None = None) -> str:
    return f"{svc.base_url}/v1/ig/consent/v1-records" + (f"/{token}/review" if token else "")


async def _reviews_audited(svc: Service, want: int) -> list[dict[str, Any]]:
    for _ in range(900):  # the audit indexer may lag on a loaded host: wait for the records, not a fixed time
        found = [e["record"] for e in svc.runtime.audit_store.search(kind="admin_action", limit=1000)
                 if e["record"].get("action") == "consent.v1_review"]
        if len(found) >= want:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("the reviews were not audited in time")


async def test_ig_lists_reviews_once_and_the_audit_and_doctor_follow(kafka_bootstrap, tmp_path):
    _first_register(tmp_path / "data")
    async with running_service(tmp_path, kafka_bootstrap) as svc, httpx.AsyncClient(timeout=30) as http:
        others = [c for c in svc.credentials if c.split(":")[0] in ("subscriber", "intake", "decision_maker")]
        assert others
        for role in others:  # only IG and administrators see or review them
            r = await http.get(_url(svc), headers=svc.headers(role))
            assert r.status_code == 403, (role, r.text)
        r = await http.get(_url(svc), headers=svc.headers("ig_auditor"))
        assert r.status_code == 200, r.text
        listing = r.json()
        assert listing["awaiting_review"] == 2
        assert {c["subject"] for c in listing["children"]} == {REFUSED, FLAGGED}
        # tokens, codes and dates: nothing else is held, nothing else is shown
        assert all(set(c) == {"subject", "awaiting_review", "records", "review"} for c in listing["children"])
        assert all(set(r) == {"kind", "state", "recorded_on"} for c in listing["children"] for r in c["records"])
        assert check_consent_review(svc.settings).status == "warning"

        listed = await asyncio.to_thread(runner.invoke, consent_app, ["v1-list", "--data-dir",
                                                                     str(svc.settings.data_dir)])
        assert listed.exit_code == 0 and "2 awaiting review" in listed.output and REFUSED in listed.output

        # an IG officer finds the "refusal" was an objection: the public task share now goes to a person
        r = await http.post(_url(svc, REFUSED), headers=svc.headers("ig_auditor"),
                            json={"outcome": "objection", "reviewed_on": "2026-07-01"})
        assert r.status_code == 200, r.text
        assert r.json()["review"]["outcome"] == "objection"
        assert r.json()["review"]["reviewed_by"].startswith("ig_auditor:")
        assert [(x["kind"], x["state"], x["recorded_by"]) for x in r.json()["records_now"]] == [
            ("objection", "raised", "ig_review")]
        # once only, whoever tries; a token with no migrated records, or an outcome that is no kind, is refused
        again = await http.post(_url(svc, REFUSED), headers=svc.headers("admin"), json={"outcome": "confirmed"})
        assert again.status_code == 409, again.text
        unknown = await http.post(_url(svc, "lt1_" + "z" * 32), headers=svc.headers("admin"),
                                  json={"outcome": "confirmed"})
        assert unknown.status_code == 404 and "lt1_" not in unknown.text
        bad = await http.post(_url(svc, FLAGGED), headers=svc.headers("admin"), json={"outcome": "consent"})
        assert bad.status_code == 422

        # an administrator, through the command line, finds the flag was a refusal of consent (the reverse)
        reviewed = await asyncio.to_thread(runner.invoke, consent_app, [
            "v1-review", FLAGGED, "--outcome", "data_protection_refusal", "--url", svc.base_url,
            "--key", svc.credentials["admin"]])
        assert reviewed.exit_code == 0, reviewed.output
        assert "data_protection=refused" in reviewed.output
        assert not svc.runtime.consent.get(FLAGGED).objection

        audited = await _reviews_audited(svc, 2)
        assert {(a["subject"], a["actor"].split(":")[0]) for a in audited} == {(REFUSED, "ig_auditor"),
                                                                              (FLAGGED, "admin")}
        assert all("first consent register" in a["reason"] for a in audited)
        r = await http.get(_url(svc), headers=svc.headers("ig_auditor"))
        assert r.json()["awaiting_review"] == 0 and r.json()["children"] == []
        assert check_consent_review(svc.settings).status == "ok"
