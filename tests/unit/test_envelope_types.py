"""The typed envelope (broker/schema/envelope.py) says what the canonical schema says: a field added, dropped or made
optional in the schema and not in the TypedDicts (or the other way round) fails here, so the two stay one fact."""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest

from adapters.kit.events import new_event
from broker.pipeline.identify import LinkageKey, complete_identified
from broker.schema import envelope
from broker.schema.loader import load_schema
from broker.schema.validate import validate_event

SCHEMA = load_schema()
PROPS = SCHEMA["properties"]


def _fields(typed: Any) -> tuple[set[str], set[str]]:
    """(all keys, required keys) of a TypedDict."""
    return set(get_type_hints(typed)), set(typed.__required_keys__)


def _schema_fields(node: dict[str, Any]) -> tuple[set[str], set[str]]:
    return set(node["properties"]), set(node.get("required", ()))


@pytest.mark.parametrize(("typed", "node"), [
    (envelope.Event, SCHEMA),
    (envelope.Source, PROPS["source"]),
    (envelope.Subject, PROPS["subject"]),
    (envelope.Linkage, PROPS["subject"]["properties"]["linkage"]),
    (envelope.Risk, PROPS["risk"]),
    (envelope.LawfulBasis, PROPS["lawful_basis"]),
    (envelope.Consent, PROPS["consent"]),
    (envelope.DataQualityWarning, PROPS["data_quality"]["items"]),
], ids=lambda v: getattr(v, "__name__", ""))
def test_typed_envelope_has_the_schemas_fields_and_required_ones(typed: Any, node: dict[str, Any]) -> None:
    assert _fields(typed) == _schema_fields(node)


def test_accessors_read_a_validated_event() -> None:
    draft = new_event(event_type="person.identified", agency="health", system="Y99901", record_id="r1",
                      record_version="1", fmt="test", occurred_at="2026-01-01",
                      child={"nhs_number": "9999999999", "family_name": "Testchild"},
                      payload={"record_kind": "Test"})
    event, _ = complete_identified(draft, LinkageKey(1, b"k" * 32), "2026-01-02T00:00:00Z")
    assert validate_event(event) == []
    assert envelope.linkage_token(event) == event["subject"]["linkage"]["token"]
    assert envelope.linkage_token(event).startswith("lt1_")
    assert envelope.event_id(event) == event["event_id"]
    assert envelope.event_type(event) == "person.identified"
    assert envelope.source_agency(event) == "health"
    assert envelope.view(event) is event  # a view, not a copy: behaviour-identical where the core reads it
