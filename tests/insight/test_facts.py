"""The insight facts: codes only, taken at intake, never a personal value, and never the reason an event is lost.

The attacker's test runs the whole bench mix through the real intake planner (adapters, identify, protect, audit
records) and looks for every personal value of every event in every audit record the plan makes."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from adapters.kit.interface import AdaptContext
from broker.audit.record import audit_record
from broker.bench.records import FORMATS, mix
from broker.insight.facts import insight_facts, postcode_district
from broker.pipeline.identify import LinkageKey
from broker.pipeline.intake import prepare
from broker.pipeline.intake_plan import ErasureFacts, IntakeParams, IntakeRequest, plan_intake, resolve_intake
from broker.pipeline.resolve import Known
from broker.schema.classification import classify, iter_leaves
from tests.unit.test_intake_plan import MemoryKeys

KEY = LinkageKey(1, b"insight-facts-test-linkage-key-1")
AT = "2026-12-01T10:00:00Z"
PERSONAL = frozenset({"identity", "contact", "location", "narrative", "criminal"})


def _events(fmt: Any, numbers: tuple[int, ...]) -> tuple[bytes, Any]:
    body = fmt.make(*numbers)
    ctx = AdaptContext(source="test", received_at=AT, system=fmt.system)
    return body, prepare(fmt.agency, body, ctx, KEY, content_type=fmt.content_type)


def _personal(event: dict[str, Any]) -> set[str]:
    out = set()
    for path, value in iter_leaves(event):
        if isinstance(value, str) and len(value) >= 6 and classify(event, path) in PERSONAL:
            out |= {value, value.replace(" ", "")}
    return out


@pytest.mark.parametrize("postcode,district", [
    ("ZZ3 1AB", "ZZ3"), ("zz12 3cd", "ZZ12"), (" ZZ1  0ZZ ", "ZZ1"), ("SW1A 1AA", "SW1A"), ("M1 1AE", "M1"),
    ("ZZ3", None), ("ZZ3 1A", None), ("ZZ31AB X", None), ("Testchild Example", None), ("", None), (None, None),
])
def test_postcode_district_keeps_only_the_outward_code_of_a_whole_postcode(postcode: Any, district: Any) -> None:
    assert postcode_district(postcode) == district


def test_no_personal_value_of_any_bench_record_reaches_any_audit_record_of_intake() -> None:
    keys, checked, with_codes = MemoryKeys(), 0, {"district": 0, "school_urn": 0, "gp_ods": 0}
    for fmt, numbers in mix(list(FORMATS), 70, batch=2):
        body, prepared = _events(fmt, numbers)
        assert prepared.events and not prepared.rejections, fmt.name
        personal = set().union(*(_personal(e) for e in prepared.events))
        request = IntakeRequest(fmt.agency, body, AT, f"intake:{fmt.agency}", fmt.system, fmt.content_type)
        plan = plan_intake(request, prepared, resolve_intake(prepared, Known()), ErasureFacts(), keys,
                           IntakeParams("sg.events", "sg.deadletter"))
        published = [a for a in plan.audits if a["kind"] == "event_published"]
        assert len(published) == len(prepared.events) and all("insight" in a for a in published)
        text = orjson.dumps(plan.audits).decode()
        leaked = [v for v in personal if v in text]
        assert not leaked, f"{fmt.name}: {len(leaked)} personal values in the audit records"
        for a in published:
            checked += 1
            for name in with_codes:
                with_codes[name] += name in a["insight"]
    assert checked > 100
    assert all(with_codes.values()), with_codes  # the mix does give every place breakdown something to count


def _referral() -> dict[str, Any]:
    fmt = next(f for f in FORMATS if f.name == "social_care.cin")
    _, prepared = _events(fmt, (3,))
    return next(e for e in prepared.events if e["event_type"] == "social_care.referral")


def test_codes_that_could_carry_a_value_are_left_out_and_the_event_stays_auditable() -> None:
    event = copy.deepcopy(_referral())
    child = event["subject"]["child"]
    child["addresses"] = [{"postcode": "Testchild Example", "use": "home"}, {"postcode": "ZZ7 2AB", "use": "other"}]
    child["school"] = {"urn": "Testchild Example"}
    child["gp_practice"] = {"ods_code": "9990000018"}
    event["payload"]["referral_source"] = "Testparent Example says"
    event["data_quality"] = [{"code": "x.y", "field": "subject.child.nhs_number.9990000018", "message": "m"},
                             {"code": "Not A Code", "field": "a", "message": "m"},
                             {"code": "date.invalid", "field": "Child[12]/CINdetails/CINreferralDate",
                              "message": "m"}]
    facts = insight_facts(event)
    assert facts["district"] == "ZZ7"  # the next whole postcode, by its outward code only
    assert "school_urn" not in facts and "gp_ods" not in facts and "referral_source" not in facts
    assert facts["warnings"] == [{"code": "x.y", "field": ""},
                                 {"code": "date.invalid", "field": "Child[]/CINdetails/CINreferralDate"}]
    text = orjson.dumps(facts).decode()
    assert "Testchild" not in text and "9990000018" not in text and "Testparent" not in text
    audit_record("event_published", time=AT, actor="intake:social_care", event_id=event["event_id"],
                 event_type=event["event_type"], subject=event["subject"]["linkage"]["token"], insight=facts)


def test_a_hub_decisions_facts_are_its_codes_never_its_rationale_or_the_lead_professional() -> None:
    event = copy.deepcopy(_referral())
    event["event_type"] = "mash.decision"
    event["payload"] = {"decision_kind": "initial", "concerns": [event["event_id"]], "enquiry_id": "enq-1",
                        "rag": "red", "outcome": "strategy_discussion_section_47",
                        "lead": {"partner": "exampleshire-csc", "agency": "social_care",
                                 "professional_name": "Testworker Example", "professional_contact": "01100 000000"},
                        "contributing_partners": ["exampleshire-police"],
                        "referring_partners": ["exampleshire-police", "Not A Partner"],
                        "rationale": "Fictitious rationale naming Testchild Example", "decided_at": AT}
    facts = insight_facts(event)
    assert {k: facts[k] for k in ("outcome", "rag", "lead_agency", "decision_kind", "enquiry_id")} == {
        "outcome": "strategy_discussion_section_47", "rag": "red", "lead_agency": "social_care",
        "decision_kind": "initial", "enquiry_id": "enq-1"}
    assert facts["concerns"] == [event["event_id"]] and facts["referring_partners"] == ["exampleshire-police"]
    text = orjson.dumps(facts).decode()
    assert "Testworker" not in text and "rationale" not in text and "Testchild" not in text and "01100" not in text


def test_the_audit_schema_refuses_a_personal_field_in_the_facts() -> None:
    from broker.audit.record import AuditRecordError

    for bad in ({"postcode": "ZZ7 2AB"}, {"district": "ZZ7 2AB"}, {"family_name": "Example"},
                {"school_urn": "Testchild"}, {"warnings": [{"code": "x", "field": "nhs 9990000018"}]}):
        with pytest.raises(AuditRecordError):
            audit_record("event_published", time=AT, actor="intake:police", event_id=_referral()["event_id"],
                         event_type="police.incident_child_present", subject="lt1_" + "a" * 24, insight=bad)
