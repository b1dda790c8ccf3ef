"""sensitive_operational on Kafka: the fields the share stage reads to decide but that reveal something about the
child (risk level, consent and objection, the source system, the asserted lawful basis) are encrypted like any
personal data, under a key of their own per child; what the broker must read before revealing stays in the clear."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from broker.crypto.envelope import protect_event, reveal_event
from broker.crypto.keystore import ENCRYPTING, KeyStore
from tests.conftest import assert_canonical

CLINIC = "TEST-SEXUAL-HEALTH-CLINIC"  # fictitious: a system id that says what the record is about


def _sensitive(base: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(base)
    event["source"]["system"] = CLINIC
    event["risk"] = {"level": "critical", "categories": []}
    event["consent"] = {"status": "withdrawn", "objection": True, "recorded_on": "2026-04-20"}
    event["lawful_basis"] = {"article_6": "6(1)(e)", "article_9": "9(2)(h)",
                             "statutory_gateways": ["children_act_1989_s47"]}
    return assert_canonical([event])[0]


def test_sensitive_operational_fields_are_ciphertext_on_kafka(patient_event: dict[str, Any], store: KeyStore) -> None:
    """A reader of sg.events (a Kafka operator, a leaked topic) must not learn a child's risk level, the family's
    withdrawal or objection, the clinic that sent the record or the s47 gateway it was sent under."""
    event = _sensitive(patient_event)
    protected = protect_event(event, store)
    for leaf in (protected["source"]["system"], protected["risk"]["level"], protected["consent"]["status"],
                 protected["consent"]["objection"], protected["consent"]["recorded_on"],
                 protected["lawful_basis"]["article_9"], protected["lawful_basis"]["statutory_gateways"][0]):
        assert isinstance(leaf, str) and leaf.startswith("enc:v1:"), leaf
    text = orjson.dumps(protected).decode()
    for value in (CLINIC, "critical", "withdrawn", "2026-04-20", "9(2)(h)", "children_act_1989_s47"):
        assert value not in text, value
    # what routing, the envelope's associated data and idempotence need stays readable
    for path in ("event_id", "event_type", "schema_version", "occurred_at", "recorded_at"):
        assert protected[path] == event[path], path
    assert protected["source"]["agency"] == event["source"]["agency"]
    assert protected["subject"]["linkage"] == event["subject"]["linkage"]
    assert reveal_event(protected, store).event == event  # the share stage decides on the revealed values


def test_sensitive_operational_has_its_own_key_encryption_key() -> None:
    """One KEK per label: shredding, rotation and access can treat these codes apart from, say, health data."""
    assert "sensitive_operational" in ENCRYPTING and "intelligence" in ENCRYPTING
    assert "operational" not in ENCRYPTING
