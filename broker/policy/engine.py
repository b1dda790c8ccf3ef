"""Decide, for one event and one subscriber: default deny, first applying rule in file order wins.

A rule applies when it names the subscriber (or its role) and the event type, the source agency fits, its
conditions hold, and consent allows it (see consent.py). The field outcomes come from tables the compiler built per
event type, so a decision costs a dictionary lookup per leaf present in the event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.policy.conditions import unmet
from broker.policy.consent import ConsentState, effective_consent
from broker.policy.decision import ConsentOverride, Decision, decision_id
from broker.policy.fields import NOT_IN_SCHEMA
from broker.policy.model import FieldOutcome, Partition, Protocol, Rule, Subscriber
from broker.policy.paths import present_paths


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One rule tried against one event: applied or not, and why."""

    rule: Rule
    applies: bool
    reason: str
    override: ConsentOverride | None = None


def check_rule(rule: Rule, event: Mapping[str, Any], sub: Subscriber, consent: ConsentState,
               case_open: bool | None) -> RuleCheck:
    agency = (event.get("source") or {}).get("agency")
    if rule.source_agencies is not None and agency not in rule.source_agencies:
        return RuleCheck(rule, False, f"source agency {agency} is not among {', '.join(sorted(rule.source_agencies))}")
    why_not = unmet(rule.conditions, event, sub, consent, case_open)
    if why_not:
        return RuleCheck(rule, False, why_not)
    restriction = consent.restriction
    if rule.consent_based:
        if restriction:
            return RuleCheck(rule, False, f"consent {restriction}: honoured, the rule relies on consent")
        if consent.status != "given":
            return RuleCheck(rule, False, f"the rule relies on consent and consent status is {consent.status}")
        return RuleCheck(rule, True, "consent given")
    if restriction:
        if rule.gateway is None:
            return RuleCheck(rule, False, f"consent {restriction} and the rule cites no statutory gateway to "
                                          "override it")
        override = ConsentOverride(restriction, consent.recorded_on, rule.gateway)
        return RuleCheck(rule, True, f"consent {restriction} overridden by statutory gateway {rule.gateway}",
                         override)
    return RuleCheck(rule, True, "all conditions met")


def _withhold(protocol: Protocol, event_id: str, event_type: str, name: str, reason: str) -> Decision:
    return Decision(decision_id(event_id, name, protocol.id, protocol.version), event_id, event_type, name,
                    "withhold", None, (), None, (), (), (), protocol.id, protocol.version, reason)


PARTITION_MEMO_SIZE = 512


def partition(table: Mapping[str, FieldOutcome], paths: Sequence[str]) -> Partition:
    """Present leaf paths split into released, masked (with kind) and withheld under one rule's field table."""
    released, masked, withheld = [], [], []
    for path in paths:
        outcome = table.get(path, NOT_IN_SCHEMA)
        if outcome.action == "release":
            released.append(path)
        elif outcome.action == "mask":
            masked.append((path, outcome.mask))
        else:
            withheld.append(path)
    return tuple(released), tuple(masked), tuple(withheld)


def _deliver(protocol: Protocol, event_id: str, event_type: str, sub: Subscriber, check: RuleCheck,
             paths: Sequence[str]) -> Decision:
    rule = check.rule
    key = (event_type, tuple(paths))
    split = rule.partitions.get(key)
    if split is None:
        split = partition(rule.tables[event_type], paths)
        if len(rule.partitions) >= PARTITION_MEMO_SIZE:
            rule.partitions.clear()
        rule.partitions[key] = split
    released, masked, withheld = split
    reason = f"delivered under rule {rule.id} for purpose {rule.purpose}"
    if check.override:
        reason += f"; consent {check.override.restriction} overridden by {check.override.gateway}"
    return Decision(decision_id(event_id, sub.name, protocol.id, protocol.version), event_id, event_type,
                    sub.name, "deliver", rule.id, rule.lawful_basis, rule.purpose, released, masked, withheld,
                    protocol.id, protocol.version, reason, check.override)


def _decide(protocol: Protocol, event: Mapping[str, Any], name: str, consent: ConsentState,
            case_open: bool | None, paths: Callable[[], Sequence[str]]) -> Decision:
    event_id = str(event.get("event_id", ""))
    event_type = str(event.get("event_type", ""))
    sub = protocol.subscribers.get(name)
    if sub is None:
        return _withhold(protocol, event_id, event_type, name,
                         f"withheld: {name} is not a subscriber of protocol {protocol.revision} (default deny)")
    rules = protocol.index.get((name, event_type), ())
    if not rules:
        return _withhold(protocol, event_id, event_type, name,
                         f"withheld: no rule shares {event_type} with {name} (default deny)")
    misses = []
    for rule in rules:
        check = check_rule(rule, event, sub, consent, case_open)
        if check.applies:
            return _deliver(protocol, event_id, event_type, sub, check, paths())
        misses.append(f"{rule.id}: {check.reason}")
    return _withhold(protocol, event_id, event_type, name, "withheld: no rule applied (" + "; ".join(misses) + ")")


def decide(protocol: Protocol, event: Mapping[str, Any], subscriber: str, *, consent: ConsentState | None = None,
           case_open: bool | None = None) -> Decision:
    """The decision for one subscriber. `consent` is the broker's register for this child (None: the event's own
    consent block only); `case_open` is the case register's answer (None: unknown, so `case_open` conditions fail)."""
    return _decide(protocol, event, subscriber, effective_consent(consent, event), case_open,
                   lambda: present_paths(event))


def decide_all(protocol: Protocol, event: Mapping[str, Any], consent: ConsentState | None = None, *,
               case_open: bool | None = None) -> list[Decision]:
    """One decision per subscriber of the protocol, in protocol order."""
    effective = effective_consent(consent, event)
    found: list[tuple[str, ...]] = []

    def paths() -> tuple[str, ...]:  # walked once, and only if some subscriber is delivered to (a tuple: the
        if not found:  # partition memo's key is then the same object for each of them)
            found.append(tuple(present_paths(event)))
        return found[0]

    return [_decide(protocol, event, name, effective, case_open, paths) for name in protocol.subscribers]
