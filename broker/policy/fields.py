"""Per event type, what each leaf path gets under a rule's field rules: computed once, when the protocol compiles.

Precedence, so that the narrow beats the broad: the path rule with the longest matching path, then the first
classification rule that names the leaf's label, then the defaults (operational: release; anything else: withhold).
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.policy.model import FieldOutcome, FieldRule
from broker.schema.classification import field_classes

# Operational fields (event id and type, times, the linkage token) are what any recipient of the event needs to use
# it; what reveals something about the child is sensitive_operational (schema 1.2.0) and withheld like the rest.
DEFAULT_OPERATIONAL = FieldOutcome("release", None, "default: operational fields travel with the event")
NOT_IN_SCHEMA = FieldOutcome("withhold", None, "default: not a field of this event type in the schema")


def covers(rule_path: str, leaf: str) -> bool:
    """A path rule covers its own leaf and everything below it (segment boundaries only)."""
    return leaf == rule_path or (leaf.startswith(rule_path) and leaf[len(rule_path)] in ".[")


def outcome_for(leaf: str, label: str, rules: Iterable[FieldRule]) -> FieldOutcome:
    rules = tuple(rules)
    best: tuple[int, FieldRule, str] | None = None
    for rule in rules:
        for path in rule.paths:
            if covers(path, leaf) and (best is None or len(path) > best[0]):
                best = (len(path), rule, path)
    if best is not None:
        _, rule, path = best
        return FieldOutcome(rule.action, rule.mask, f"{rule.where}: path {path}")
    for rule in rules:
        if label in rule.classifications:
            return FieldOutcome(rule.action, rule.mask, f"{rule.where}: classification {label}")
    if label == "operational":
        return DEFAULT_OPERATIONAL
    return FieldOutcome("withhold", None, f"default: no field rule covers classification {label}")


def field_table(event_type: str, rules: Iterable[FieldRule]) -> dict[str, FieldOutcome]:
    """Leaf path -> outcome for every leaf an event of this type can have."""
    rules = tuple(rules)
    return {leaf: outcome_for(leaf, label, rules) for leaf, label in field_classes(event_type).items()}
