"""`mash-broker policy test` for the protocol's hub section: each case's history through the hub watch's planner,
its raises compared with what the case expects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from broker.pipeline.hub.calendar import Calendar
from broker.pipeline.hub.history import derived_id
from broker.pipeline.hub.plan import CUMULATIVE, ENQUIRY, HubFacts, plan_hub
from broker.policy.hub import HubRules
from broker.policy.thresholds import RiskScale

TEST_TOKEN = "lt1_" + "T" * 32  # a fictitious child: the cases name no one
_NO_HOLIDAYS = Calendar(ZoneInfo("Europe/London"), frozenset(), frozenset())  # the cases test no clock


@dataclass(frozen=True, slots=True)
class HubTestResult:
    name: str
    passed: bool
    failures: tuple[str, ...]


def test_events(case: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A case's history as the envelope fields the planner reads (no content: the hub watch reads none)."""
    return [{"event_id": derived_id("hub-test", case["name"], str(i)), "event_type": h["event_type"],
             "schema_version": "1.4.0", "occurred_at": h["occurred_at"], "recorded_at": h["occurred_at"],
             "source": {"agency": h["agency"]}, "risk": {"level": h.get("level", "unknown")},
             "subject": {"linkage": {"token": TEST_TOKEN, "key_version": 1, "basis": "source_local_id",
                                     "confidence": "high"}}}
            for i, h in enumerate(case["history"])]


def run_hub_test(rules: HubRules, case: Mapping[str, Any],
                 scales: Mapping[str, RiskScale] | None = None) -> HubTestResult:
    plan = plan_hub(test_events(case), HubFacts(), rules, _NO_HOLIDAYS, scales)
    raised = sorted({e["payload"]["rule"] for e in plan.events if e["event_type"] == CUMULATIVE})
    enquiries = {e["payload"]["enquiry_id"] for e in plan.events if e["event_type"] == ENQUIRY}
    repeats = sum(1 for e in plan.events if e["event_type"] == ENQUIRY and "repeat_referral" in e["payload"])
    expect, failures = case["expect"], []
    if "cumulative_concerns" in expect and raised != sorted(expect["cumulative_concerns"]):
        failures.append(f"cumulative concerns raised: expected {sorted(expect['cumulative_concerns'])}, "
                        f"got {raised}")
    if "enquiries" in expect and len(enquiries) != expect["enquiries"]:
        failures.append(f"enquiries: expected {expect['enquiries']}, got {len(enquiries)}")
    if "repeat_referrals" in expect and repeats != expect["repeat_referrals"]:
        failures.append(f"repeat referrals: expected {expect['repeat_referrals']}, got {repeats}")
    return HubTestResult(case["name"], not failures, tuple(failures))


def run_hub_tests(rules: HubRules, scales: Mapping[str, RiskScale] | None = None) -> list[HubTestResult]:
    return [run_hub_test(rules, case, scales) for case in rules.tests]
