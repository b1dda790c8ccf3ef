"""Find a child (POST /v1/ig/children/find): the server computes the tokens intake gives (the pipeline's own linkage
code and key), follows the real identity register (SQLite) to every token the child carried, audits the lookup with
who looked and the required reason, and never echoes an identifier. Fictitious identifiers only (999 NHS numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.audit import audit_record
from broker.audit.store import AuditStore
from broker.pipeline.find_child import ChildQuery, lookup
from broker.pipeline.identify import LinkageKey, link_identified
from broker.pipeline.resolve import Resolution
from broker.stores.identities import IdentityRegister
from tests.audit.conftest import _eid
from tests.audit.igapp import build_ig_app

KEY = LinkageKey(1, b"fictitious-linkage-key-for-tests-0001")
NHS, UPN, LA_ID, LA_SYSTEM = "999 000 0018", "A201999926999", "TEST-CHILD-0001", "E09000999"  # UPN: school 9999
NAME = {"family_name": "Example", "given_name": "Testchild", "birth_date": "2016-05-14", "postcode": "ZZ1 1ZZ"}
SECRETS = ("9990000018", "999 000 0018", UPN, LA_ID, "Example", "Testchild", "2016-05-14", "ZZ1 1ZZ")


def _intake(child: dict, system: str = LA_SYSTEM) -> tuple[str, list]:
    """The token and identities intake gives a child record (broker/pipeline/identify.py, the real code)."""
    event = {"subject": {"child": child}, "source": {"agency": "social_care", "system": system, "record_id": "r1"}}
    linked, ids = link_identified(event, KEY)
    return linked["subject"]["linkage"]["token"], ids


@pytest.fixture
def world(sqlite_store: AuditStore, tmp_path: Path):
    """Health knew the child by NHS number; the LA's record carrying the NHS number, UPN and LA id tied them. An
    earlier school record streamed under the UPN's token, now folded into the child's."""
    child_token, ids = _intake({"nhs_number": NHS, "upn": UPN, "la_child_id": LA_ID})
    upn_token = next(i.token for i in ids if i.kind == "upn")
    register = IdentityRegister(tmp_path / "identities.sqlite")
    register.apply([Resolution(child_token, tuple(ids))], "2026-03-01T09:00:00Z")
    sqlite_store.append([
        audit_record("event_published", time="2026-03-02T09:00:00Z", actor="intake:health", agency="health",
                     event_id=_eid(1), event_type="health.admission", subject=child_token, content_sha256="5f" * 32),
        audit_record("event_published", time="2026-02-02T09:00:00Z", actor="intake:education", agency="education",
                     event_id=_eid(2), event_type="education.attendance_concern", subject=upn_token,
                     content_sha256="5f" * 32)])
    ig = build_ig_app(sqlite_store, tmp_path, register.aliases, KEY)
    with TestClient(ig.app) as client:
        yield client, ig, sqlite_store, child_token, upn_token
    register.close()


def _find(client: TestClient, ig, **body):
    return client.post("/v1/ig/children/find", headers={"Authorization": f"Bearer {ig.ig_key}"},
                       json={"reason": "subject_access_request", "reference": "SAR-2026-0042", **body})


def _lookups(store: AuditStore) -> list[dict]:
    return [e["record"] for e in store.search(kind="admin_action", limit=100)
            if e["record"].get("action") == "ig.find_child"]


@pytest.mark.parametrize("given", [{"nhs_number": NHS}, {"nhs_number": "9990000018"}, {"upn": UPN},
                                   {"la_child_id": LA_ID, "la_system": LA_SYSTEM}])
def test_each_identifier_finds_the_child_and_every_token_it_carried(world, given: dict) -> None:
    client, ig, store, child_token, upn_token = world
    response = _find(client, ig, **given)
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["subject"] == child_token and upn_token in found["tokens"] and found["recorded"] is True
    assert set(found["tokens_with_records"]) == {child_token, upn_token}
    (logged,) = _lookups(store)
    assert logged["actor"].startswith("ig_auditor:") and ig.ig_key not in logged["actor"]  # who: role + key id
    assert logged["subject"] == child_token and "subject access request" in logged["reason"]
    assert "SAR-2026-0042" in logged["reason"] and logged["target"].startswith("by:")
    everything = response.text + json.dumps([e for e in store.entries()])
    assert not [s for s in SECRETS if s in everything]


def test_the_lookup_requires_a_reason_from_the_list(world) -> None:
    client, ig, store, *_ = world
    missing = client.post("/v1/ig/children/find", headers={"Authorization": f"Bearer {ig.ig_key}"},
                          json={"nhs_number": NHS})
    assert missing.status_code == 422 and "9990000018" not in missing.text and "999 000" not in missing.text
    unknown = _find(client, ig, nhs_number=NHS, reason="curiosity")
    assert unknown.status_code == 400 and "reason: required, one of" in unknown.text
    assert _lookups(store) == []  # no tokens computed, nothing looked at


@pytest.mark.parametrize(("given", "names"), [
    ({"nhs_number": "9990000019"}, "nhs_number: not a valid NHS number"),
    ({"la_child_id": LA_ID}, "la_system: required with la_child_id"),
    ({"family_name": "Example", "birth_date": "2016-05-14"}, "given_name, postcode: required for a lookup by name"),
    ({**NAME, "birth_date": "14/05/2016"}, "birth_date: not an ISO date"),
    ({}, "give nhs_number, upn"),
])
def test_unusable_lookups_name_the_field_never_the_value(world, given: dict, names: str) -> None:
    client, ig, *_ = world
    response = _find(client, ig, **given)
    assert response.status_code == 400 and names in response.json()["detail"]
    assert not [s for s in (*SECRETS, "9990000019", "14/05/2016") if s in response.text]


def test_name_birth_date_and_postcode_find_the_probable_match_token_and_say_what_it_cannot(world) -> None:
    client, ig, *_ = world
    token, _ = _intake({"family_name": "Example", "given_names": ["Testchild"], "date_of_birth": "2016-05-14",
                        "addresses": [{"postcode": "ZZ1 1ZZ"}]})
    found = _find(client, ig, **{**NAME, "family_name": "EXAMPLE", "postcode": "zz11zz"}).json()
    assert found["subject"] == token and found["matched_by"] == ["name_dob_postcode"]
    assert "never links it" in found["note"] and found["recorded"] is False


def test_identifiers_the_register_holds_under_two_children_are_refused(world, tmp_path: Path) -> None:
    """The register refused to link them (a conflict for a person to review): a lookup must not pick one."""
    client, ig, store, *_ = world
    response = _find(client, ig, nhs_number="9990000026", upn=UPN)  # another child's NHS number, this child's UPN
    assert response.status_code == 200  # the broker never saw that NHS number: it does not split the answer
    other, ids = _intake({"nhs_number": "9990000026"})
    register = IdentityRegister(tmp_path / "identities.sqlite")
    register.apply([Resolution(other, tuple(ids))], "2026-03-03T09:00:00Z")
    register.close()
    store.append([audit_record("event_published", time="2026-03-03T09:00:00Z", actor="intake:health",
                               agency="health", event_id=_eid(3), event_type="health.admission", subject=other,
                               content_sha256="5f" * 32)])
    refused = _find(client, ig, nhs_number="9990000026", upn=UPN)
    assert refused.status_code == 400 and "different children" in refused.text
    assert "9990000026" not in refused.text


def test_without_the_linkage_key_the_lookup_is_unavailable(sqlite_store: AuditStore, tmp_path: Path) -> None:
    ig = build_ig_app(sqlite_store, tmp_path)
    with TestClient(ig.app) as client:
        response = _find(client, ig, nhs_number=NHS)
    assert response.status_code == 503 and "linkage key" in response.text


def test_the_query_never_prints_an_identifier() -> None:
    q = ChildQuery(reason="ig_audit", nhs_number=NHS, family_name="Example")
    assert not [s for s in SECRETS if s in repr(q)] and "nhs_number" in repr(q)
    assert lookup(ChildQuery(reason="ig_audit", nhs_number=NHS), KEY).bases == ("nhs_number",)


def test_the_cli_prompts_for_the_identifier_and_audits_the_lookup(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from broker.audit.store import open_audit_store
    from broker.cli.audit import app
    from broker.secrets import linkage_key

    key = linkage_key(tmp_path, 1, create=True)  # the data directory's own key, as intake would use it
    event = {"subject": {"child": {"nhs_number": NHS, "upn": UPN}},
             "source": {"agency": "health", "system": "RXX", "record_id": "r1"}}
    linked, ids = link_identified(event, key)
    child = linked["subject"]["linkage"]["token"]
    register = IdentityRegister(tmp_path / "identities.sqlite")
    register.apply([Resolution(child, tuple(ids))], "2026-03-01T09:00:00Z")
    register.close()
    open_audit_store(tmp_path, create_key=True).close()
    monkeypatch.setenv("MASH_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    result = runner.invoke(app, ["find-child", "--reason", "ig_audit", "--by", "upn"], input=f"{UPN}\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["subject"] == child
    assert UPN not in result.output  # prompted with hidden input: not echoed
    store = open_audit_store(tmp_path)
    (logged,) = _lookups(store)
    store.close()
    assert logged["actor"].startswith("cli:uid") and logged["subject"] == child and logged["target"] == "by:upn"
    bad = runner.invoke(app, ["find-child", "--reason", "ig_audit", "--by", "nhs_number"], input="9990000019\n")
    assert bad.exit_code == 2 and "nhs_number: not a valid NHS number" in bad.output
    assert "9990000019" not in bad.output
