"""A hand-built audit log whose every measure has a known answer (worked out by hand in the comments).

Four fictitious children (tokens only): A, B, C, and D, whose first token D1 was later found to be D2's child
(an identity merge). Every record is built with the real audit record builder, so the log is schema-valid.
"""

from __future__ import annotations

import uuid
from typing import Any

from broker.audit.record import audit_record

A, B, C = "lt1_" + "a" * 24, "lt1_" + "b" * 24, "lt1_" + "c" * 24
D1, D2 = "lt1_" + "d" * 24, "lt1_" + "e" * 24
SUBSCRIBER_PARTNER = {"police_ppu": "exampleshire-police", "mash_hub": "exampleshire-csc",
                      "gp_lead": "exampleshire-icb"}


def eid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"insight-test/{name}"))


def _published(name: str, event_type: str, subject: str, day: str, agency: str, **insight: Any) -> dict[str, Any]:
    return audit_record("event_published", time=f"{day}T09:00:00Z", actor=f"intake:{agency}", event_id=eid(name),
                        event_type=event_type, subject=subject, agency="mash_hub" if agency == "mash_hub" else agency,
                        insight={"occurred_on": day, "source_agency": agency, **insight})


def _decision(name: str, subject: str, day: str, outcome: str, concerns: list[str], kind: str = "initial",
              referring: list[str] | None = None) -> dict[str, Any]:
    return _published(name, "mash.decision", subject, day, "mash_hub", format="mash-hub-json", outcome=outcome,
                      rag="amber", decision_kind=kind, concerns=[eid(c) for c in concerns],
                      **({"referring_partners": referring} if referring else {}))


def _enquiry(name: str, subject: str, day: str, action: str, contribution: str, repeat: bool = False) -> dict[str, Any]:
    return _published(name, "mash.enquiry", subject, day, "mash_hub", enquiry_id=f"enq-{subject[-3:]}",
                      enquiry_action=action, concerns=[eid(contribution)],
                      **({"repeat_referral": True} if repeat else {}))


def _clock(event: str, event_type: str, subject: str, day: str, clock: str, action: str) -> dict[str, Any]:
    return audit_record("hub_clock", time=f"{day}T17:00:00Z", actor="hub_watch", subject=subject, event_id=eid(event),
                        event_type=event_type, action=action, target=clock, reason=f"clock {action}")


def _share(event: str, subject: str, day: str, subscriber: str, outcome: str, reason: str | None = None,
           delivered: bool = False) -> list[dict[str, Any]]:
    decision_id = str(uuid.uuid4())
    rule = {"rule_id": "some-rule", "lawful_basis": ["uk_gdpr_art6_1_e"]} if outcome == "deliver" else {}
    out = [audit_record("decision", time=f"{day}T10:00:00Z", actor="share", subject=subject, event_id=eid(event),
                        subscriber=subscriber, decision_id=decision_id, outcome=outcome, reason=reason, **rule)]
    if delivered:
        out.append(audit_record("delivered", time=f"{day}T10:00:01Z", actor="share", subject=subject,
                                event_id=eid(event), subscriber=subscriber, decision_id=decision_id))
    return out


def known_log() -> list[dict[str, Any]]:
    warn = {"code": "identifier.postcode_invalid", "field": "subject.child.addresses[]"}
    return [
        # contacts: police 2026-03 1, health 2026-03 1, education 2026-04 1
        _published("E1", "police.domestic_abuse_notification", A, "2026-03-02", "police", format="pole-json",
                   district="ZZ1"),
        _published("E2", "health.safeguarding_flag", B, "2026-03-10", "health", format="fhir-r4", district="ZZ2",
                   gp_ods="Y99901", warnings=[warn]),
        _published("E3", "education.attendance_concern", C, "2026-04-01", "education", format="ctf-xml",
                   district="ZZ1", school_urn="999101",
                   warnings=[warn, {"code": "code.unrecognised", "field": "Pupil/Sex"}]),
        # referrals: 2026-03 2 (R1 A, R2 B), 2026-04 1 (R3, under D's old token D1)
        _published("R1", "social_care.referral", A, "2026-03-03", "social_care", format="cin-census-xml",
                   district="ZZ1", referral_source="5A"),
        _published("R2", "social_care.referral", B, "2026-03-12", "social_care", format="cin-census-xml",
                   district="ZZ2", referral_source="1B"),
        _published("R3", "social_care.referral", D1, "2026-04-05", "social_care", format="cin-census-xml"),
        # s47 for A after R1; s47 for D under the surviving token D2: R1 and R3 convert, R2 does not (2 of 3)
        _published("S1", "social_care.section47_enquiry", A, "2026-03-20", "social_care"),
        _published("S2", "social_care.section47_enquiry", D2, "2026-04-10", "social_care"),
        audit_record("identity_linked", time="2026-04-06T08:00:00Z", actor="intake:social_care", subject=D2,
                     superseded=D1, event_id=eid("S2"), reason="identity merge"),
        # a CP plan for B *before* R2: no referral led to a plan (0 of 3)
        _published("P1", "social_care.child_protection_plan_started", B, "2026-02-01", "social_care"),
        # hub decisions: M1 A early help (police referred), M2 B NFA (health referred), M3 A s47 (step-up),
        # M4 B revised to s17 (not initial: left out of outcomes)
        _decision("M1", A, "2026-03-04", "early_help", ["E1", "R1"], referring=["exampleshire-police"]),
        _decision("M2", B, "2026-03-11", "no_further_action", ["E2"], referring=["exampleshire-icb"]),
        _decision("M3", A, "2026-03-25", "strategy_discussion_section_47", ["R1"]),
        _decision("M4", B, "2026-03-13", "section_17_assessment", ["E2"], kind="revised"),
        # feedback: M1 reached the police's subscriber (sent); M2 reached only the hub (not sent): 1 of 2
        *_share("M1", A, "2026-03-04", "police_ppu", "deliver", delivered=True),
        *_share("M2", B, "2026-03-11", "mash_hub", "deliver", delivered=True),
        *_share("E1", A, "2026-03-02", "mash_hub", "deliver", delivered=True),
        *_share("E2", B, "2026-03-10", "mash_hub", "deliver", delivered=True),
        *_share("E2", B, "2026-03-10", "police_ppu", "withhold", reason="no rule matched"),
        *_share("E3", C, "2026-04-01", "gp_lead", "withhold", reason="consent refused"),
        # clocks: decision met E1, R2; breached E2 (2 of 3). Encompass met E1, breached E3 (1 of 2)
        _clock("E1", "police.domestic_abuse_notification", A, "2026-03-02", "decision", "met"),
        _clock("E2", "health.safeguarding_flag", B, "2026-03-11", "decision", "breached"),
        _clock("R2", "social_care.referral", B, "2026-03-12", "decision", "met"),
        _clock("E1", "police.domestic_abuse_notification", A, "2026-03-02", "encompass", "met"),
        _clock("E3", "education.attendance_concern", C, "2026-04-01", "encompass", "breached"),
        # enquiries: opened E1, joined R1 (A); opened E2, joined R2 as a repeat referral (B); opened R3 (D1)
        _enquiry("Q1", A, "2026-03-02", "opened", "E1"),
        _enquiry("Q2", A, "2026-03-03", "joined", "R1"),
        _enquiry("Q3", B, "2026-03-10", "opened", "E2"),
        _enquiry("Q4", B, "2026-03-12", "joined", "R2", repeat=True),
        _enquiry("Q5", D1, "2026-04-05", "opened", "R3"),
        # cumulative concerns: A's before M1 (became early help); C's with no decision since (none_yet)
        _published("CC1", "mash.cumulative_concern", A, "2026-03-03", "mash_hub", rule="three-low",
                   concerns=[eid("E1")]),
        _published("CC2", "mash.cumulative_concern", C, "2026-04-02", "mash_hub", rule="three-low",
                   concerns=[eid("E3")]),
        # noise no measure counts
        audit_record("key_unwrap", time="2026-03-05T10:00:00Z", actor="share", subject=A, reason="share"),
    ]
