"""Erasure through the real service and Kafka: shred by API and by CLI, then re-read every subscriber's stream from
the start. Nothing about the erased child is served again, the others still are; the `person.erased` notice reaches
exactly the subscribers that had received the child; a resend of the child's old record is refused; the CLI's shred
is in the audit log under its operator.

Fictitious children (test names, NHS numbers of the test range). The protocol gives the hub person and health
events, test_other health events only, so that a child known only by a Patient record reaches the hub alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from broker.api.principal import cli_actor
from broker.cli.keys import app as keys_app
from broker.pipeline.erasure import ERASED_RESEND
from broker.service.messages import decode
from tests.integration.service import Service, running_service
from tests.integration.topics import read_topic

pytestmark = pytest.mark.integration
FHIR = "application/fhir+json"
PROTOCOL = """# Erasure tests: fictitious partnership, two subscribers.
protocol:
  id: erasure-test-isp
  version: "0.1.0"
  title: Erasure test protocol
  effective_from: "2026-01-01"
purposes:
  triage: Hub triage in tests
partners:
  - {id: test-csc, name: Test Children's Services, agency: social_care, role: safeguarding_partner}
subscribers:
  - {name: test_hub, partner: test-csc, role: mash_hub, purposes: [triage], key_file: keys/test_hub.pub,
     key_suite: x25519, delivery: http-pull}
  - {name: test_other, partner: test-csc, role: early_help, purposes: [triage], key_file: keys/test_other.pub,
     key_suite: x25519, delivery: http-pull}
rules:
  - id: hub-person-and-health
    description: The hub receives identity and health events; contact details withheld, dates of birth year-only.
    subscribers: [test_hub]
    event_types: ["person.*", "health.*"]
    source_agencies: [health, education, social_care]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_e, uk_gdpr_art9_2_g, dpa2018_sch1_para18, children_act_1989_s17]
    para18_reason: consent_would_prejudice_protection
    conditions: {subject_under_18: true}
    fields:
      - paths: ["subject.child.date_of_birth"]
        action: mask
        mask: year_only
      - classifications: [contact]
        action: withhold
      - classifications: [identity, location, demographic, health, social_care]
        action: release
  - id: other-health-only
    description: Early help receives health events only.
    subscribers: [test_other]
    event_types: ["health.*"]
    source_agencies: [health]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_e, uk_gdpr_art9_2_g, dpa2018_sch1_para18, children_act_1989_s17]
    para18_reason: consent_would_prejudice_protection
    conditions: {subject_under_18: true}
    fields:
      - classifications: [identity, health]
        action: release
"""


OTHER_HEALTH_RULE = """    event_types: ["health.*"]
    source_agencies: [health]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_e, uk_gdpr_art9_2_g, dpa2018_sch1_para18, children_act_1989_s17]
    para18_reason: consent_would_prejudice_protection
    conditions: {subject_under_18: true}
    fields:
      - classifications: [identity, health]"""
# test_other takes every person event and no condition reads an encrypted field: a shredded event would pass
OTHER_PERSON_RULE = """    event_types: ["person.*"]
    source_agencies: [health]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_e, children_act_2004_s11]
    fields:
      - classifications: [identity]"""


def protocol_file(tmp_path: Path, *, other_takes_persons: bool = False) -> Path:
    """A protocol of the test's own: Alpha (a Patient) reaches the hub alone, Beta (and a visit) both; or, with
    `other_takes_persons`, test_other receives every person event, unconditionally."""
    path = tmp_path / "erasure-protocol.yaml"
    path.write_text(PROTOCOL.replace(OTHER_HEALTH_RULE, OTHER_PERSON_RULE) if other_takes_persons else PROTOCOL)
    return path


def patient(pid: str, nhs: str, family: str, born: str) -> bytes:
    return json.dumps({"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": born,
                       "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
                       "name": [{"family": family, "given": ["Testchild"]}]}).encode()


ALPHA = patient("a1", "9434765919", "Alphaexample", "2014-03-04")  # a Patient: reaches the hub only
BETA = patient("b2", "9434765870", "Betaexample", "2015-03-04")  # a Patient and an attendance: both subscribers
BETA_VISIT = (b"MSH|^~\\&|PAS|RXX01^1.2.3^ISO|MASH|MASH|20240301101500||ADT^A04^ADT_A01|ERASE0001|P|2.4\r"
              b"EVN|A04|20240301101500\rPID|1||9434765870^^^NHS^NH||Betaexample^Testchild||20150304|F\r"
              b"PV1|1|E\r")


async def post(svc: Service, http: httpx.AsyncClient, body: bytes) -> httpx.Response:
    content_type = "x-application/hl7-v2+er7" if body.startswith(b"MSH") else FHIR
    return await http.post(f"{svc.base_url}/v1/records/health", content=body,
                           headers=svc.headers("intake:health", **{"Content-Type": content_type}))


async def pull_all(svc: Service, http: httpx.AsyncClient, subscriber: str, after: str | None = None,
                   ) -> tuple[list[dict[str, Any]], str]:
    """Every delivery served after `after` (None: the acknowledged cursor), opened; and the cursor after them."""
    client = svc.client_for(subscriber)
    params: dict[str, Any] = {"limit": 1000}
    if after is not None:
        params["after"] = after
    r = await http.get(f"{svc.base_url}/v1/subscribers/{subscriber}/events", params=params,
                       headers=svc.headers(f"subscriber:{subscriber}"))
    assert r.status_code == 200, r.text
    page = r.json()
    return [client.open(base64.b64decode(d["sealed"])) for d in page["deliveries"]], page["next_cursor"]


async def wait_for(svc: Service, http: httpx.AsyncClient, subscriber: str, predicate: Any,
                   attempts: int = 100) -> list[dict[str, Any]]:
    """Pull from the start until `predicate(opened deliveries)` holds."""
    for _ in range(attempts):
        opened, _ = await pull_all(svc, http, subscriber)
        if predicate(opened):
            return opened
        await asyncio.sleep(0.1)
    raise AssertionError(f"{subscriber}: condition not met; served {[e['event_type'] for e in opened]}")


async def sse_events(svc: Service, http: httpx.AsyncClient, subscriber: str, seconds: float = 3.0,
                     ) -> list[dict[str, Any]]:
    """What the server-sent events stream serves from the start within `seconds`, opened."""
    client, out = svc.client_for(subscriber), []
    try:
        async with asyncio.timeout(seconds):
            async with http.stream("GET", f"{svc.base_url}/v1/subscribers/{subscriber}/stream",
                                   headers=svc.headers(f"subscriber:{subscriber}")) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        out.append(client.open(base64.b64decode(orjson.loads(line[6:])["sealed"])))
    except TimeoutError:
        pass
    return out


def tokens_of(events: list[dict[str, Any]]) -> dict[str, str]:
    """family name -> token, from opened person events."""
    return {e["subject"]["child"]["family_name"]: e["subject"]["linkage"]["token"] for e in events
            if e["event_type"] == "person.identified"}


def about(events: list[dict[str, Any]], token: str) -> list[dict[str, Any]]:
    return [e for e in events if e["subject"]["linkage"]["token"] == token]


def notices(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == "person.erased"]


async def start_two_children(svc: Service, http: httpx.AsyncClient) -> dict[str, str]:
    for body in (ALPHA, BETA, BETA_VISIT):
        r = await post(svc, http, body)
        assert r.status_code == 202, r.text
    hub = await wait_for(svc, http, "test_hub", lambda e: len(e) >= 3)
    await wait_for(svc, http, "test_other", lambda e: len(e) >= 1)
    return tokens_of(hub)


async def test_api_shred_hides_the_child_tells_its_recipients_and_refuses_its_resend(kafka_bootstrap, tmp_path):
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(protocol_file(tmp_path))) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        tokens = await start_two_children(svc, http)
        alpha = tokens["Alphaexample"]
        r = await http.post(f"{svc.base_url}/v1/admin/keys/shred/{alpha}", headers=svc.headers("admin"))
        assert r.status_code == 200, r.text
        assert r.json()["tokens"] == [alpha] and r.json()["events_erased"] == 1
        # the erasure register holds the child, the time and the actor: the admin who shredded, as the audit says
        [(token, at, actor)] = svc.runtime.erasures.db.query("SELECT token, erased_at, actor FROM erased")
        assert token == alpha and at == r.json()["erased_at"]
        for _ in range(100):
            shreds = [e["record"] for e in svc.runtime.audit_store.search(kind="key_shred", subject=alpha)]
            if shreds:
                break
            await asyncio.sleep(0.1)
        assert [(x["actor"], x["time"]) for x in shreds] == [(actor, at)] and actor not in ("", "share", "erasure")

        # the hub is told, once; test_other, which never received Alpha, is not
        hub = await wait_for(svc, http, "test_hub", lambda e: notices(e))
        [notice] = notices(hub)
        assert notice["payload"] == {"record_kind": "erasure notice", "erased_tokens": [alpha],
                                     "erased_at": r.json()["erased_at"]}
        assert notice["subject"]["child"] == {} and notice["source"]["agency"] == "broker"
        # re-read from the start: nothing about Alpha but the notice; the other child still served
        assert about(hub, alpha) == [notice]
        assert [e["event_type"] for e in about(hub, tokens["Betaexample"])] == ["person.identified",
                                                                                 "health.urgent_care_attendance"]
        other = await wait_for(svc, http, "test_other", lambda e: len(e) >= 1)  # a pull may come before its read
        assert notices(other) == [] and len(other) == 1
        assert [e["event_type"] for e in about(await sse_events(svc, http, "test_hub"), alpha)] == ["person.erased"]

        # a resend of Alpha's record (the same event id) is refused, value-free, and nothing is published
        before = len(await read_topic(kafka_bootstrap, svc.settings.topics.events))
        r = await post(svc, http, ALPHA)
        assert r.status_code == 422, r.text
        assert [x["reason"] for x in r.json()["rejections"]] == [ERASED_RESEND]
        assert b"Alphaexample" not in r.content and b"9434765919" not in r.content
        assert len(await read_topic(kafka_bootstrap, svc.settings.topics.events)) == before

        # a new record about Alpha after the erasure is new processing: accepted and delivered
        r = await post(svc, http, patient("a1", "9434765919", "Alphaexample", "2014-03-05"))
        assert r.status_code == 202, r.text
        hub = await wait_for(svc, http, "test_hub", lambda e: len(about(e, alpha)) == 2)
        assert about(hub, alpha)[1]["subject"]["child"]["date_of_birth"] == "2014"

        # the notice is on the events topic in full: tokens and time readable, nothing of the child (a second
        # process publishing it too would add the same event, which each subscriber gets once)
        raw = [decode(m.value) for m in await read_topic(kafka_bootstrap, svc.settings.topics.events)]
        on_topic = [e for e in raw if e["event_type"] == "person.erased"]
        assert {e["event_id"] for e in on_topic} == {notice["event_id"]}
        assert on_topic[0]["payload"]["erased_tokens"] == [alpha] and on_topic[0]["subject"]["child"] == {}


async def test_cli_shred_is_audited_under_its_operator_and_announced(kafka_bootstrap, tmp_path, monkeypatch):
    async with running_service(tmp_path, kafka_bootstrap, protocol=str(protocol_file(tmp_path))) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        tokens = await start_two_children(svc, http)
        child = tokens["Betaexample"]
        monkeypatch.setenv("MASH_DATA_DIR", str(svc.settings.data_dir))
        monkeypatch.delenv("MASH_KMS", raising=False)
        monkeypatch.delenv("MASH_STORE_URL", raising=False)
        monkeypatch.delenv("MASH_AUDIT_URL", raising=False)
        result = CliRunner().invoke(keys_app, ["shred", "--subject", child, "--yes"])
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        assert printed["actor"] == cli_actor() and printed["tokens"] == [child] and printed["data_keys_shredded"]

        # the shred is in the audit log, chained, under the operator (the CLI wrote it itself)
        [shred] = [e["record"] for e in svc.runtime.audit_store.search(kind="key_shred", subject=child)]
        assert shred["actor"] == cli_actor() and shred["actor"].startswith("cli:") and shred["count"] >= 1
        assert svc.runtime.audit_store.verify().ok
        assert svc.runtime.erasures.is_erased(child)

        # the service publishes the notice the CLI left owed: both subscribers had received the child
        for subscriber in ("test_hub", "test_other"):
            served = await wait_for(svc, http, subscriber, lambda e: notices(e))
            assert [n["payload"]["erased_tokens"] for n in notices(served)] == [[child]]
            assert about(served, child) == notices(served)
        hub, _ = await pull_all(svc, http, "test_hub")
        assert [e["subject"]["child"]["family_name"] for e in about(hub, tokens["Alphaexample"])] == ["Alphaexample"]
        assert svc.runtime.erasures.notices_owed() == []
        # shredding again (a second operator's retry) announces nothing new
        assert CliRunner().invoke(keys_app, ["shred", "--subject", child, "--yes"]).exit_code == 0
        await asyncio.sleep(2.5)
        for subscriber in ("test_hub", "test_other"):
            served, _ = await pull_all(svc, http, subscriber)
            assert len(notices(served)) == 1
