"""The four published UK Core examples (XML), and their JSON equivalents, convert with the right events."""

from __future__ import annotations

from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class
from lxml import etree

from adapters.health.fhir import ADAPTER
from adapters.kit.interface import AdaptContext
from tests.conftest import assert_canonical

CASES = {
    "UKCore-Patient-RichardSmith-Example.xml": ("person.identified", []),
    "UKCore-Encounter-InpatientEncounter-Example.xml": ("health.admission", ["subject.unresolved"]),
    "UKCore-Flag-FoodAllergy-Example.xml": ("health.clinical_flag", ["subject.unresolved"]),
    "UKCore-RelatedPerson-JoySmith-Example.xml": ("person.updated", ["subject.unresolved"]),
}


def _read(external_cases: Path, name: str) -> bytes:
    return (external_cases / "health" / name).read_bytes()


def _json_equivalent(xml: bytes) -> bytes:
    rtype = etree.QName(etree.fromstring(xml)).localname
    return get_fhir_model_class(rtype).model_validate_xml(xml).model_dump_json().encode()


@pytest.mark.parametrize("name", sorted(CASES))
def test_uk_core_example_converts(external_cases: Path, name: str) -> None:
    out = ADAPTER.adapt(_read(external_cases, name), AdaptContext(source=name))
    event_type, warning_codes = CASES[name]
    assert out.rejections == []
    assert [e["event_type"] for e in out.events] == [event_type]
    assert [w["code"] for w in out.events[0]["data_quality"]] == warning_codes
    assert_canonical(out.events)


@pytest.mark.parametrize("name", sorted(CASES))
def test_json_equivalent_converts_identically(external_cases: Path, name: str) -> None:
    xml = _read(external_cases, name)
    from_xml = ADAPTER.adapt(xml, AdaptContext(source=name))
    from_json = ADAPTER.adapt(_json_equivalent(xml), AdaptContext(source=name))
    assert from_json.rejections == []
    assert from_json.events == from_xml.events


def test_food_allergy_flag_is_clinical_with_its_codes(external_cases: Path) -> None:
    event = ADAPTER.adapt(_read(external_cases, "UKCore-Flag-FoodAllergy-Example.xml"), AdaptContext()).events[0]
    assert event["payload"]["code"] == {"system": "http://snomed.info/sct", "code": "226201008",
                                        "display": "Peanut-free diet"}
    assert event["payload"]["categories"][0]["code"] == "diet"
    assert event["payload"]["period_start"] == "2019-12-10T13:00:00+00:00"
    assert "author" not in event["payload"]  # a Practitioner is not an organisation
    assert event["risk"] == {"level": "unknown", "categories": []}
    assert event["subject"]["child"]["local_ids"][0]["value"] == "UKCore-Patient-RichardSmith-Example"


def test_related_person_joy_smith(external_cases: Path) -> None:
    event = ADAPTER.adapt(_read(external_cases, "UKCore-RelatedPerson-JoySmith-Example.xml"), AdaptContext()).events[0]
    assert event["source"]["record_id"] == "RelatedPerson/UKCore-RelatedPerson-JoySmith-Example"
    assert event["payload"] == {"record_kind": "RelatedPerson"}
    [related] = event["subject"]["related_people"]
    assert related["relationship"] == "WIFE"
    assert related["role"] == "other"
    assert "parental_responsibility" not in related
    assert related["person"]["given_names"] == ["Joy"]


def test_examples_together_in_a_bundle_resolve_the_patient(external_cases: Path) -> None:
    """The UK Core examples in one XML Bundle: the Patient resolves every reference to it."""
    parts = [_read(external_cases, n) for n in sorted(CASES)]
    entries = b"".join(b"<entry><resource>" + p + b"</resource></entry>" for p in parts)
    doc = b'<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/>' + entries + b"</Bundle>"
    out = ADAPTER.adapt(doc, AdaptContext(source="bundle.xml"))
    assert out.rejections == []
    assert sorted(e["event_type"] for e in out.events) == sorted(t for t, _ in CASES.values())
    for event in out.events:
        assert event["subject"]["child"]["nhs_number"] == "9912003888"
        assert not [w for w in event["data_quality"] if w["code"].startswith("subject.")]
    assert_canonical(out.events)
