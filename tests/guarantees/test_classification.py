"""Promise: each subscriber receives only what the protocol allows, under a lawful basis: a field that reveals a
sensitive fact reaches a subscriber only through a rule that names it, and a field that can hold special category or
criminal offence data is released only by a rule citing the conditions its contents need, whatever its label."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from broker.bench.records import fhir_patient
from broker.policy import ProtocolError, decide, parse_protocol, release
from broker.schema.classification import CLASSIFICATIONS, CRIMINAL, SPECIAL, leaf_markers
from broker.schema.loader import load_schema
from tests.integration.service import running_service
from tests.integration.topics import read_topic
from tests.policy.conftest import MASK_KEY, make_event

KEY = "A" * 43 + "="
CLINIC = "TEST-SEXUAL-HEALTH-CLINIC"  # fictitious: a source system whose name says what the record is about
EVERY_LABEL_BUT_SENSITIVE = sorted(set(CLASSIFICATIONS) - {"operational", "sensitive_operational"})
# Every basis a hub rule needs for special category and criminal offence data (s36(4) for police records).
EVERYTHING = ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "children_act_1989_s17",
              "children_act_2004_s11"]


def _protocol(rule: dict[str, Any]) -> dict[str, Any]:
    sub = {"public_key": KEY, "key_suite": "x25519", "delivery": "kafka"}
    return copy.deepcopy({
        "protocol": {"id": "guarantee-isp", "version": "1", "title": "Guarantee", "effective_from": "2026-01-01"},
        "purposes": {"work": "Safeguarding work"},
        "partners": [{"id": "la", "name": "LA", "agency": "social_care", "role": "safeguarding_partner"}],
        "subscribers": [{"name": "hub", "partner": "la", "role": "mash_hub", "purposes": ["work"], **sub}],
        "rules": [{"id": "r", "description": "adversarial rule", "subscribers": ["hub"], "purpose": "work", **rule}],
    })


def _marked() -> list[tuple[str, str, frozenset[str]]]:
    out = []
    for event_type in load_schema()["$defs"]["event_type"]["enum"]:
        out += [(event_type, leaf, m) for leaf, m in sorted(leaf_markers(event_type).items())]
    return out


def test_no_marked_field_can_be_released_on_article_6_alone() -> None:
    """A protocol author who releases one marked field by its path, under public task and the statutes only (no
    Art 9 condition, no Schedule 1 condition), is refused for every marked field of every event type."""
    cases = _marked()
    assert len(cases) > 50  # the sweep covers something
    slipped = []
    for event_type, leaf, markers in cases:
        basis = ["uk_gdpr_art6_1_e", "children_act_2004_s11"] + (["dpa2018_s36_4"] if event_type.startswith(
            ("police.", "person.")) else [])
        rule = {"event_types": [event_type], "lawful_basis": basis,
                "fields": [{"paths": [leaf.removesuffix("[]")], "action": "release"}]}
        try:
            parse_protocol(_protocol(rule), "adversary.yaml")
        except ProtocolError as exc:
            reasons = " | ".join(p.reason for p in exc.problems)
            if SPECIAL in markers and not ("special category data" in reasons and leaf in reasons):
                slipped.append((event_type, leaf, "Art 9"))
            if CRIMINAL in markers and not ("criminal offence data" in reasons and leaf in reasons):
                slipped.append((event_type, leaf, "Art 10"))
        else:
            slipped.append((event_type, leaf, "compiled"))
    assert slipped == []


EVENTS = [
    ("social_care.referral", "social_care", {"referral_date": "2026-05-01", "primary_need_code": "N2"}),
    ("police.domestic_abuse_notification", "police", {"incident_reference": "TEST/0001", "dash_risk": "high"}),
    ("health.safeguarding_flag", "health", {"status": "active", "code": {"code": "000000"}}),
    ("education.exclusion", "education", {"category": "suspension", "start_date": "2026-03-10"}),
]


@pytest.mark.parametrize(("event_type", "agency", "payload"), EVENTS)
def test_a_rule_releasing_every_other_label_leaks_no_sensitive_operational_value(
        event_type: str, agency: str, payload: dict[str, Any]) -> None:
    """The most generous rule that does not name sensitive_operational delivers the event, and the subscriber's
    projection carries neither the risk level, the family's objection and its date, the clinic's system, nor the
    source's s47 gateway: not as a value, not as a key."""
    basis = EVERYTHING + (["dpa2018_s36_4"] if agency == "police" else [])
    p = parse_protocol(_protocol({"event_types": [event_type], "lawful_basis": basis,
                                  "fields": [{"classifications": EVERY_LABEL_BUT_SENSITIVE, "action": "release"}]}),
                       "generous.yaml")
    event = make_event(event_type, agency, payload, risk="critical",
                       consent={"status": "not_sought", "objection": False, "recorded_on": "2026-04-20"})
    event["source"]["system"] = CLINIC
    event["lawful_basis"] = {"article_6": "6(1)(e)", "article_9": "9(2)(g)",
                             "statutory_gateways": ["children_act_1989_s47"]}
    d = decide(p, event, "hub")
    assert d.outcome == "deliver", d.reason
    view = release(event, d, mask_key=MASK_KEY)
    assert "risk" not in view or "level" not in view["risk"]
    assert "consent" not in view and "lawful_basis" not in view
    assert "system" not in view.get("source", {})
    text = repr(view)
    for value in (CLINIC, "critical", "2026-04-20", "children_act_1989_s47", "9(2)(g)"):
        assert value not in text, value
    assert view["event_type"] == event_type and view["event_id"] == event["event_id"]  # routing stays


# --- on Kafka and at the subscriber, through the running service --------------------------------------------------

KAFKA_PROTOCOL = """\
protocol: {id: classification-isp, version: "1", title: Classification guarantee, effective_from: "2026-01-01"}
purposes: {triage: Hub triage in tests}
partners:
  - {id: test-csc, name: Test Children's Services, agency: social_care, role: safeguarding_partner}
subscribers:
  - {name: test_hub, partner: test-csc, role: mash_hub, purposes: [triage], key_file: keys/test_hub.pub,
     key_suite: x25519, delivery: http-pull}
  - {name: test_other, partner: test-csc, role: early_help, purposes: [triage], key_file: keys/test_other.pub,
     key_suite: x25519, delivery: http-pull}
rules:
  - id: hub-names-sensitive-codes
    description: The hub is given the risk level, consent and source system by name.
    subscribers: [test_hub]
    event_types: ["person.*"]
    source_agencies: [health]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_e, uk_gdpr_art9_2_g, dpa2018_sch1_para6, children_act_2004_s11]
    fields:
      - classifications: [identity, sensitive_operational]
        action: release
  - id: other-identity-only
    description: Another subscriber receives the same events, identity only.
    subscribers: [test_other]
    event_types: ["person.*"]
    source_agencies: [health]
    purpose: triage
    lawful_basis: [uk_gdpr_art6_1_e, children_act_2004_s11]
    fields:
      - classifications: [identity]
        action: release
"""


async def test_a_clinics_system_and_the_childs_codes_are_ciphertext_on_kafka_and_reach_only_the_named(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """A record from a sexual health clinic: whoever reads the broker's Kafka topics raw learns neither the clinic,
    the risk level, the consent status nor the asserted Art 9 condition; the subscriber whose rule names them gets
    them, the other subscriber of the same event does not; only the event type rides as a header, on sg.events."""
    protocol = tmp_path / "classification-protocol.yaml"
    protocol.write_text(KAFKA_PROTOCOL)
    async with running_service(tmp_path, kafka_bootstrap, str(protocol)) as svc, \
            httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{svc.base_url}/v1/records/health", content=fhir_patient(7),
                            headers=svc.headers("intake:health", **{"Content-Type": "application/fhir+json",
                                                                    "X-Source-System": CLINIC}))
        assert r.status_code == 202, r.text
        [hub_view] = await svc.pull_until(http, "test_hub", 1)
        [other_view] = await svc.pull_until(http, "test_other", 1)
        prefix = svc.settings.topic_prefix
        events = await read_topic(kafka_bootstrap, f"{prefix}.events", want=1)
        deliveries = [m for s in ("test_hub", "test_other")
                      for m in await read_topic(kafka_bootstrap, f"{prefix}.deliver.{s}", want=1)]
    assert hub_view["source"]["system"] == CLINIC and hub_view["risk"]["level"] == "unknown"
    assert hub_view["consent"]["status"] == "not_sought" and "lawful_basis" in hub_view
    assert "system" not in other_view["source"] and "consent" not in other_view and "lawful_basis" not in other_view
    assert "level" not in other_view.get("risk", {})
    [raw] = events
    assert CLINIC.encode() not in raw.value
    on_kafka = orjson.loads(raw.value)
    for leaf in (on_kafka["source"]["system"], on_kafka["risk"]["level"], on_kafka["consent"]["status"],
                 on_kafka["lawful_basis"]["article_9"]):
        assert leaf.startswith("enc:v1:"), leaf
    assert dict(raw.headers)["event_type"] == b"person.identified"  # the routing key the broker needs
    assert len(deliveries) == 2
    for m in deliveries:
        assert CLINIC.encode() not in m.value and "event_type" not in dict(m.headers)
