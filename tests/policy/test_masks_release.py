"""Every mask kind, and the released view: withheld leaves gone, masked leaves transformed, delivery block."""

from __future__ import annotations

import pytest

from broker.policy import PolicyError, decide, release
from broker.policy.masks import REDACTED, age_band, keyed_hash, partial, postcode_district, redact, year_only
from tests.policy.conftest import MASK_KEY, SECRETS, base_protocol, compile_data, make_event


def test_redact() -> None:
    assert redact("Testchild") == REDACTED and redact(12) == REDACTED


@pytest.mark.parametrize(("value", "masked"), [
    ("9990000018", "******0018"), ("TEST-CHILD-0001", "***********0001"), ("12", "*2"), ("Testchild", "T***"),
    ("", REDACTED), (7, REDACTED),
])
def test_partial(value, masked) -> None:
    assert partial(value) == masked


def test_keyed_hash_is_stable_per_subscriber_and_unlinkable_across() -> None:
    a = keyed_hash("9990000018", key=MASK_KEY, subscriber="hub")
    assert a == keyed_hash("9990000018", key=MASK_KEY, subscriber="hub") and a.startswith("kh1_")
    assert a != keyed_hash("9990000018", key=MASK_KEY, subscriber="gp_one")
    assert a != keyed_hash("9990000018", key=b"another-fictitious-key-000000000", subscriber="hub")
    assert a != keyed_hash("9990000026", key=MASK_KEY, subscriber="hub")
    assert "0018" not in a
    with pytest.raises(PolicyError, match="needs the mask key"):
        keyed_hash("9990000018", key=b"", subscriber="hub")


@pytest.mark.parametrize(("value", "masked"), [
    ("2016-05-14", "2016"), ("2026-05-02T22:10:00Z", "2026"), ("Testchild", REDACTED), (None, REDACTED),
])
def test_year_only(value, masked) -> None:
    assert year_only(value) == masked


@pytest.mark.parametrize(("dob", "on", "band"), [
    ("2026-03-01", "2026-05-04", "under 1"), ("2025-05-04", "2026-05-04", "1-4"), ("2021-05-05", "2026-05-04", "1-4"),
    ("2016-05-14", "2026-05-04", "5-9"), ("2016-05-04", "2026-05-04", "10-15"), ("2010-01-01", "2026-05-04", "16-17"),
    ("2008-05-04", "2026-05-04", "18+"), ("2026-08-01", "2026-05-04", "unborn"), ("Testchild", "2026-05-04", REDACTED),
    ("2016-05-14", None, REDACTED),
])
def test_age_band(dob, on, band) -> None:
    assert age_band(dob, on=on) == band


@pytest.mark.parametrize(("value", "masked"), [
    ("ZZ1 1ZZ", "ZZ1"), ("ls17 7df", "LS17"), ("SW1A 1AA", "SW1A"), ("M1 1AE", "M1"), ("LS17", "LS17"),
    ("1 Test Street", REDACTED), (None, REDACTED),
])
def test_postcode_district(value, masked) -> None:
    assert postcode_district(value) == masked


def _masking_protocol():
    data = base_protocol()
    data["rules"][0].update(
        event_types=["police.incident_child_present"],
        lawful_basis=["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "dpa2018_s36_4",
                      "children_act_1989_s47"],
        fields=[
            {"paths": ["subject.child.nhs_number"], "action": "mask", "mask": "partial"},
            {"paths": ["subject.child.la_child_id"], "action": "mask", "mask": "keyed_hash"},
            {"paths": ["subject.child.date_of_birth"], "action": "mask", "mask": "age_band"},
            {"paths": ["subject.related_people[].person.date_of_birth"], "action": "mask", "mask": "year_only"},
            {"paths": ["subject.child.addresses[].postcode"], "action": "mask", "mask": "postcode_district"},
            {"paths": ["subject.related_people"], "action": "withhold"},
            {"paths": ["subject.related_people[].role"], "action": "release"},
            {"classifications": ["narrative"], "action": "mask", "mask": "redact"},
            {"classifications": ["identity", "criminal"], "action": "release"},
        ])
    return compile_data(data)


def _incident():
    return make_event("police.incident_child_present", "police",
                      {"incident_reference": "TEST/0001", "child_role": "present",
                       "summary": "Fictitious narrative about the incident."}, occurred_at="2026-05-04T21:00:00Z")


def test_release_projects_the_event_under_the_decision() -> None:
    p = _masking_protocol()
    event = _incident()
    decision = decide(p, event, "hub")
    view = release(event, decision, mask_key=MASK_KEY)
    child = view["subject"]["child"]
    assert child["nhs_number"] == "******0018"
    assert child["la_child_id"] == keyed_hash("TEST-CHILD-0001", key=MASK_KEY, subscriber="hub")
    assert child["date_of_birth"] == "5-9"
    assert child["addresses"] == [{"postcode": "ZZ1", "use": "home"}]  # lines, city: location, no rule: withheld
    assert child["given_names"] == ["Testchild"] and child["family_name"] == "Example"
    assert "phones" not in child and "ethnicity" not in child and "gp_practice" not in child
    assert view["subject"]["related_people"] == [{"role": "parent", "person": {"date_of_birth": "1990"}}]
    assert view["payload"] == {"incident_reference": "TEST/0001", "child_role": "present", "summary": REDACTED}
    assert view["event_id"] == event["event_id"] and view["subject"]["linkage"] == event["subject"]["linkage"]
    assert view["delivery"] == {
        "protocol_id": "test-isp", "protocol_version": "1", "rule_id": "hub-identity",
        "lawful_basis": ["uk_gdpr_art6_1_e", "uk_gdpr_art9_2_g", "dpa2018_sch1_para6", "dpa2018_s36_4",
                         "children_act_1989_s47"],
        "purpose": "triage", "decision_id": decision.decision_id, "consent_override": None}
    assert event["subject"]["child"]["nhs_number"] == "9990000018"  # the input is not changed


def test_release_drops_leaves_the_decision_did_not_see_and_empty_containers() -> None:
    p = _masking_protocol()
    event = _incident()
    decision = decide(p, event, "hub")
    event["payload"]["extra"] = {"deep": ["Fictitious narrative"]}
    event["data_quality"] = []
    view = release(event, decision, mask_key=MASK_KEY)
    assert "extra" not in view["payload"] and "data_quality" not in view
    assert not [s for s in SECRETS if s in str(view["payload"])]


def test_release_refuses_a_withhold_decision_another_event_or_a_missing_mask_key() -> None:
    p = _masking_protocol()
    event = _incident()
    withheld = decide(p, event, "gp_one")
    with pytest.raises(PolicyError, match="withholds the event"):
        release(event, withheld, mask_key=MASK_KEY)
    other = make_event("police.incident_child_present", "police", {"incident_reference": "TEST/0002"},
                       record_id="test-record-2")
    with pytest.raises(PolicyError, match="about another event"):
        release(other, decide(p, event, "hub"), mask_key=MASK_KEY)
    with pytest.raises(PolicyError, match="needs the mask key"):
        release(event, decide(p, event, "hub"), mask_key=b"")


def test_a_mask_that_does_not_fit_redacts() -> None:
    data = base_protocol()
    data["rules"][0]["fields"] = [{"classifications": ["identity"], "action": "mask", "mask": "year_only"}]
    data["rules"][0]["lawful_basis"] = ["uk_gdpr_art6_1_e", "dpa2018_s36_4", "children_act_1989_s47"]
    p = compile_data(data)
    event = _incident()
    view = release(event, decide(p, event, "hub"), mask_key=MASK_KEY)
    assert view["subject"]["child"]["date_of_birth"] == "2016"
    assert view["subject"]["child"]["given_names"] == [REDACTED]
