"""Invariants: named properties a protocol promises about every decision it can make (the `invariants` section).

An invariant says which decisions it is about (subscribers or roles, event types, source agencies, the facts of
`when`, written as rule conditions, and the child's objection) and what they share (`shares`: classifications or
paths; none: the delivery itself). Without `require` it is a "never": no such decision may share that. With
`require: {lawful_basis_any: [...]}` every such decision must be under a rule citing one of those codes (on the
discloser's or the recipient's side); a group name stands for its codes (`uk_gdpr_article_9`, `statute`,
`duty_to_disclose`...).

    - id: school-no-police-intelligence
      description: The school never receives police intelligence or criminal records but under s49A.
      subscribers: [school_dsl]
      shares: {classifications: [criminal, intelligence]}
      require: {lawful_basis_any: [domestic_abuse_act_2021_s49a]}

Pure: `breaches` judges one decision; prove.py walks every decision the protocol can make.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.policy.codes import ALIASES, BASES, BY_CODE
from broker.policy.conditions import unmet
from broker.policy.consent import ConsentState
from broker.policy.decision import Decision
from broker.policy.facts import CaseFacts
from broker.policy.fields import covers
from broker.policy.model import Conditions, Rule, Subscriber

# Group names an invariant may require instead of codes: each part of the law (codes.py groups) and each kind of
# statutory provision (duty to disclose, duty to co-operate, permissive power).
BASIS_GROUPS: dict[str, frozenset[str]] = {}
for _b in BASES:
    BASIS_GROUPS.setdefault(_b.group, frozenset())
    BASIS_GROUPS[_b.group] |= {_b.code}
    if _b.kind:
        BASIS_GROUPS.setdefault(_b.kind, frozenset())
        BASIS_GROUPS[_b.kind] |= {_b.code}


def expand_basis(names: list[str]) -> frozenset[str] | None:
    """Codes, aliases and group names -> codes; None when one is none of them."""
    out: set[str] = set()
    for name in names:
        if name in BASIS_GROUPS:
            out |= BASIS_GROUPS[name]
        elif name in ALIASES:
            out |= set(ALIASES[name])
        elif name in BY_CODE:
            out.add(name)
        else:
            return None
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Invariant:
    id: str
    where: str  # YAML path, e.g. invariants[2]
    description: str
    subscribers: tuple[str, ...] | None  # names or roles; None: every subscriber
    event_types: frozenset[str]  # expanded
    source_agencies: frozenset[str] | None
    when: Conditions  # the decisions it is about: the facts under which it is asked (rule condition language)
    objection: bool | None  # the child's Art 21 objection stands (True) / does not (False); None: either
    classifications: frozenset[str] | None  # what it is about sharing; both None: the delivery itself
    paths: tuple[str, ...] | None
    include_masked: bool  # a masked leaf counts as shared (default) or only released ones do
    require_basis: frozenset[str] | None  # None: never; else the deciding rule cites one of these
    require_names: tuple[str, ...] = ()  # as written, for messages

    def about(self, sub: Subscriber, event_type: str) -> bool:
        return event_type in self.event_types and (
            self.subscribers is None or sub.name in self.subscribers or sub.role in self.subscribers)

    def targets(self, path: str, label: str) -> bool:
        if self.classifications is None and self.paths is None:
            return True
        return (self.classifications is not None and label in self.classifications) or \
            (self.paths is not None and any(covers(p, path) for p in self.paths))

    @property
    def about_fields(self) -> bool:
        return self.classifications is not None or self.paths is not None


@dataclass(frozen=True, slots=True)
class Breach:
    invariant: str
    rule_id: str
    paths: tuple[str, ...]  # the shared leaves it is about (empty for an invariant about the delivery itself)
    why: str


def asked(invariant: Invariant, event: Mapping[str, Any], sub: Subscriber, consent: ConsentState,
          facts: CaseFacts, source_partner: str | None) -> bool:
    """Is this decision one the invariant is about? Its `when` read by the engine's own condition check."""
    agency = (event.get("source") or {}).get("agency")
    if invariant.source_agencies is not None and agency not in invariant.source_agencies:
        return False
    if invariant.objection is not None and consent.objection is not invariant.objection:
        return False
    return unmet(invariant.when, event, sub, consent, facts, source_partner) is None


def breaches(invariant: Invariant, decision: Decision, rule: Rule | None, shared: Mapping[str, str],
             label_of: Callable[[str], str]) -> Breach | None:
    """The breach of one delivered decision (already known to be `asked`), or None. `shared`: leaf path ->
    'released' | 'masked' for the leaves it shares."""
    if not decision.delivered or rule is None:
        return None
    counted = [p for p, how in shared.items() if how == "released" or invariant.include_masked]
    hits = tuple(sorted(p for p in counted if invariant.targets(p, label_of(p)))) if invariant.about_fields else ()
    if invariant.about_fields and not hits:
        return None
    if invariant.require_basis is not None:
        cited = {*rule.lawful_basis, *(rule.recipient_basis or ())}
        if cited & invariant.require_basis:
            return None
        why = f"rule {rule.id} cites none of {', '.join(invariant.require_names)}"
    else:
        why = f"rule {rule.id} shares it, and the invariant says never"
    return Breach(invariant.id, rule.id, hits, why)


Problems = list[tuple[list[str | int], str]]  # (YAML path parts, reason)


def build_invariant(raw: Mapping[str, Any], i: int, expand: Callable[[str], frozenset[str]],
                    conditions: Callable[[Mapping[str, Any]], Conditions], subscribers: set[str],
                    every_type: frozenset[str]) -> tuple[Invariant, Problems]:
    """One `invariants[i]` entry compiled; the problems name the YAML path. `expand`: event type pattern -> types;
    `conditions`: the compiler's reading of a conditions mapping (one reading for rules and invariants);
    `subscribers`: the names and roles a protocol has."""
    problems: Problems = []
    for j, who in enumerate(raw.get("subscribers", ())):
        if who not in subscribers:
            problems.append((["invariants", i, "subscribers", j], "neither a subscriber name nor a subscriber role"))
    types: set[str] = set()
    for j, pattern in enumerate(raw.get("event_types", ())):
        found = expand(pattern)
        if not found:
            problems.append((["invariants", i, "event_types", j],
                             "matches no event type in the canonical event schema"))
        types |= found
    shares = raw.get("shares") or {}
    require = raw.get("require")
    basis = None
    if require is not None:
        basis = expand_basis(list(require["lawful_basis_any"]))
        if basis is None:  # the schema allows only codes and groups; kept for data built without the schema
            problems.append((["invariants", i, "require", "lawful_basis_any"], "not a lawful basis code or group"))
    invariant = Invariant(
        id=raw["id"], where=f"invariants[{i}]", description=raw["description"],
        subscribers=tuple(raw["subscribers"]) if "subscribers" in raw else None,
        event_types=frozenset(types) if "event_types" in raw else every_type,
        source_agencies=frozenset(raw["source_agencies"]) if "source_agencies" in raw else None,
        when=conditions(raw.get("when") or {}), objection=raw.get("objection"),
        classifications=frozenset(shares["classifications"]) if "classifications" in shares else None,
        paths=tuple(shares["paths"]) if "paths" in shares else None,
        include_masked=bool(shares.get("include_masked", True)), require_basis=basis,
        require_names=tuple(require["lawful_basis_any"]) if require is not None else ())
    return invariant, problems
