"""The protocol's `hub` section: what the broker watches for on the hub's behalf (issue 16), as data.

- `cumulative_concerns`: rules over a child's recent history. Each counts the child's events of its types whose
  risk level is below its threshold (none of them alone met it), and raises `mash.cumulative_concern` when at least
  `at_least` of them, from at least `agencies_at_least` agencies, fall within `window_days`.
- `enquiries`: contributions (referrals and contacts) about one child within `window_hours` of the enquiry's last
  contribution are one MASH enquiry; `decided_by` names the hub decision event types that close it.
- `repeat_referrals`: a referral within `within_months` of a previous referral's closure is flagged.
- `clocks`: the decision clock (contact to hub decision, one working day) and Operation Encompass (a police
  domestic abuse incident with a child present reaches a subscriber of `encompass.role` before the next school day).

Compiled here (problems name the YAML path and the reason), evaluated by broker/pipeline/hub/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.policy.codes import RISK_ORDER

Problem = tuple[list[str | int], str]


@dataclass(frozen=True, slots=True)
class CumulativeRule:
    id: str
    description: str
    event_types: frozenset[str]
    below: str  # a risk level: each counted event is below it
    at_least: int
    agencies_at_least: int
    window_days: int

    def counts(self, event_type: str, level: str) -> bool:
        """Whether an event of this type and risk level is one of this rule's low-level concerns."""
        return event_type in self.event_types and RISK_ORDER.get(level, 0) < RISK_ORDER[self.below]


@dataclass(frozen=True, slots=True)
class HubRules:
    cumulative: tuple[CumulativeRule, ...] = ()
    enquiry_types: frozenset[str] = frozenset()
    enquiry_window_hours: int = 72
    decision_types: frozenset[str] = frozenset()  # hub decisions: close the enquiry, stop its decision clock
    repeat_within_months: int = 12
    decision_clock: bool = False
    encompass_types: frozenset[str] = frozenset()
    encompass_role: str = "school_dsl"
    tests: tuple[Mapping[str, Any], ...] = ()  # `policy test` cases (broker/pipeline/hub/testing.py)

    @property
    def watches(self) -> bool:
        """Whether the protocol asks the broker to watch anything (no `hub` section: no hub watch runs)."""
        return bool(self.cumulative or self.enquiry_types or self.encompass_types)


def explain_hub(rules: HubRules) -> dict[str, Any]:
    """What the broker watches for, in words and numbers (`mash-broker policy explain --hub`)."""
    return {
        "cumulative_concerns": [
            {"rule": r.id, "description": r.description, "event_types": sorted(r.event_types),
             "counts_when": f"risk level below {r.below} (none of them alone met the threshold)",
             "raises_when": f"at least {r.at_least} concerns from at least {r.agencies_at_least} agencies within "
                            f"{r.window_days} days", "window_days": r.window_days}
            for r in rules.cumulative],
        "enquiries": {"contributions": sorted(rules.enquiry_types), "window_hours": rules.enquiry_window_hours,
                      "closed_by": sorted(rules.decision_types),
                      "rule": f"a contribution within {rules.enquiry_window_hours} hours of the open enquiry's "
                              "latest joins it; otherwise it opens a new one"},
        "repeat_referrals": {"within_months": rules.repeat_within_months,
                             "rule": f"a {REFERRAL} within {rules.repeat_within_months} months of the closure of "
                                     "the case a previous referral opened"},
        "clocks": {"decision": "each enquiry decided within one working day of its first contribution's receipt"
                               if rules.decision_clock else None,
                   "encompass": {"event_types": sorted(rules.encompass_types), "reaches": rules.encompass_role,
                                 "due": "before the start of the next school day"}
                   if rules.encompass_types else None},
    }


REFERRAL = "social_care.referral"  # the DfE's repeat-referral measure counts children's social care referrals


def build_hub(raw: Mapping[str, Any] | None, expand: Callable[[str], frozenset[str]],
              roles: frozenset[str]) -> tuple[HubRules, list[Problem]]:
    """The compiled `hub` section (none: nothing watched) and its problems. `expand` turns an event type pattern
    into the schema's types (unknown: empty); `roles` are the subscribers' roles."""
    if not raw:
        return HubRules(), []
    problems: list[Problem] = []

    def types(parts: list[str | int], patterns: list[str]) -> frozenset[str]:
        out: set[str] = set()
        for j, pattern in enumerate(patterns):
            found = expand(pattern)
            if not found:
                problems.append(([*parts, j], "not an event type of the schema (nor a pattern matching one)"))
            out |= found
        return frozenset(out)

    rules = []
    seen: set[str] = set()
    for i, rule in enumerate(raw.get("cumulative_concerns", [])):
        at: list[str | int] = ["hub", "cumulative_concerns", i]
        if rule["id"] in seen:
            problems.append(([*at, "id"], "duplicate id: already used earlier in hub.cumulative_concerns"))
        seen.add(rule["id"])
        if rule["agencies_at_least"] > rule["at_least"]:
            problems.append(([*at, "agencies_at_least"], "more agencies than concerns: the rule can never hold"))
        if RISK_ORDER[rule["below"]] == min(RISK_ORDER.values()):
            problems.append(([*at, "below"], "no risk level is below the lowest: the rule can never count"))
        rules.append(CumulativeRule(rule["id"], rule.get("description", ""), types([*at, "event_types"],
                                    rule["event_types"]), rule["below"], rule["at_least"],
                                    rule["agencies_at_least"], rule["window_days"]))
    enquiries = raw.get("enquiries", {})
    clocks = raw.get("clocks", {})
    encompass = clocks.get("encompass") or {}
    if encompass and encompass.get("role", "school_dsl") not in roles:
        problems.append((["hub", "clocks", "encompass", "role"], "no subscriber has this role: the clock could "
                         "never be met"))
    out = HubRules(
        cumulative=tuple(rules),
        enquiry_types=types(["hub", "enquiries", "contributions"], enquiries.get("contributions", [])),
        enquiry_window_hours=enquiries.get("window_hours", 72),
        decision_types=types(["hub", "enquiries", "decided_by"], enquiries.get("decided_by", [])),
        repeat_within_months=raw.get("repeat_referrals", {}).get("within_months", 12),
        decision_clock=bool(clocks.get("decision", False)),
        encompass_types=types(["hub", "clocks", "encompass", "event_types"], encompass.get("event_types", [])),
        encompass_role=encompass.get("role", "school_dsl"),
        tests=tuple(raw.get("tests", [])))
    if out.decision_clock and not out.enquiry_types:
        problems.append((["hub", "clocks", "decision"], "the decision clock runs per enquiry: list "
                         "hub.enquiries.contributions"))
    return out, problems
