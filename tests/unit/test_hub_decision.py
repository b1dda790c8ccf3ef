"""The hub's decision as canonical events (broker/pipeline/hub_decision.py): valid under the schema, classified,
deterministic ids, one action event per partner, the rationale only on the decision; refusals name fields only."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from broker.pipeline.hub_decision import HubDecision, decision_events, problems, record_version
from broker.schema.classification import classify, field_classes, iter_leaves
from broker.schema.validate import validate_event

TOKEN = "lt1_" + "A" * 32
PARTNERS = {"exampleshire-csc": "social_care", "exampleshire-police": "police", "oakfield-primary": "education"}
RATIONALE = "Fictitious police intelligence about an adult in the household."


def body(**extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reference": "MASH-2026-0001", "subject_token": TOKEN,
        "concerns": ["00000000-0000-5000-8000-000000000002"], "rag": "red",
        "outcome": "strategy_discussion_section_47",
        "lead": {"partner": "exampleshire-csc", "professional_role": "social_worker",
                 "professional_name": "Testworker Example", "professional_contact": "duty@example.org"},
        "contributing_partners": ["exampleshire-police", "oakfield-primary"],
        "referring_partners": ["exampleshire-police"],
        "actions": [{"partner": "oakfield-primary", "action": "attend_strategy_discussion",
                     "meeting_at": "2026-12-01T10:00:00Z", "instructions": "Bring the attendance record."},
                    {"partner": "exampleshire-police", "action": "visit", "due_by": "2026-12-01T18:00:00+00:00"}],
        "rationale": RATIONALE, "decided_at": "2026-11-30T15:00:00Z"}
    out.update(extra)
    return out


def events(**extra: Any) -> list[dict[str, Any]]:
    return decision_events(HubDecision.model_validate(body(**extra)), token=TOKEN, hub="mash_hub",
                           received_at="2026-11-30T15:00:01.000Z", partners=PARTNERS)


def test_a_decision_is_a_valid_decision_event_and_one_action_event_per_action() -> None:
    out = events()
    assert [e["event_type"] for e in out] == ["mash.decision", "mash.action", "mash.action"]
    for event in out:
        assert validate_event(event) == [], event["event_type"]
        assert event["subject"]["linkage"] == {"token": TOKEN, "key_version": 1, "basis": "subject_token",
                                               "confidence": "high"}
        assert event["source"]["agency"] == "mash_hub" and event["source"]["system"] == "mash_hub"
        assert event["risk"]["agency_levels"] == [{"scale": "mash_rag", "level": "red"}]
    decision, school, police = out
    assert decision["payload"]["lead"]["agency"] == "social_care"  # from the protocol, not the hub's say
    assert school["payload"]["assigned_partner"] == "oakfield-primary"
    assert police["payload"]["assigned_partner"] == "exampleshire-police"
    assert police["payload"]["due_by"] == "2026-12-01T18:00:00Z"
    assert {a["payload"]["decision_event_id"] for a in (school, police)} == {decision["event_id"]}


def test_the_rationale_is_only_on_the_decision_and_classified_narrative() -> None:
    decision, *actions = events()
    assert classify(decision, "payload.rationale") == "narrative"
    for action in actions:
        assert RATIONALE not in str(action)
    # the partners named and the RAG rating are read by the share stage: sensitive, encrypted, withheld by default
    assert classify(decision, "payload.contributing_partners[]") == "sensitive_operational"
    assert classify(actions[0], "payload.assigned_partner") == "sensitive_operational"
    assert classify(decision, "payload.rag") == "sensitive_operational"
    assert classify(decision, "payload.lead.professional_name") == "identity"
    for event in (decision, *actions):  # every leaf is a schema leaf with its own label, none falls back
        known = field_classes(event["event_type"])
        assert [p for p, _ in iter_leaves(event) if p not in known] == []


def test_ids_follow_the_content_so_a_resend_is_the_same_events() -> None:
    first, again = events(), events()
    assert [e["event_id"] for e in first] == [e["event_id"] for e in again]
    changed = events(outcome="section_17_assessment")
    assert {e["event_id"] for e in changed}.isdisjoint(e["event_id"] for e in first)
    assert record_version(HubDecision.model_validate(body())).startswith("sha256:")


def test_the_protocol_refuses_unknown_partners_by_position_not_value() -> None:
    decision = HubDecision.model_validate(body(contributing_partners=["exampleshire-police", "no-such-partner"],
                                               actions=[{"partner": "secret-unit", "action": "visit"}]))
    found = problems(decision, PARTNERS)
    assert found == ["contributing_partners[1]: not a partner of the protocol",
                     "actions[0].partner: not a partner of the protocol"]
    assert not any("secret-unit" in p or "no-such-partner" in p for p in found)


def test_other_outcome_needs_its_code_and_a_child_needs_an_identifier() -> None:
    decision = HubDecision.model_validate(body(outcome="other", child={"given_names": ["Testchild"],
                                                                      "family_name": "Example"}))
    found = problems(decision, PARTNERS)
    assert "outcome_other: needed with outcome other, and only then" in found
    assert any(p.startswith("child: needs the NHS number or UPN") for p in found)


@pytest.mark.parametrize("change", [
    {"rag": "purple"}, {"outcome": "arrest"}, {"subject_token": "9990000018"}, {"concerns": []},
    {"decided_at": "2026-11-30T15:00:00"},  # no timezone: ambiguous by an hour half the year
    {"unexpected": "field"}, {"rationale": "x" * 10001},
])
def test_bad_input_is_refused_by_the_model(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HubDecision.model_validate(body(**change))
