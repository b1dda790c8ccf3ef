"""Recorded determinations through the real service on Kafka: the decisions API that records s47(9) requests and
adult-at-risk determinations (roles, unknown children, bad input, audit), and the facts they and the identity
register's dates of birth give the share stage:

- a looked-after episode (SSDA903 episode rows carry no date of birth) reaches the hub under an s17 rule for
  children, because the child's 903 header, sent first, carried the date of birth, and the decision says so;
- a health partner's record flows to the hub under the s47(9) rule only once the local authority has recorded
  calling upon that partner;
- after the child is shredded, none of these facts remains: not in the registers, not in their files, not in a
  decision about the child's next record.

Fictitious children: NHS numbers of the 999 range, LA child ids TESTLAC.., invented dates of birth.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from broker.cli.decisions import app as decisions_app
from broker.policy.engine import REGISTER_AGE_NOTE
from broker.service.facts import batch_facts, read_facts
from tests.integration.service import Service, running_service

pytestmark = pytest.mark.integration
HUB = "test_hub"
LA, TRUST = "test-csc", "test-trust"
PROTOCOL = """# Recorded determinations tests: fictitious partnership.
protocol:
  id: determinations-test-isp
  version: "0.1.0"
  title: Recorded determinations test protocol
  effective_from: "2026-01-01"
purposes:
  triage: Hub triage in tests
partners:
  - {id: test-csc, name: Test Children's Services, agency: social_care, role: safeguarding_partner,
     source_systems: ["999"]}
  - {id: test-trust, name: Test NHS Trust, agency: health, role: safeguarding_partner, source_systems: ["Y99901"]}
  - {id: test-police, name: Test Police, agency: police, role: safeguarding_partner}
subscribers:
  - {name: test_hub, partner: test-csc, role: mash_hub, purposes: [triage], key_file: keys/test_hub.pub,
     key_suite: x25519, delivery: http-pull, confidentiality: social_work_professional}
rules:
  - id: hub-care-episodes-s17
    description: The hub receives a child's looked-after episodes under s17 (a power, public task).
    subscribers: [test_hub]
    event_types: ["social_care.*"]
    source_agencies: [social_care]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_e, uk_gdpr_art9_2_g, dpa2018_sch1_para6, children_act_1989_s17]
    conditions: {subject_under_18: true}
    fields:
      - classifications: [contact, location]
        action: withhold
      - classifications: [identity, demographic, social_care]
        action: release
  - id: hub-health-s47-9
    description: A health partner the local authority called upon under s47(9) assists its s47 enquiry.
    subscribers: [test_hub]
    event_types: ["health.*"]
    source_agencies: [health]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_c, uk_gdpr_art9_2_g, dpa2018_sch1_para6, children_act_1989_s47_9]
    conditions: {s47_request: true}
    fields:
      - classifications: [contact]
        action: withhold
      - classifications: [identity, demographic, health]
        action: release
"""
HEADER = "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\r\n{child},2,{dob},WBRI,,,\r\n"
EPISODE = ("CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN\r\n"
           "{child},{day}/03/2026,S,C2,N1,U1,PR1,,,,ZZ99 3AA,ZZ99 3AB,SC999999\r\n")
runner = CliRunner()


def attendance(control_id: str, nhs: str, born: str) -> bytes:
    return (f"MSH|^~\\&|PAS|Y99901^1.2.3^ISO|MASH|MASH|20261101100000||ADT^A04^ADT_A01|{control_id}|P|2.4\r"
            f"EVN|A04|20261101100000\rPID|1||{nhs}^^^NHS^NH||Example^Testchild||{born}|F\rPV1|1|E\r").encode()


@pytest.fixture(scope="module")
async def svc(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    """One service for the module: each test works with children of its own."""
    tmp = tmp_path_factory.mktemp("determinations")
    (tmp / "determinations-protocol.yaml").write_text(PROTOCOL)
    async with running_service(tmp, kafka_bootstrap, protocol=str(tmp / "determinations-protocol.yaml")) as service:
        yield service


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def eventually(check: Any, attempts: int = 600) -> Any:
    for _ in range(attempts):
        found = check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def post(svc: Service, http: httpx.AsyncClient, agency: str, body: bytes) -> list[str]:
    content_type = "text/csv" if agency == "social_care" else "x-application/hl7-v2+er7"
    headers = svc.headers(f"intake:{agency}", **{"Content-Type": content_type})
    if agency == "social_care":
        headers["X-Source-System"] = "999"
    r = await http.post(f"{svc.base_url}/v1/records/{agency}", content=body, headers=headers)
    assert r.status_code == 202, r.text
    return [e["event_id"] for e in r.json()["events"]]


def token_of(svc: Service, event_id: str) -> str:
    """The child's token, from the audit log's record of the event's publication (the indexer writes it)."""
    def found() -> str | None:
        hits = svc.runtime.audit_store.search(kind="event_published", event_id=event_id, limit=1)
        return hits[0]["record"]["subject"] if hits else None
    return found()  # type: ignore[return-value]


async def token_for(svc: Service, event_id: str) -> str:
    return await eventually(lambda: token_of(svc, event_id))


async def decision(svc: Service, event_id: str) -> dict[str, Any]:
    """The share stage's decision for the hub about one event, once it is made."""
    def found() -> dict[str, Any] | None:
        hits = svc.runtime.audit_store.search(kind="decision", subscriber=HUB, event_id=event_id, limit=1)
        return hits[0]["record"] if hits else None
    return await eventually(found)


def determination_audit(svc: Service, subject: str) -> list[dict[str, Any]]:
    """The child's `determination` audit records, oldest first."""
    found = svc.runtime.audit_store.search(kind="determination", subject=subject, limit=100)
    return [e["record"] for e in sorted(found, key=lambda e: e["seq"])]


async def known_child(svc: Service, http: httpx.AsyncClient, nhs: str, born: str = "20150304") -> str:
    [event_id] = await post(svc, http, "health", attendance(f"CTL{uuid.uuid4().hex[:8]}", nhs, born))
    return await token_for(svc, event_id)


def url(svc: Service, path: str) -> str:
    return f"{svc.base_url}/v1/decisions{path}"


# --- the API -------------------------------------------------------------------------------------------------------
async def test_only_the_local_authoritys_decision_maker_or_an_admin_records_an_s47_request(svc, http) -> None:
    token = await known_child(svc, http, "9990000026")
    where = url(svc, f"/subjects/{token}/s47-requests")
    body = {"partners": [TRUST], "enquiry_ref": "S47-2026-0001"}
    for caller in (f"subscriber:{HUB}", "intake:health", "ig_auditor"):
        r = await http.post(where, json=body, headers=svc.headers(caller))
        assert r.status_code == 403, (caller, r.text)
    r = await http.post(where, json={**body, "requested_by": LA}, headers=svc.headers(f"decision_maker:{TRUST}"))
    assert r.status_code == 403, r.text  # the trust's decision maker cannot speak for the local authority
    r = await http.post(where, json=body, headers=svc.headers(f"decision_maker:{TRUST}"))
    assert r.status_code == 422 and "requested_by" in r.text  # and the trust makes no s47 enquiries
    r = await http.post(where, json=body, headers=svc.headers("admin"))
    assert r.status_code == 422 and "requested_by" in r.text  # an admin must say for which authority
    assert svc.runtime.determinations.listed([token]) == [] and determination_audit(svc, token) == []

    r = await http.post(where, json=body, headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["requested_by"] == LA and made["partners"] == [TRUST] and made["active"]
    assert made["recorded_by"].startswith(f"decision_maker:{LA}:k_")
    r = await http.post(where, json={**body, "requested_by": LA}, headers=svc.headers("admin"))
    assert r.status_code == 201 and r.json()["recorded_by"].startswith("admin:k_")

    records = await eventually(lambda: len(determination_audit(svc, token)) >= 2 and determination_audit(svc, token))
    first = next(r for r in records if r["target"] == made["id"])
    assert first["actor"] == made["recorded_by"]
    assert first["determination"] == {"type": "s47_request", "status": "recorded", "id": made["id"],
                                      "requested_by": LA, "partners": [TRUST]}
    assert "S47-2026-0001" not in str(records)  # the enquiry's reference is the LA's identifier: not audited

    listing = await http.get(url(svc, f"/subjects/{token}/determinations"), headers=svc.headers(f"decision_maker:{LA}"))
    assert listing.status_code == 200 and listing.json()["count"] == 2


async def test_a_request_is_withdrawn_once_by_its_authority_and_the_audit_says_so(svc, http) -> None:
    token = await known_child(svc, http, "9990000034")
    r = await http.post(url(svc, f"/subjects/{token}/s47-requests"), json={"partners": [TRUST]},
                        headers=svc.headers(f"decision_maker:{LA}"))
    request_id = r.json()["id"]
    withdraw = url(svc, f"/s47-requests/{request_id}/withdraw")
    r = await http.post(withdraw, json={"reason": "enquiry_concluded"}, headers=svc.headers(f"decision_maker:{TRUST}"))
    assert r.status_code == 404  # not the trust's request: as if it did not exist
    r = await http.post(withdraw, json={"reason": "because I said so"}, headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 422 and "because I said so" not in r.text
    r = await http.post(withdraw, json={"reason": "enquiry_concluded"}, headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 200 and not r.json()["active"] and r.json()["end_reason"] == "enquiry_concluded"
    r = await http.post(withdraw, json={"reason": "enquiry_concluded"}, headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 409
    records = await eventually(lambda: len(determination_audit(svc, token)) >= 2 and determination_audit(svc, token))
    assert [r["determination"]["status"] for r in records] == ["recorded", "withdrawn"]
    assert records[1]["determination"]["reason_code"] == "enquiry_concluded"


async def test_an_unknown_child_is_404_and_nothing_is_recorded(svc, http) -> None:
    stranger = "lt1_" + "Z" * 32  # well formed, never seen
    calls = [("POST", f"/subjects/{stranger}/s47-requests", {"partners": [TRUST]}, f"decision_maker:{LA}"),
             ("PUT", f"/subjects/{stranger}/adult-at-risk", {"at_risk": True, "reason": "care_act_s42_enquiry"},
              f"decision_maker:{TRUST}"),
             ("POST", f"/subjects/{stranger}/adult-at-risk/withdraw", {"reason": "recorded_in_error"},
              f"decision_maker:{TRUST}"),
             ("GET", f"/subjects/{stranger}/determinations", None, f"decision_maker:{LA}")]
    for method, path, body, caller in calls:
        r = await http.request(method, url(svc, path), json=body, headers=svc.headers(caller))
        assert r.status_code == 404, (path, r.text)
        assert stranger not in r.text
    await asyncio.sleep(0.5)  # give the indexer the chance to store anything wrongly emitted
    assert svc.runtime.determinations.listed([stranger]) == [] and determination_audit(svc, stranger) == []


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/s47-requests", {"partners": [TRUST], "enquiry_ref": "9990000018"}, "enquiry_ref"),  # an NHS number
    ("/s47-requests", {"partners": [TRUST], "enquiry_ref": "Testchild Example"}, "enquiry_ref"),  # a name
    ("/s47-requests", {"partners": []}, "partners"),
    ("/s47-requests", {"partners": ["Testchild Example"]}, "partners"),
    ("/s47-requests", {"partners": [TRUST], "notes": "Testchild Example said"}, "notes"),
    ("/adult-at-risk", {"at_risk": True, "reason": "Testchild Example is at risk"}, "reason"),
    ("/adult-at-risk", {"at_risk": True, "reason": "care_act_s42_enquiry", "reference": "9990000018"}, "reference"),
])
async def test_bad_input_is_422_naming_the_field_never_the_value(svc, http, path, body, field) -> None:
    token = await known_child(svc, http, "9990000042")
    method = "POST" if path == "/s47-requests" else "PUT"
    caller = f"decision_maker:{LA}" if path == "/s47-requests" else f"decision_maker:{TRUST}"
    r = await http.request(method, url(svc, f"/subjects/{token}{path}"), json=body, headers=svc.headers(caller))
    assert r.status_code == 422, r.text
    assert field in r.text
    assert "9990000018" not in r.text and "Testchild" not in r.text
    assert svc.runtime.determinations.listed([token]) == []


async def test_the_law_on_who_must_assist_and_on_reasons_is_checked(svc, http) -> None:
    token = await known_child(svc, http, "9990000050")
    r = await http.post(url(svc, f"/subjects/{token}/s47-requests"), json={"partners": ["test-police", TRUST, LA]},
                        headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 422
    assert "partners[0]" in r.text and "s47(11)" in r.text and "partners[2]" in r.text  # police; the LA itself
    r = await http.post(url(svc, f"/subjects/{token}/s47-requests"), json={"partners": ["nobody-here"]},
                        headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 422 and "partners[0]: not a partner" in r.text and "nobody-here" not in r.text
    r = await http.put(url(svc, f"/subjects/{token}/adult-at-risk"),
                       json={"at_risk": False, "reason": "care_act_s42_enquiry"},
                       headers=svc.headers(f"decision_maker:{TRUST}"))
    assert r.status_code == 422 and "reason" in r.text  # an at-risk reason for a not-at-risk determination
    assert svc.runtime.determinations.listed([token]) == []


async def test_an_adult_at_risk_determination_is_a_decision_makers_superseded_and_withdrawn(svc, http) -> None:
    token = await known_child(svc, http, "9990000069", born="19900101")
    where = url(svc, f"/subjects/{token}/adult-at-risk")
    body = {"at_risk": True, "reason": "care_act_s42_enquiry", "reference": "ASC-1234"}
    for caller in ("admin", f"subscriber:{HUB}", "ig_auditor"):
        r = await http.put(where, json=body, headers=svc.headers(caller))
        assert r.status_code == 403, caller
    r = await http.put(where, json=body, headers=svc.headers(f"decision_maker:{TRUST}"))
    assert r.status_code == 200 and r.json()["at_risk"] is True
    first = r.json()["id"]
    r = await http.put(where, json={"at_risk": False, "reason": "criteria_not_met"},
                       headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 200
    assert svc.runtime.determinations.adult_at_risk(token).at_risk is False
    r = await http.post(f"{where}/withdraw", json={"reason": "recorded_in_error"},
                        headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 200 and svc.runtime.determinations.adult_at_risk(token) is None
    r = await http.post(f"{where}/withdraw", json={"reason": "recorded_in_error"},
                        headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 409
    records = await eventually(lambda: len(determination_audit(svc, token)) >= 4 and determination_audit(svc, token))
    assert [(r["determination"]["status"], r["determination"]["reason_code"]) for r in records] == [
        ("recorded", "care_act_s42_enquiry"), ("superseded", "superseded"), ("recorded", "criteria_not_met"),
        ("withdrawn", "recorded_in_error")]
    assert records[1]["determination"]["id"] == first and "ASC-1234" not in str(records)


async def test_the_cli_records_and_lists_through_the_api(svc, http) -> None:
    token = await known_child(svc, http, "9990000077")
    key = svc.credentials[f"decision_maker:{LA}"]
    made = await asyncio.to_thread(runner.invoke, decisions_app, [
        "s47-request", token, "--partner", TRUST, "--enquiry-ref", "S47-77", "--url", svc.base_url, "--key", key])
    assert made.exit_code == 0, made.output
    assert made.output.startswith("s47_request\t") and TRUST in made.output
    refused = await asyncio.to_thread(runner.invoke, decisions_app, [
        "s47-request", token, "--partner", "test-police", "--url", svc.base_url, "--key", key])
    assert refused.exit_code == 1 and "s47(11)" in refused.output
    listed = await asyncio.to_thread(runner.invoke, decisions_app, [
        "determinations", token, "--url", svc.base_url, "--key", key])
    assert listed.exit_code == 0 and listed.output.count("s47_request\t") == 1


async def test_a_closed_case_ends_the_s47_request_for_good_and_the_audit_says_so(svc, http) -> None:
    rt = svc.runtime
    token = await known_child(svc, http, "9990000093")
    r = await http.post(url(svc, f"/subjects/{token}/s47-requests"), json={"partners": [TRUST]},
                        headers=svc.headers(f"decision_maker:{LA}"))
    request_id = r.json()["id"]
    assert (await batch_facts(rt, [token])).for_event(token, None).s47_requested_of == {TRUST}
    rt.cases.set(token, False, str(uuid.uuid4()))  # what the share stage writes when a closure event arrives
    assert (await batch_facts(rt, [token])).determined == {}
    ended = rt.determinations.s47_request(request_id)
    assert ended.end_reason == "case_closed" and ended.ended_by == "share"
    rt.cases.set(token, True, str(uuid.uuid4()))  # reopened: a new enquiry needs a new request
    assert read_facts(rt, [token]).determined == {}
    records = await eventually(lambda: len(determination_audit(svc, token)) >= 2 and determination_audit(svc, token))
    assert records[-1]["actor"] == "share" and records[-1]["determination"]["status"] == "ended"
    assert records[-1]["determination"]["reason_code"] == "case_closed"


# --- the facts in decisions, and erasure ---------------------------------------------------------------------------
async def test_register_facts_decide_shares_and_a_shred_leaves_none_of_them(svc, http) -> None:
    rt = svc.runtime
    # (a) the 903 header (with the date of birth), then an episode for the same child (without one)
    await post(svc, http, "social_care", HEADER.format(child="TESTLAC0701", dob="09/07/2014").encode())
    [episode] = await post(svc, http, "social_care", EPISODE.format(child="TESTLAC0701", day="01").encode())
    decided = await decision(svc, episode)
    assert decided["outcome"] == "deliver", decided["reason"]
    assert decided["rule_id"] == "hub-care-episodes-s17" and REGISTER_AGE_NOTE in decided["reason"]
    looked_after = await token_for(svc, episode)
    assert read_facts(rt, [looked_after]).birth_dates[looked_after].isoformat() == "2014-07-09"
    register_files = [p for p in svc.settings.data_dir.glob("identities.sqlite*")]
    assert register_files and not any(b"2014-07-09" in p.read_bytes() for p in register_files)  # sealed, not clear

    # (b) a health partner's record: withheld until the local authority calls upon the partner under s47(9)
    [before] = await post(svc, http, "health", attendance("CTL0702A", "9990000085", "20130211"))
    withheld = await decision(svc, before)
    assert withheld["outcome"] == "withhold" and "s47(9)" in withheld["reason"]
    patient = await token_for(svc, before)
    r = await http.post(url(svc, f"/subjects/{patient}/s47-requests"), json={"partners": [TRUST]},
                        headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 201, r.text
    [after] = await post(svc, http, "health", attendance("CTL0702B", "9990000085", "20130211"))
    shared = await decision(svc, after)
    assert shared["outcome"] == "deliver", shared["reason"]
    assert shared["rule_id"] == "hub-health-s47-9" and "children_act_1989_s47_9" in shared["lawful_basis"]
    opened = await hub_delivery(svc, http, after)
    assert opened["subject"]["linkage"]["token"] == patient

    # (c) both children shredded: no date of birth, no request, in the registers or their files
    for token in (looked_after, patient):
        r = await http.post(f"{svc.base_url}/v1/admin/keys/shred/{token}", headers=svc.headers("admin"))
        assert r.status_code == 200, r.text
    for token in (looked_after, patient):
        tokens = rt.identities.aliases(token)
        assert rt.identities.sealed_birth_dates(tokens) == {} and read_facts(rt, [token]).birth_dates == {}
        assert rt.determinations.listed(tokens) == [] and read_facts(rt, [token]).determined == {}
    data = svc.settings.data_dir
    for name in ("identities.sqlite", "determinations.sqlite"):
        for path in data.glob(name + "*"):
            assert b"2014-07-09" not in path.read_bytes() and b"2013-02-11" not in path.read_bytes(), path.name
    r = await http.post(url(svc, f"/subjects/{patient}/s47-requests"), json={"partners": [TRUST]},
                        headers=svc.headers(f"decision_maker:{LA}"))
    assert r.status_code == 409  # nothing more is recorded about an erased child
    # the child's next record is new data: decided with no remembered date of birth and no request
    [later_episode] = await post(svc, http, "social_care", EPISODE.format(child="TESTLAC0701", day="15").encode())
    later = await decision(svc, later_episode)
    assert later["outcome"] == "withhold" and "age on the event date is unknown" in later["reason"]
    [later_visit] = await post(svc, http, "health", attendance("CTL0702C", "9990000085", "20130211"))
    assert (await decision(svc, later_visit))["outcome"] == "withhold"


async def hub_delivery(svc: Service, http: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    client = svc.client_for(HUB)
    for _ in range(200):
        r = await http.get(f"{svc.base_url}/v1/subscribers/{HUB}/events", params={"limit": 1000},
                           headers=svc.headers(f"subscriber:{HUB}"))
        assert r.status_code == 200, r.text
        for d in r.json()["deliveries"]:
            if d["event_id"] == event_id:
                return client.open(base64.b64decode(d["sealed"]))
        await asyncio.sleep(0.1)
    raise AssertionError("not delivered to the hub")


def test_the_protocol_compiles(tmp_path: Path) -> None:
    """The module's protocol is one the compiler accepts (a failure here explains the service not starting)."""
    from broker.policy import parse_protocol

    assert parse_protocol(PROTOCOL, "determinations-protocol.yaml", base_dir=tmp_path).revision == \
        "determinations-test-isp@0.1.0"
