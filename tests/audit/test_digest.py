"""The owning agency is told (broker/audit/digest.py): a partner's disclosure digest lists what of its own data went
to whom, under which rule and lawful basis, overrides first, for one day in the partnership's time zone, only when
the protocol switches it on. Tried as the partner's IG lead (is everything of ours there, and nothing of others'?)
and as an auditor (is the asking audited; does a bad request leak anything?). Synthetic ids only."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from broker.audit import audit_record
from broker.audit.digest import DigestError, Source, day_range, digest, owner, read_digest, write_digest_csv
from broker.audit.store import AuditStore, open_audit_store
from broker.cli.audit import app
from broker.policy.compile import load_protocol
from broker.policy.errors import ProtocolError
from broker.policy.model import Partner
from tests.audit.conftest import CHILD_A, CHILD_B, SHA, _eid

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "deploy" / "protocols" / "sample-partnership.yaml"
DAY = "2026-07-01"  # British Summer Time: the London day starts at 23:00 UTC the day before
NOW = "2026-07-02T06:00:00.000Z"


@pytest.fixture(scope="module")
def protocol():
    return load_protocol(SAMPLE)


def _published(n: int, agency: str, system: str | None, child: str = CHILD_A) -> dict:
    return audit_record("event_published", time="2026-06-30T22:00:00Z", actor=f"intake:{agency}", agency=agency,
                        system=system, event_id=_eid(n), event_type="police.notification", subject=child,
                        content_sha256=SHA)


def _decision(n: int, subscriber: str, time: str, *, outcome: str = "deliver", child: str = CHILD_A,
              override: bool = False) -> list[dict]:
    decided = audit_record(
        "decision", time=time, actor="share", subject=child, event_id=_eid(n), event_type="police.notification",
        subscriber=subscriber, decision_id=f"dec-{n}-{subscriber}", outcome=outcome,
        rule_id="police-to-hub" if outcome == "deliver" else None,
        lawful_basis=["uk_gdpr_art6_1_e"] if outcome == "deliver" else None, purpose="safeguarding_triage",
        fields_released=["payload.notification_type"] if outcome == "deliver" else None,
        consent_override={"restriction": "objection", "recorded_on": "2026-06-01",
                          "gateway": "children_act_1989_s47"} if override else None,
        reason=None if outcome == "deliver" else "no rule releases this event type to this subscriber")
    if outcome != "deliver":
        return [decided]
    return [decided, audit_record("delivered", time=time, actor="share", subject=child, subscriber=subscriber,
                                  event_id=_eid(n), decision_id=f"dec-{n}-{subscriber}")]


@pytest.fixture
def day(store: AuditStore) -> AuditStore:  # SQLite and PostgreSQL
    store.append([
        _published(1, "police", "Y99PF"), _published(2, "police", "Y99PF", CHILD_B),
        _published(3, "health", "RXX"), _published(4, "police", None),
        *_decision(1, "mash_hub", "2026-06-30T23:30:00Z"),  # 00:30 in London: on the day
        *_decision(1, "early_help", "2026-07-01T09:00:00Z", outcome="withhold"),  # withheld: nothing went
        *_decision(2, "mash_hub", "2026-07-01T12:00:00Z", child=CHILD_B, override=True),
        *_decision(3, "mash_hub", "2026-07-01T10:00:00Z"),  # the hospital trust's data, not the police's
        *_decision(4, "riverside_gp", "2026-07-01T22:59:00Z"),  # 23:59 in London: still on the day
        *_decision(4, "oakfield_dsl", "2026-07-01T23:00:00Z"),  # midnight in London: the next day
    ])
    return store


def test_the_digest_holds_our_deliveries_of_the_day_overrides_first(day: AuditStore, protocol) -> None:
    made = read_digest(day, protocol, "exampleshire-police", date=DAY, time_zone="Europe/London",
                       generated_at=NOW)
    rows = made["disclosures"]
    assert [(r["event_id"], r["recipient"]) for r in rows] == [
        (_eid(2), "mash_hub"),  # the consent override comes first
        (_eid(1), "mash_hub"), (_eid(4), "riverside_gp")]
    assert rows[0]["consent_override"]["gateway"] == "children_act_1989_s47"
    assert rows[1]["recipient_partner"] == "Exampleshire County Council Children's Services"
    assert rows[1]["lawful_basis"] == ["uk_gdpr_art6_1_e"] and rows[1]["lawful_basis_words"][0] != "uk_gdpr_art6_1_e"
    assert made["summary"] == {"disclosures": 3, "consent_overrides": 1,
                               "by_recipient": {"mash_hub": 2, "riverside_gp": 1}, "by_rule": {"police-to-hub": 3}}
    assert made["to"] == {"role": "dpo", "contact": "data.protection@exampleshire-police.example.org"}
    assert (made["from"], made["until"]) == ("2026-06-30T23:00:00.000Z", "2026-07-01T23:00:00.000Z")


def test_the_school_gets_its_ig_lead_and_nothing_of_the_police(day: AuditStore, protocol) -> None:
    made = read_digest(day, protocol, "oakfield-primary", date=DAY, time_zone="Europe/London", generated_at=NOW)
    assert made["disclosures"] == [] and made["to"]["role"] == "ig_lead"


def test_a_partner_without_the_setting_gets_no_digest(day: AuditStore, protocol) -> None:
    with pytest.raises(DigestError, match="does not switch the disclosure digest on"):
        read_digest(day, protocol, "exampleshire-hospitals", date=DAY, time_zone="Europe/London",
                    generated_at=NOW)
    with pytest.raises(DigestError, match="not the id of a partner"):
        read_digest(day, protocol, "Testchild Example", date=DAY, time_zone="Europe/London", generated_at=NOW)


@pytest.mark.parametrize(("date", "zone", "option"), [("2026-13-01", "Europe/London", "--date"),
                                                      ("yesterday", "Europe/London", "--date"),
                                                      (DAY, "Mars/Olympus", "--time-zone")])
def test_a_bad_day_names_the_option_not_the_value(date: str, zone: str, option: str) -> None:
    with pytest.raises(DigestError) as caught:
        day_range(date, zone)
    assert str(caught.value).startswith(option) and date not in str(caught.value).replace(option, "")
    assert "Mars" not in str(caught.value)


def test_whose_data_an_event_is(protocol) -> None:
    assert owner(protocol, Source("health", "rxx ")) == "exampleshire-hospitals"  # declared, as the compile reads it
    assert owner(protocol, Source("health", "Y99ZZ")) == "exampleshire-icb"  # the agency's one catch-all partner
    assert owner(protocol, Source("police", None)) == "exampleshire-police"
    assert owner(protocol, Source("unknown", "Y99ZZ")) is None


def test_two_catch_all_partners_of_one_agency_own_nothing_undeclared(protocol) -> None:
    second = Partner("second-force", "Second Test Constabulary", "police", "safeguarding_partner")
    two = dataclasses.replace(protocol, partners={**protocol.partners, second.id: second})
    assert owner(two, Source("police", "Y99PF")) is None


def test_the_setting_needs_someone_to_receive_it(tmp_path: Path) -> None:
    data = yaml.safe_load(SAMPLE.read_text())
    hospitals = next(p for p in data["partners"] if p["id"] == "exampleshire-hospitals")
    hospitals["disclosure_digest"] = True
    data["governance"]["roles"] = [r for r in data["governance"]["roles"] if r["partner"] != hospitals["id"]]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProtocolError) as caught:
        load_protocol(path)
    assert any(p.path.endswith("disclosure_digest") and "nobody would receive" in p.reason
               for p in caught.value.problems)


def test_the_csv_has_one_row_per_disclosure_in_the_same_order(day: AuditStore, protocol) -> None:
    made = read_digest(day, protocol, "exampleshire-police", date=DAY, time_zone="Europe/London",
                       generated_at=NOW)
    out = io.StringIO()
    assert write_digest_csv(out, made) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["event_id"] for r in rows] == [r["event_id"] for r in made["disclosures"]]
    assert rows[0]["consent_override"] == "objection set aside under children_act_1989_s47"
    assert rows[1]["consent_override"] == ""


def test_the_pure_digest_ignores_other_days_and_unknown_sources(protocol) -> None:
    from broker.audit.disclosures import disclosures

    entries = [{"seq": i + 1, "record": r} for i, r in enumerate(
        [*_decision(1, "mash_hub", "2026-07-01T10:00:00Z"), *_decision(5, "mash_hub", "2026-07-01T10:00:00Z")])]
    made = digest(protocol, "exampleshire-police", disclosures(entries), {_eid(1): Source("police", None)},
                  date=DAY, time_zone="Europe/London", generated_at=NOW)
    assert [r["event_id"] for r in made["disclosures"]] == [_eid(1)]  # event 5's source is not in the log


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_cli_writes_json_and_csv_and_audits_the_asking(tmp_path: Path, protocol) -> None:
    store = open_audit_store(tmp_path, create_key=True, checkpoint_every=5)
    store.append([_published(1, "police", "Y99PF"), *_decision(1, "mash_hub", "2026-07-01T09:00:00Z")])
    store.close()
    common = ("--agency", "exampleshire-police", "--date", DAY, "--protocol-file", str(SAMPLE),
              "--data-dir", str(tmp_path))
    code, out, _ = _cli("digest", *common)
    assert code == 0, out
    made = json.loads(out)
    assert made["type"] == "mash-broker-disclosure-digest" and made["summary"]["disclosures"] == 1
    target = tmp_path / "digest.csv"
    code, _, err = _cli("digest", *common, "--format", "csv", "--out", str(target))
    assert code == 0 and "wrote 1 disclosures" in err and len(target.read_text().splitlines()) == 2
    code, _, err = _cli("digest", "--agency", "exampleshire-hospitals", "--date", DAY, "--protocol-file",
                        str(SAMPLE), "--data-dir", str(tmp_path))
    assert code == 2 and "does not switch the disclosure digest on" in err
    store = open_audit_store(tmp_path)
    try:
        asked = store.search(kind="admin_action")
        assert [(a["record"]["action"], a["record"]["target"], a["record"]["count"]) for a in asked] == [
            ("audit.digest", "exampleshire-police", 1), ("audit.digest", "exampleshire-police", 1)]
    finally:
        store.close()


# --- over HTTP, for the IG page and a partner's daily fetch ------------------------------------------------------
@pytest.fixture
def http(day: AuditStore, protocol, tmp_path: Path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from broker.api.auth import ApiKeyStore, require
    from broker.api.errors import install
    from broker.web.ig_digest import make_digest_router

    keys = ApiKeyStore(tmp_path / "api-keys.json")
    ig_key, _ = keys.create("ig_auditor")
    hub_key, _ = keys.create("subscriber", "mash_hub")
    app = FastAPI()
    install(app)
    app.state.api_keys = keys
    app.include_router(make_digest_router(lambda: day, require("ig_auditor"), lambda: protocol))
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {ig_key}"}, {"Authorization": f"Bearer {hub_key}"}


def test_the_api_serves_the_digest_and_audits_who_asked(http, day: AuditStore) -> None:
    client, ig, _ = http
    listed = client.get("/v1/ig/digests", headers=ig).json()["partners"]
    assert {p["id"]: p["to"] for p in listed} == {"exampleshire-police": "dpo", "oakfield-primary": "ig_lead"}
    r = client.get("/v1/ig/digests/exampleshire-police", params={"date": DAY}, headers=ig)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store", r.text
    assert [d["event_id"] for d in r.json()["disclosures"]] == [_eid(2), _eid(1), _eid(4)]
    r = client.get("/v1/ig/digests/exampleshire-police", params={"date": DAY, "format": "csv"}, headers=ig)
    assert r.headers["content-type"].startswith("text/csv") and len(r.text.splitlines()) == 4
    [asked, _] = day.search(kind="admin_action", limit=2)
    assert asked["record"]["action"] == "audit.digest" and asked["record"]["actor"].startswith("ig_auditor:k_")


def test_the_api_refuses_plainly(http) -> None:
    client, ig, hub = http
    assert client.get("/v1/ig/digests/exampleshire-police", params={"date": DAY}, headers=hub).status_code == 403
    r = client.get("/v1/ig/digests/exampleshire-hospitals", params={"date": DAY}, headers=ig)
    assert r.status_code == 404 and "does not switch the disclosure digest on" in r.text
    r = client.get("/v1/ig/digests/exampleshire-police", params={"date": DAY, "time_zone": "Mars/Olympus"},
                   headers=ig)
    assert r.status_code == 400 and "time_zone" in r.text and "Mars" not in r.text
    assert client.get("/v1/ig/digests/exampleshire-police", params={"date": "2026-02-30"},
                      headers=ig).status_code == 400
