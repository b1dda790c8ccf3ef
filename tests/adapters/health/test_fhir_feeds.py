"""FHIR as senders really send it (issue 22): identifier-only related people, deceased[x], PDS security labels,
the NHS Communication extension, UK Core relationship codes, SNOMED descendants, skipped resource types, the UPN.

Every input is written here from the public specifications (UK Core profiles and extensions, the PDS FHIR API's
restricted-patient labels, FHIR R4 security labels); identifiers and names are fictitious.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.health.fhir import ADAPTER
from adapters.health.safeguarding_codes import SAFEGUARDING_SNOMED, SNOMED_DESCENDANTS, concern_for
from adapters.kit.interface import AdaptContext
from tests.adapters.grading import common_level, gradings
from tests.adapters.health.builders import SNOMED, VALID_NHS, as_json, as_xml, bundle, concept, condition, flag, patient
from tests.conftest import assert_canonical

MOTHER_NHS = "9990000026"  # fictitious, passes Modulus 11
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
UK_CORE_ROLE = "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdditionalPersonRelationshipRole"
PDS_ROLE = "https://fhir.nhs.uk/R4/CodeSystem/UKCore-AdditionalRelatedPersonRole"
NHS_COMMUNICATION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication"
UPN_SYSTEM = "https://www.gov.uk/government/publications/unique-pupil-numbers"
VALID_UPN = "H801200001001"  # fictitious, its check letter is right (python-stdnum)


def adapt(resource: dict, *, xml: bool = False):
    out = ADAPTER.adapt(as_xml(resource) if xml else as_json(resource), AdaptContext(source="test"))
    assert_canonical(out.events)  # every event the adapter makes is valid: none sinks the Bundle
    return out


def person_event(out) -> dict:
    [event] = [e for e in out.events if e["event_type"] in ("person.identified", "person.updated")
               and e["payload"]["record_kind"] == "Patient"]
    return event


# --- related people with only what is known ---------------------------------------------------------------------

def _mother(**extra) -> dict:
    return {"resourceType": "RelatedPerson", "patient": {"reference": "Patient/child-1"},
            "relationship": [concept("MTH", "http://terminology.hl7.org/CodeSystem/v3-RoleCode")], **extra}


@pytest.mark.parametrize("xml", [False, True])
def test_birth_notification_mother_with_only_an_identifier_is_kept(xml: bool) -> None:
    """A birth notification names the mother by NHS number alone: she is kept with it, the Bundle's events valid."""
    mother = _mother(id="mother-1", identifier=[{"system": "https://fhir.nhs.uk/Id/nhs-number",
                                                "value": MOTHER_NHS}])
    out = adapt(bundle(patient(birth="2026-11-30"), mother), xml=xml)
    assert out.rejections == []
    [event] = [e for e in out.events if e["payload"]["record_kind"] == "RelatedPerson"]
    [related] = event["subject"]["related_people"]
    assert related == {"role": "parent", "relationship": "MTH", "parental_responsibility": True,
                       "person": {"nhs_number": MOTHER_NHS}}
    assert event["subject"]["child"]["nhs_number"] == VALID_NHS


def test_related_person_with_only_an_id_is_kept_by_its_local_id() -> None:
    out = adapt(bundle(patient(), _mother(id="mother-2")))
    [event] = [e for e in out.events if e["payload"]["record_kind"] == "RelatedPerson"]
    assert event["subject"]["related_people"][0]["person"] == {
        "local_ids": [{"system": "fhir/RelatedPerson", "value": "mother-2"}]}


def test_related_person_with_nothing_known_keeps_the_event_and_says_so() -> None:
    out = adapt(bundle(patient(), _mother()))
    assert out.rejections == []
    [event] = [e for e in out.events if e["payload"]["record_kind"] == "RelatedPerson"]
    assert event["subject"]["related_people"] == []
    assert [w["code"] for w in event["data_quality"]] == ["related_person.unidentified"]


def test_patient_contact_with_only_a_relationship_does_not_sink_the_patient() -> None:
    child = patient()
    child["contact"] = [{"relationship": [concept("MTH", "http://terminology.hl7.org/CodeSystem/v3-RoleCode")]},
                        {"relationship": [concept("Guardian", UK_CORE_ROLE)],
                         "name": {"family": "Example", "given": ["Testguardian"]}}]
    event = person_event(adapt(child))
    assert [(r["role"], r.get("parental_responsibility")) for r in event["subject"]["related_people"]] == [
        ("guardian", True)]
    assert [(w["code"], w["field"]) for w in event["data_quality"]] == [
        ("related_person.unidentified", "Patient.contact[0]")]


@pytest.mark.parametrize("system", [UK_CORE_ROLE, PDS_ROLE])
def test_uk_core_guardian_code_is_a_guardian_with_parental_responsibility(system: str) -> None:
    rp = {"resourceType": "RelatedPerson", "id": "rp-g", "patient": {"reference": "Patient/child-1"},
          "relationship": [concept("Guardian", system)], "name": [{"family": "Example", "given": ["Testguardian"]}]}
    out = adapt(bundle(patient(), rp))
    [event] = [e for e in out.events if e["payload"]["record_kind"] == "RelatedPerson"]
    [related] = event["subject"]["related_people"]
    assert (related["role"], related["relationship"], related["parental_responsibility"]) == (
        "guardian", "Guardian", True)


def test_uk_core_personal_relationship_stays_other_without_parental_responsibility() -> None:
    rp = {"resourceType": "RelatedPerson", "id": "rp-p", "patient": {"reference": "Patient/child-1"},
          "relationship": [concept("Personal", UK_CORE_ROLE)], "name": [{"family": "Example"}]}
    [event] = [e for e in adapt(bundle(patient(), rp)).events if e["payload"]["record_kind"] == "RelatedPerson"]
    assert "parental_responsibility" not in event["subject"]["related_people"][0]
    assert event["subject"]["related_people"][0]["role"] == "other"


# --- Patient.deceased[x] ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("deceased", "expected", "warned"), [
    ({"deceasedDateTime": "2026-10-02T04:10:00+01:00"}, {"date_of_death": "2026-10-02"}, False),
    ({"deceasedDateTime": "2026-10-02"}, {"date_of_death": "2026-10-02"}, False),
    ({"deceasedBoolean": True}, {"deceased": True}, False),
    ({"deceasedDateTime": "2026"}, {"deceased": True}, True),
    ({"deceasedBoolean": False}, {}, False),
])
@pytest.mark.parametrize("xml", [False, True])
def test_deceased_is_mapped(deceased: dict, expected: dict, warned: bool, xml: bool) -> None:
    child = person_event(adapt({**patient(), **deceased}, xml=xml))["subject"]["child"]
    assert {k: child[k] for k in ("date_of_death", "deceased") if k in child} == expected
    assert child["date_of_birth"] == "2012-05-04"


def test_partial_date_of_death_is_flagged_without_its_value() -> None:
    event = person_event(adapt({**patient(), "deceasedDateTime": "2026-09"}))
    [w] = event["data_quality"]
    assert (w["code"], w["field"]) == ("person.death_date_partial", "Patient.deceasedDateTime")
    assert "2026" not in w["message"]


# --- security labels: the PDS restricted patient ----------------------------------------------------------------

def restricted_patient(code: str = "R", system: str = CONFIDENTIALITY) -> dict:
    """A PDS-style restricted patient: labelled, and (as PDS returns it) with no address, telecom or GP."""
    child = patient()
    del child["address"]
    child["meta"] = {"versionId": "2", "security": [{"system": system, "code": code}]}
    return child


@pytest.mark.parametrize(("code", "system"), [("R", CONFIDENTIALITY), ("V", CONFIDENTIALITY),
                                              ("REDACTED", OBSERVATION_VALUE),
                                              ("R", "http://hl7.org/fhir/v3/Confidentiality")])
@pytest.mark.parametrize("xml", [False, True])
def test_restricted_label_marks_the_child_restricted(code: str, system: str, xml: bool) -> None:
    out = adapt(restricted_patient(code, system), xml=xml)
    assert out.rejections == []
    assert person_event(out)["subject"]["child"]["restricted"] is True


@pytest.mark.parametrize(("code", "system"), [("N", CONFIDENTIALITY), ("R", "http://example.org/local-labels"),
                                              ("HTEST", "http://terminology.hl7.org/CodeSystem/v3-ActReason")])
def test_other_labels_do_not_mark_the_child_restricted(code: str, system: str) -> None:
    assert "restricted" not in person_event(adapt(restricted_patient(code, system)))["subject"]["child"]


def test_restriction_travels_with_the_child_on_every_event_of_the_bundle() -> None:
    """A Flag about a restricted patient carries the mark too, or the protocol would release its address."""
    child = restricted_patient()
    child["address"] = [{"line": ["1 Fictional Road"], "postalCode": "LS1 4HR"}]
    out = adapt(bundle(child, flag(concept("836881000000105")),
                       condition(concept("37344009"), onset="2024-03-01")))
    assert len(out.events) == 3
    for event in out.events:
        assert event["subject"]["child"]["restricted"] is True


def test_restricted_related_person_is_marked() -> None:
    rp = {"resourceType": "RelatedPerson", "id": "rp-r", "patient": {"reference": "Patient/child-1"},
          "meta": {"security": [{"system": CONFIDENTIALITY, "code": "R"}]}, "name": [{"family": "Example"}]}
    [event] = [e for e in adapt(bundle(patient(), rp)).events if e["payload"]["record_kind"] == "RelatedPerson"]
    assert event["subject"]["related_people"][0]["person"]["restricted"] is True
    assert "restricted" not in event["subject"]["child"]


# --- communication needs ----------------------------------------------------------------------------------------

def _nhs_communication(language: str, interpreter: bool | None, preferred: bool | None = None) -> dict:
    parts: list[dict] = [{"url": "language", "valueCodeableConcept": concept(
        language, "https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage")}]
    if preferred is not None:
        parts.append({"url": "preferred", "valueBoolean": preferred})
    if interpreter is not None:
        parts.append({"url": "interpreterRequired", "valueBoolean": interpreter})
    return {"url": NHS_COMMUNICATION, "extension": parts}


@pytest.mark.parametrize("xml", [False, True])
def test_nhs_communication_language_and_interpreter(xml: bool) -> None:
    child = {**patient(), "extension": [_nhs_communication("pl", True)]}
    person = person_event(adapt(child, xml=xml))["subject"]["child"]
    assert (person["language"], person["interpreter_required"]) == ("pl", True)


def test_preferred_nhs_communication_language_wins_and_a_stated_no_is_kept() -> None:
    child = {**patient(), "extension": [_nhs_communication("fr", False), _nhs_communication("ro", False, True)],
             "communication": [{"language": concept("en", "urn:ietf:bcp:47")}]}
    person = person_event(adapt(child))["subject"]["child"]
    assert (person["language"], person["interpreter_required"]) == ("ro", False)


def test_patient_communication_and_core_interpreter_extension() -> None:
    child = {**patient(), "communication": [{"language": concept("cy", "urn:ietf:bcp:47")},
                                            {"language": concept("so", "urn:ietf:bcp:47"), "preferred": True}],
             "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired",
                            "valueBoolean": True}]}
    person = person_event(adapt(child))["subject"]["child"]
    assert (person["language"], person["interpreter_required"]) == ("so", True)


# --- SNOMED by concept ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "ancestor"), sorted(SNOMED_DESCENDANTS.items()))
def test_snomed_descendant_carries_its_listed_ancestors_concern(code: str, ancestor: str) -> None:
    [event] = [e for e in adapt(bundle(patient(), condition(concept(code)))).events
               if e["event_type"] == "health.clinical_finding"]
    assert event["risk"]["categories"] == list(SAFEGUARDING_SNOMED[ancestor].categories)
    assert gradings(event) == SAFEGUARDING_SNOMED[ancestor].agency_levels()
    assert event["risk"]["level"] == "unknown" and common_level(event) == "medium"
    assert event["payload"]["code"]["code"] == code


def test_descendant_table_points_only_at_listed_concepts_and_never_overrides_one() -> None:
    assert set(SNOMED_DESCENDANTS.values()) <= set(SAFEGUARDING_SNOMED)
    assert not set(SNOMED_DESCENDANTS) & set(SAFEGUARDING_SNOMED)


def test_descendant_code_in_another_system_does_not_match() -> None:
    assert concern_for([("http://example.org/local", "37344009")]) is None
    assert concern_for([(SNOMED, "37344009")]) is not None


# --- one rule for resources that carry no safeguarding fact -----------------------------------------------------

@pytest.mark.parametrize("resource", [
    {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "Patient/child-1"}},
    {"resourceType": "List", "id": "l1", "status": "current", "mode": "working"},
    {"resourceType": "Consent", "id": "c1", "status": "active", "scope": concept("patient-privacy"),
     "category": [concept("59284-0", "http://loinc.org")]},
    {"resourceType": "CareTeam", "id": "t1"},
    {"resourceType": "Organization", "id": "o1", "name": "Testshire Trust"},
    {"resourceType": "Practitioner", "id": "pr1"},
], ids=lambda r: r["resourceType"])
def test_resource_without_safeguarding_fact_is_skipped_and_counted(resource: dict) -> None:
    alone = adapt(resource)
    assert (alone.events, alone.rejections, alone.skipped) == ([], [], {resource["resourceType"]: 1})
    together = adapt(bundle(patient(), resource, resource, condition(concept("195662009"))))
    assert together.rejections == []
    assert together.skipped == {resource["resourceType"]: 2, "Condition": 1}
    assert [e["event_type"] for e in together.events] == ["person.identified"]


def test_a_type_name_that_is_not_fhir_is_rejected_without_quoting_it() -> None:
    out = adapt(bundle(patient(), {"resourceType": "Jane Testperson", "id": "x"}))
    assert [(r.record, r.field, r.reason) for r in out.rejections] == [
        ("Bundle.entry[1]", "resource.resourceType", "not a FHIR R4 resource type")]
    assert out.skipped == {}
    assert "Jane" not in str(out.rejections)


def test_convert_names_skipped_types_on_stderr(tmp_path: Path) -> None:
    doc = tmp_path / "feed.json"
    doc.write_text(json.dumps(bundle(patient(), {"resourceType": "AllergyIntolerance", "id": "a1",
                                                 "patient": {"reference": "Patient/child-1"}},
                                     condition(concept("195662009")))))
    org = tmp_path / "org.json"
    org.write_text(json.dumps({"resourceType": "Organization", "id": "o1", "name": "Testshire Trust"}))
    proc = subprocess.run([sys.executable, "-m", "broker.cli.main", "convert", "--agency", "health", str(doc),
                           str(org)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    assert f"{doc}: skipped (no safeguarding fact): 1 AllergyIntolerance, 1 Condition" in proc.stderr
    assert f"{org}: skipped (no safeguarding fact): 1 Organization" in proc.stderr
    assert "Testshire" not in proc.stderr


# --- UPN ----------------------------------------------------------------------------------------------------------

def test_upn_identifier_on_a_patient_is_mapped() -> None:
    child = patient()
    child["identifier"].append({"system": UPN_SYSTEM, "value": VALID_UPN.lower()})
    person = person_event(adapt(child))
    assert person["subject"]["child"]["upn"] == VALID_UPN
    assert person["subject"]["child"]["nhs_number"] == VALID_NHS
    assert "local_ids" not in person["subject"]["child"]
    assert person["data_quality"] == []


def test_invalid_upn_is_kept_and_flagged() -> None:
    child = patient()
    child["identifier"] = [{"system": UPN_SYSTEM, "value": "A801200001001"}]
    person = person_event(adapt(child))
    assert person["subject"]["child"]["upn"] == "A801200001001"
    assert [(w["code"], w["field"]) for w in person["data_quality"]] == [
        ("identifier.upn_invalid", "Patient.identifier[0].value")]


def test_patient_with_nhs_number_and_upn_gives_the_register_both_identities() -> None:
    """schemas/README (Linkage): a Patient carrying NHS number and UPN ties them; both reach the identity register."""
    from broker.pipeline.identify import LinkageKey, complete_identified

    child = patient()
    child["identifier"].append({"system": UPN_SYSTEM, "value": VALID_UPN})
    event = person_event(adapt(child))
    _, ids = complete_identified(event, LinkageKey(1, b"k" * 32), "2026-01-01T00:00:00Z")
    assert [i.kind for i in ids] == ["nhs", "upn"]
