"""Flag, CarePlan (CP-IS), Condition, Observation and RelatedPerson mapping; Bundles in JSON and XML."""

from __future__ import annotations

import pytest

from adapters.health.fhir import ADAPTER
from adapters.kit.interface import AdaptContext, AdapterInputError
from tests.adapters.grading import common_level, gradings
from tests.adapters.health.builders import (
    INVALID_NHS,
    SNOMED,
    as_json,
    as_xml,
    bundle,
    careplan,
    concept,
    condition,
    flag,
    observation,
    organisation,
    patient,
)
from tests.conftest import assert_canonical

CPIS_OID = "urn:oid:2.16.840.1.113883.2.1.3.2.4.17.469"
FLAG_CATEGORY = "https://fhir.nhs.uk/England/CodeSystem/PatientFlagCategory"


def adapt(resource: dict, *, xml: bool = False):
    out = ADAPTER.adapt(as_xml(resource) if xml else as_json(resource), AdaptContext(source="test"))
    assert_canonical(out.events)
    return out


def only_event(resource: dict, event_type: str) -> dict:
    out = adapt(bundle(patient(), resource))
    assert out.rejections == []
    [event] = [e for e in out.events if e["event_type"] != "person.identified"]
    assert event["event_type"] == event_type
    return event


# --- Flag -------------------------------------------------------------------------------------------------------

def test_safeguarding_flag_from_snomed_code() -> None:
    event = only_event(flag(concept("836881000000105", display="Child is cause for safeguarding concern")),
                       "health.safeguarding_flag")
    # health's own grading, in the code's words; the sample protocol places it at medium
    assert event["risk"] == {"level": "unknown", "categories": ["other"],
                             "agency_levels": [{"scale": "health_safeguarding", "level": "safeguarding_concern"}]}
    assert common_level(event) == "medium"
    assert event["payload"]["code"]["code"] == "836881000000105"
    assert event["subject"]["child"]["nhs_number"] == "9990000018"


def test_exploitation_flag_carries_its_category() -> None:
    event = only_event(flag(concept("919461000000108")), "health.safeguarding_flag")
    assert event["risk"]["categories"] == ["child_sexual_exploitation"]
    assert gradings(event) == [("health_safeguarding", "exploitation_risk")] and common_level(event) == "high"


@pytest.mark.parametrize("category", [concept("FGM", FLAG_CATEGORY),
                                      concept("FGM", "http://fhir.nhs.net/ValueSet/risk-indicator-type-1-0")])
def test_fgm_flag_by_category(category: dict) -> None:
    event = only_event(flag(concept("123", "https://example.org/local-flags"), category), "health.safeguarding_flag")
    assert event["risk"]["categories"] == ["fgm"]
    assert gradings(event) == [("health_safeguarding", "fgm")] and common_level(event) == "high"


PRIORITY_EXT = "http://hl7.org/fhir/StructureDefinition/flag-priority"


@pytest.mark.parametrize(("code", "grading", "common"), [("PH", "flag_priority_high", "high"),
                                                         ("PL", "flag_priority_low", "medium")])
def test_a_flags_own_priority_is_sent_as_a_grading(code: str, grading: str, common: str) -> None:
    """The sender's own priority on the flag (the core flag-priority extension) travels as health's grading beside
    the code's; the common level is the highest the protocol maps (a low priority does not lower the code's)."""
    prioritised = flag(concept("836881000000105"))
    prioritised["extension"] = [{"url": PRIORITY_EXT, "valueCodeableConcept": concept(
        code, "http://terminology.hl7.org/CodeSystem/flag-priority-code")}]
    event = only_event(prioritised, "health.safeguarding_flag")
    assert gradings(event) == [("health_safeguarding", "safeguarding_concern"), ("health_safeguarding", grading)]
    assert common_level(event) == common


def test_a_flag_priority_in_another_code_system_is_not_read_as_one() -> None:
    prioritised = flag(concept("836881000000105"))
    prioritised["extension"] = [{"url": PRIORITY_EXT, "valueCodeableConcept": concept(
        "PH", "https://example.org/local-priorities")}]
    event = only_event(prioritised, "health.safeguarding_flag")
    assert gradings(event) == [("health_safeguarding", "safeguarding_concern")]


def test_other_flag_is_clinical() -> None:
    event = only_event(flag(concept("226201008")), "health.clinical_flag")
    assert event["risk"] == {"level": "unknown", "categories": []}  # no grading: not a safeguarding matter


def test_flag_author_organisation_resolved_in_bundle() -> None:
    out = adapt(bundle(patient(), organisation("trust-1"), flag(concept("226201008"), author="Organization/trust-1")))
    [event] = [e for e in out.events if e["event_type"] == "health.clinical_flag"]
    assert event["payload"]["author"] == {"name": "Testshire County Council"}


def test_flag_about_a_location_is_rejected() -> None:
    out = adapt(flag(concept("226201008"), subject="Location/ward-1"))
    assert out.events == []
    assert [(r.record, r.field) for r in out.rejections] == [("Flag", "Flag.subject")]


# --- CP-IS ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "kind", "grading"), [
    ("CPPI", "child_protection_plan", "child_protection"), ("LACI", "looked_after_child", "looked_after"),
    ("UCPI", "unborn_child_protection_plan", "unborn_child_protection"),
    ("CPPIU", "child_protection_plan", "child_protection")])
def test_cpis_careplan_kinds(code: str, kind: str, grading: str) -> None:
    event = only_event(careplan([concept(code, CPIS_OID)]), "health.child_protection_plan_notice")
    assert event["payload"]["plan_kind"] == kind
    assert event["payload"]["period_start"] == "2024-01-10"
    assert event["payload"]["period_end"] == "2024-07-10"
    assert event["risk"]["level"] == "unknown"  # CP-IS grades by the plan; the protocol places it (high)
    assert gradings(event) == [("health_safeguarding", grading)] and common_level(event) == "high"


def test_cpis_careplan_local_authority_and_categories() -> None:
    plan = careplan([concept("CPPI", CPIS_OID), concept("NEG", "https://example.org/cin-abuse")],
                    author="Organization/la-1")
    out = adapt(bundle(patient(), organisation(), plan))
    [event] = [e for e in out.events if e["event_type"] == "health.child_protection_plan_notice"]
    assert event["payload"]["responsible_organisation"] == {"name": "Testshire County Council"}
    assert event["payload"]["contact_phone"] == "01000 000000"
    assert event["risk"]["categories"] == ["neglect"]
    assert gradings(event) == [("health_safeguarding", "child_protection")] and common_level(event) == "high"


def test_cpis_flag_without_plan_type_assumes_cpp_and_says_so() -> None:
    event = only_event(flag(concept("224353004"), concept("CP-IS", FLAG_CATEGORY)),
                       "health.child_protection_plan_notice")
    assert event["payload"]["plan_kind"] == "child_protection_plan"
    assert [w["code"] for w in event["data_quality"]] == ["cp_notice.plan_kind_assumed"]


def test_cpis_flag_with_plan_type() -> None:
    event = only_event(flag(concept("LACI", CPIS_OID), concept("CP-IS", FLAG_CATEGORY)),
                       "health.child_protection_plan_notice")
    assert event["payload"]["plan_kind"] == "looked_after_child"
    assert event["data_quality"] == []


def test_other_careplan_is_skipped_not_rejected() -> None:
    out = adapt(careplan([concept("736353004", display="Inpatient care plan")]))
    assert out.events == [] and out.rejections == []


# --- Condition and Observation ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "system", "categories", "grading", "common"), [
    ("T74.1", "http://hl7.org/fhir/sid/icd-10", ["physical_abuse"], "maltreatment", "high"),
    ("X78", "http://hl7.org/fhir/sid/icd-10", ["self_harm"], "intentional_self_harm", "high"),
    ("248062006", SNOMED, ["self_harm"], "self_injurious_behaviour", "medium"),
    ("902961000000107", SNOMED, ["fgm"], "fgm", "high"),
    ("66214007", SNOMED, ["substance_misuse"], "substance_misuse", "medium"),
])
def test_safeguarding_condition(code: str, system: str, categories: list[str], grading: str, common: str) -> None:
    event = only_event(condition(concept(code, system)), "health.clinical_finding")
    assert event["risk"]["categories"] == categories
    assert event["risk"]["level"] == "unknown"  # the adapter grades; the protocol places the grading
    assert gradings(event) == [("health_safeguarding", grading)] and common_level(event) == common
    payload = event["payload"]
    assert payload["resource_kind"] == "Condition"
    assert payload["status"] == "active"
    assert payload["effective"] == "2024-03-01"
    assert payload["note"] == "Fictitious test note."
    assert event["occurred_at"] == "2024-03-01"


def test_ordinary_condition_is_skipped_not_rejected() -> None:
    out = adapt(bundle(patient(), condition(concept("195662009", display="Acute viral pharyngitis"))))
    assert [e["event_type"] for e in out.events] == ["person.identified"]
    assert out.rejections == []


def test_tobacco_use_is_not_substance_misuse() -> None:
    out = adapt(condition(concept("F17.2", "http://hl7.org/fhir/sid/icd-10")))
    assert out.events == []


def test_pregnancy_only_for_a_minor() -> None:
    minor = adapt(bundle(patient(birth="2009-01-01"), condition(concept("77386006"))))
    adult = adapt(bundle(patient(birth="1990-01-01"), condition(concept("77386006"))))
    [finding] = [e for e in minor.events if e["event_type"] == "health.clinical_finding"]
    assert gradings(finding) == [("health_safeguarding", "pregnancy_under_18")]
    assert [e["event_type"] for e in adult.events] == ["person.identified"]


def test_observation_with_safeguarding_value() -> None:
    obs = observation(concept("404684003", display="Clinical finding"), value=concept("412732008"))
    event = only_event(obs, "health.clinical_finding")
    assert event["payload"]["resource_kind"] == "Observation"
    assert event["payload"]["value"] == "412732008"
    assert event["payload"]["effective"] == "2024-03-02T09:30:00+00:00"
    assert event["risk"]["categories"] == ["domestic_abuse"]


# --- RelatedPerson ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "role", "pr"), [("MTH", "parent", True), ("NFTH", "parent", None),
                                                  ("GUARD", "guardian", True), ("FOSTER", "carer", None),
                                                  ("SIS", "sibling", None), ("WIFE", "other", None)])
def test_related_person_roles(code: str, role: str, pr: bool | None) -> None:
    rp = {"resourceType": "RelatedPerson", "id": "rp-1", "patient": {"reference": "Patient/child-1"},
          "relationship": [concept(code, "http://terminology.hl7.org/CodeSystem/v3-RoleCode")],
          "name": [{"family": "Example", "given": ["Testparent"]}], "gender": "female",
          "telecom": [{"system": "phone", "value": "07000 000000"}],
          "address": [{"line": ["1 Fictional Road"], "postalCode": "ls14hr"}]}
    event = only_event(rp, "person.updated")
    [related] = event["subject"]["related_people"]
    assert (related["role"], related["relationship"], related.get("parental_responsibility")) == (role, code, pr)
    assert related["person"]["addresses"][0]["postcode"] == "LS1 4HR"
    assert related["person"]["phones"] == ["07000 000000"]
    assert event["subject"]["child"]["family_name"] == "Example"


def test_related_person_without_patient_is_rejected() -> None:
    out = adapt({"resourceType": "RelatedPerson", "id": "rp-2"})
    assert out.events == []
    assert [(r.record, r.field) for r in out.rejections] == [("RelatedPerson", "RelatedPerson.patient")]


# --- Bundles, identifiers, hostile input ------------------------------------------------------------------------

def _mixed() -> dict:
    return bundle(patient(), organisation(), flag(concept("836881000000105")), careplan([concept("CPPI", CPIS_OID)]),
                  condition(concept("T74.0", "http://hl7.org/fhir/sid/icd-10")),
                  condition(concept("195662009"), cid="cond-2"), observation(concept("8302-2", "http://loinc.org")),
                  {"resourceType": "Medication", "id": "m1"})


@pytest.mark.parametrize("xml", [False, True])
def test_mixed_bundle(xml: bool) -> None:
    out = adapt(_mixed(), xml=xml)
    assert sorted(e["event_type"] for e in out.events) == [
        "health.child_protection_plan_notice", "health.clinical_finding", "health.safeguarding_flag",
        "person.identified"]
    assert out.rejections == []
    # one rule: the Organization (read for references), the ordinary Condition and Observation, and the Medication
    # (a FHIR type the adapter does not map) are all skipped and counted by type
    assert out.skipped == {"Condition": 1, "Medication": 1, "Observation": 1, "Organization": 1}
    for event in out.events:
        assert event["subject"]["child"]["nhs_number"] == "9990000018"
        assert event["subject"]["child"]["date_of_birth"] == "2012-05-04"


def test_json_and_xml_bundles_give_identical_events() -> None:
    assert adapt(_mixed()).events == adapt(_mixed(), xml=True).events


def test_references_resolve_by_full_url() -> None:
    doc = bundle(patient(), flag(concept("836881000000105"), subject="urn:uuid:00000000-0000-4000-8000-000000000000"),
                 full_urls=True)
    out = adapt(doc)
    [event] = [e for e in out.events if e["event_type"] == "health.safeguarding_flag"]
    assert event["subject"]["child"]["nhs_number"] == "9990000018"


def test_invalid_nhs_number_is_flagged_not_dropped() -> None:
    out = adapt(bundle(patient(nhs=INVALID_NHS), flag(concept("836881000000105"))))
    person = next(e for e in out.events if e["event_type"] == "person.identified")
    assert person["subject"]["child"]["nhs_number"] == INVALID_NHS
    assert [w["code"] for w in person["data_quality"]] == ["identifier.nhs_number_invalid"]
    assert INVALID_NHS not in str(person["data_quality"])
    assert len(out.events) == 2


XXE = b"""<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>"""
LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><Patient xmlns="http://hl7.org/fhir"><id value="&lol3;"/></Patient>"""


@pytest.mark.parametrize("doc", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_hostile_xml_refused(doc: bytes) -> None:
    with pytest.raises(AdapterInputError) as err:
        ADAPTER.adapt(doc, AdaptContext(source="hostile.xml"))
    assert "DOCTYPE" in err.value.rejection.reason


@pytest.mark.parametrize("doc", [b"[1, 2]", b'{"resourceType": "Bundle", "entry": 5}', b"\x00\x01", b""])
def test_malformed_input_is_an_input_error(doc: bytes) -> None:
    with pytest.raises(AdapterInputError):
        ADAPTER.adapt(doc, AdaptContext(source="bad"))
