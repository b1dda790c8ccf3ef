"""Fixtures for the policy tests: the sample protocol, a small protocol to vary, and canonical events of a
fictitious child built with the real event builder and checked against the schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from adapters.kit.events import new_event
from broker.policy import Protocol, load_protocol, parse_protocol
from tests.conftest import ROOT, assert_canonical

SAMPLE = ROOT / "deploy" / "protocols" / "sample-partnership.yaml"
MASK_KEY = b"fictitious-mask-key-for-tests-01"

CHILD: dict[str, Any] = {
    "nhs_number": "9990000018", "la_child_id": "TEST-CHILD-0001",
    "given_names": ["Testchild"], "family_name": "Example", "date_of_birth": "2016-05-14", "sex": "female",
    "ethnicity": "WBRI", "phones": ["07700900001"],
    "addresses": [{"lines": ["1 Test Street"], "city": "Exampletown", "postcode": "ZZ1 1ZZ", "use": "home"}],
    "gp_practice": {"ods_code": "Y99901", "name": "Riverside Medical Practice"},
    "school": {"urn": "999001", "name": "Oakfield Primary School"},
}
PARENT: dict[str, Any] = {
    "role": "parent", "parental_responsibility": True,
    "person": {"given_names": ["Testparent"], "family_name": "Example", "date_of_birth": "1990-02-03",
               "nhs_number": "9990000026", "pnc_id": "99/000001Z", "phones": ["07700900002"]},
}
# Values that must never appear in a decision record, an explanation or an error.
SECRETS = ("Testchild", "Testparent", "9990000018", "9990000026", "2016-05-14", "07700900001", "ZZ1 1ZZ",
           "Test Street", "99/000001Z", "Fictitious narrative")


def make_event(event_type: str, agency: str, payload: dict[str, Any], *, risk: str = "medium",
               categories: tuple[str, ...] = (), child: dict[str, Any] | None = None,
               related: list[dict[str, Any]] | None = None, consent: dict[str, Any] | None = None,
               occurred_at: str = "2026-05-04", record_id: str = "test-record-1") -> dict[str, Any]:
    """One schema-valid canonical event about the fictitious child."""
    event = new_event(event_type=event_type, agency=agency, system="TEST", record_id=record_id, record_version="1",
                      fmt="test", occurred_at=occurred_at, child=CHILD if child is None else child, payload=payload,
                      related_people=[PARENT] if related is None else related, risk_level=risk,
                      risk_categories=categories, consent=consent)
    return assert_canonical([event])[0]


@pytest.fixture(scope="session")
def sample() -> Protocol:
    return load_protocol(SAMPLE)


def base_protocol() -> dict[str, Any]:
    """A small valid protocol as data, for tests to vary: one hub subscriber, one GP, one consent subscriber."""
    key = "A" * 43 + "="  # 32 zero-ish bytes, base64: a syntactically valid x25519 key for tests
    return copy.deepcopy({
        "protocol": {"id": "test-isp", "version": "1", "title": "Test protocol", "effective_from": "2026-01-01"},
        "purposes": {"triage": "Test triage", "care": "Test care", "support": "Test support"},
        # source_systems: the test events' source.system, so s47_request conditions can name the discloser
        "partners": [{"id": "la", "name": "Test LA", "agency": "social_care", "role": "safeguarding_partner",
                      "source_systems": ["TEST"]},
                     {"id": "gp", "name": "Test GP", "agency": "health", "role": "relevant_agency"}],
        "subscribers": [
            {"name": "hub", "partner": "la", "role": "mash_hub", "purposes": ["triage"], "public_key": key,
             "key_suite": "x25519", "delivery": "kafka"},
            {"name": "gp_one", "partner": "gp", "role": "gp_practice", "purposes": ["care"], "public_key": key,
             "key_suite": "x25519", "delivery": "http-pull", "organisation": {"ods_code": "Y99901"},
             "confidentiality": "health_professional"},
            {"name": "helper", "partner": "la", "role": "early_help", "purposes": ["support"], "public_key": key,
             "key_suite": "x25519", "delivery": "sse"},
        ],
        "rules": [
            {"id": "hub-identity", "description": "Hub gets identity and social care", "subscribers": ["hub"],
             "event_types": ["social_care.*", "police.*"], "purpose": "triage",
             # Art 9(2)(g) with para 6 for the special category and criminal offence data social care fields can
             # hold (risk categories, assessment factors: schema markers), s36(4) for police records reused by the LA
             "lawful_basis": ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "dpa2018_s36_4",
                              "children_act_1989_s47"],
             "fields": [{"classifications": ["identity", "social_care", "criminal"], "action": "release"}]},
        ],
    })


def compile_data(data: dict[str, Any], base_dir: Path | None = None) -> Protocol:
    return parse_protocol(data, "test.yaml", base_dir=base_dir)
