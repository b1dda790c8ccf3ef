"""Promise: the sample protocol shares only what a partnership could sign in law (issue 19's sample findings).

The auditor's view: sweep every event type, every risk level and every child role at the sample protocol, looking
for the hub receiving a child's events with no open contact or referral, a s47 rule triggered by anything but the
LA's own record, an Operation Encompass notice carrying the offences or the child's role, an adult's health record
reaching the police by rule, or early help receiving what its description says stays behind.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from broker.policy import ConsentState, decide, load_protocol
from broker.policy.compile import event_types
from tests.policy.conftest import SAMPLE

PROTOCOL = load_protocol(SAMPLE)
CHILD = {"given_names": ["Testchild"], "family_name": "Example", "date_of_birth": "2016-05-14",
         "nhs_number": "9990000018", "school": {"urn": "999001"}, "gp_practice": {"ods_code": "Y99901"},
         "addresses": [{"lines": ["1 Test Street"], "postcode": "ZZ1 1ZZ"}], "phones": ["07700900001"]}
ADULT = {"role": "suspect", "person": {"given_names": ["Testadult"], "family_name": "Example",
                                       "addresses": [{"lines": ["9 Test Road"], "postcode": "ZZ9 9ZZ"}],
                                       "phones": ["07700900009"]}}
# The hub's only ways in without an open case: the force's own contact, and the LA's own s47 and plan records.
CONTACTS = {"police.public_protection_notice", "police.domestic_abuse_notification", "police.incident_child_present"}
LA_DECISIONS = {"social_care.section47_enquiry", "social_care.child_protection_plan_started",
                "social_care.child_protection_plan_reviewed", "social_care.child_protection_plan_ended"}


def _event(event_type: str, risk: str, payload: dict[str, Any] | None = None,
           child: dict[str, Any] | None = None) -> dict[str, Any]:
    family = event_type.split(".")[0]
    agency = family if family in ("police", "health", "education", "social_care") else "health"
    return {"event_id": f"g-{event_type}-{risk}", "event_type": event_type, "occurred_at": "2026-05-04",
            "source": {"agency": agency, "system": "TEST", "record_id": "t", "record_version": "1", "format": "test"},
            "risk": {"level": risk, "categories": ["domestic_abuse", "physical_abuse"]},
            "subject": {"child": copy.deepcopy(child or CHILD), "related_people": [copy.deepcopy(ADULT)]},
            "payload": payload or {}}


HUB_WATCH = {"mash.cumulative_concern", "mash.enquiry", "mash.clock_breached"}


def test_without_a_case_the_hub_watch_tells_the_hub_only_what_the_broker_itself_found() -> None:
    """The hub watch's signals reach the hub with no case open, but only as the broker made them (source agency
    `broker`) and only their operational fields (ids, types, agencies, times), never an agency's content."""
    for t in sorted(HUB_WATCH):
        forged = decide(PROTOCOL, _event(t, "unknown"), "mash_hub", case_open=None)
        assert not forged.delivered, t  # an agency's sender cannot raise one
        made = _event(t, "unknown")
        made["source"]["agency"] = "broker"
        decision = decide(PROTOCOL, made, "mash_hub", case_open=None)
        assert decision.delivered, t
        # the planted child and adult (names, NHS number, address, phone) and the risk categories stay behind
        assert not [p for p in decision.released if p.startswith(("subject.", "risk.categories"))], t


@pytest.mark.parametrize("risk", ["unknown", "medium", "critical"])
def test_the_hub_gets_no_bulk_feed(risk: str) -> None:
    """Promise: without an open contact or referral the hub receives only police contacts and the LA's decisions."""
    for case_open in (None, False):
        reached = {t for t in event_types()
                   if decide(PROTOCOL, _event(t, risk), "mash_hub", case_open=case_open).delivered}
        assert reached <= CONTACTS | LA_DECISIONS, sorted(reached - CONTACTS - LA_DECISIONS)


def test_no_risk_flag_triggers_the_s47_rule() -> None:
    """Promise: the s47 rule fires on the LA's recorded s47 or plan record, never on another agency's risk level."""
    for event_type in event_types():
        for risk in ("high", "critical"):
            decision = decide(PROTOCOL, _event(event_type, risk), "mash_hub", case_open=True)
            if decision.rule_id == "mash-s47-significant-harm":
                assert event_type in LA_DECISIONS and decision.event_type.startswith("social_care.")


@pytest.mark.parametrize("role", ["victim", "witness", "present", "suspect", "reported_missing", "other"])
def test_operation_encompass_never_carries_offences_role_or_adults(role: str) -> None:
    """Promise: the s49A notice to a school is the minimum dataset, whatever the child's role in the incident."""
    payload = {"incident_reference": "TEST/1", "occurred_start": "2026-05-04T22:00:00Z", "child_role": role,
               "children_present": True, "offences": [{"code": "TEST-OFF"}], "dash_risk": "high",
               "summary": "Fictitious.", "location": {"lines": ["1 Test Street"], "postcode": "ZZ1 1ZZ"}}
    for event_type in ("police.domestic_abuse_notification", "police.incident_child_present"):
        decision = decide(PROTOCOL, _event(event_type, "high", payload), "oakfield_dsl",
                          consent=ConsentState("not_sought", True, recorded_on="2026-04-01"))
        assert decision.rule_id == "school-operation-encompass"
        out = set(decision.released) | {p for p, _ in decision.masked}
        for banned in ("payload.child_role", "payload.offences[].code", "payload.dash_risk", "payload.summary",
                       "payload.location.lines[]", "subject.child.addresses[].lines[]", "subject.child.phones[]"):
            assert banned not in out
        assert not [p for p in out if p.startswith("subject.related_people")]


def test_no_adult_health_record_reaches_the_police_by_rule() -> None:
    """Promise: health to police about an adult is a recorded human decision, with or without consent or risk."""
    adult = {**CHILD, "date_of_birth": "1980-01-01"}
    for event_type in [t for t in event_types() if t.startswith(("health.", "person."))]:
        for risk in ("medium", "critical"):
            for consent in (None, ConsentState("given"), ConsentState("not_sought", True, recorded_on="2026-04-01")):
                decision = decide(PROTOCOL, _event(event_type, risk, child=adult), "police_ppu", consent=consent)
                assert not decision.delivered, (event_type, risk)


def test_early_help_never_receives_what_it_says_stays_behind() -> None:
    """Promise: early help gets no health or police event, referral source, SEN, adult's role or contact details."""
    payload = {"referral_date": "2026-05-04", "referral_source": "1B", "sen_provision": "E",
               "sen_needs": [{"type": "ASD", "rank": 1}], "factors": ["TEST"]}
    for event_type in event_types():
        decision = decide(PROTOCOL, _event(event_type, "medium", payload), "early_help",
                          consent=ConsentState("given"), case_open=True)
        if event_type.startswith(("health.", "police.")):
            assert not decision.delivered, event_type
        out = set(decision.released) | {p for p, _ in decision.masked}
        for banned in ("payload.referral_source", "payload.sen_provision", "payload.sen_needs[].type",
                       "payload.factors[]", "subject.related_people[].role", "risk.categories[]",
                       "subject.related_people[].person.addresses[].lines[]",
                       "subject.related_people[].person.phones[]"):
            assert banned not in out, (event_type, banned)
