"""Proof, not sampling: every decision a protocol can make, checked against its invariants, and the static diff of
two versions.

The space is finite. A decision depends on the subscriber, the event type, which leaves are present and the facts
listed in domains.py, each of which the conditions read only through a few distinguishable values. `prove` walks
every (subscriber, event type) some rule can decide and every point of that space, writes each point out as the
smallest event and register facts that have it (domains.cases), decides it with the engine itself
(`engine.decide`: the same code that decides live events, so the checker has no second semantics to drift), and
splits every leaf the point allows with the chosen rule's field table (`engine.rule_split`). A pair no rule names
is withheld by default and breaks nothing. Points are tried fewest non-default facts first, so the first breach of
an invariant is a smallest counterexample; it is re-decided with the leaf it is about put into the event, and only
a confirmed breach is reported. The brute-force cross-check (tests/policy/test_prove_complete.py) decides random
concrete events under random protocols and finds nothing the walk missed.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from broker.policy.consent import effective_consent
from broker.policy.decision import Decision
from broker.policy.domains import Case, Scope, cases, scopes, unknown_conditions, with_leaf
from broker.policy.engine import decide, rule_split
from broker.policy.facts import CaseFacts
from broker.policy.invariants import Invariant, asked, breaches
from broker.policy.model import Protocol
from broker.policy.paths import present_paths
from broker.schema.classification import field_classes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one protocol does with one point: the decision on the smallest event, and every leaf the point allows
    with its state ('released', 'masked:<kind>'; absent: withheld)."""

    decision: Decision
    states: Mapping[str, str]

    def state(self, path: str) -> str:
        return self.states.get(path, "withheld")


def allowed_leaves(case: Case, event_type: str) -> tuple[str, ...]:
    """Every leaf an event at this point may carry: the schema's for the type, less those the point rules out, plus
    what the point itself wrote."""
    return tuple(sorted((set(field_classes(event_type)) - case.absent) | set(present_paths(case.event))))


_SPLITS: dict[tuple[Any, str, frozenset[str], tuple[str, ...]], dict[str, str]] = {}


def outcome(protocol: Protocol, scope: Scope, case: Case) -> Outcome:
    decision = decide(protocol, case.event, scope.subscriber.name, facts=case.facts)
    if not decision.delivered:
        return Outcome(decision, {})
    rule = protocol.rule(decision.rule_id or "")
    assert rule is not None  # a delivery names the rule that decided it
    # Points differ mostly in facts, not in which leaves they allow: the split is memoised (bounded).
    key = (rule, scope.event_type, case.absent, tuple(present_paths(case.event)))
    states = _SPLITS.get(key)
    if states is None:
        released, masked, _ = rule_split(rule, scope.event_type, allowed_leaves(case, scope.event_type))
        states = dict.fromkeys(released, "released")
        states.update({p: f"masked:{kind}" for p, kind in masked})
        if len(_SPLITS) > 4096:
            _SPLITS.clear()
        _SPLITS[key] = states
    return Outcome(decision, states)


def facts_flags(facts: CaseFacts) -> list[str]:
    """The `policy explain` options that give these register facts."""
    out = []
    if facts.case_open is not None:
        out.append("--case-open" if facts.case_open else "--case-closed")
    out += [f"--s47-requested-of {p}" for p in sorted(facts.s47_requested_of)]
    if facts.adult_at_risk is not None:
        out.append("--adult-at-risk" if facts.adult_at_risk else "--not-adult-at-risk")
    return out


def explain_command(protocol_file: str, subscriber: str, facts: CaseFacts, event_file: str = "EVENT.json") -> str:
    return " ".join(["mash-broker policy explain --protocol", protocol_file, "--subscriber", subscriber,
                     event_file, "--format text", *facts_flags(facts)])


@dataclass(frozen=True, slots=True)
class Counterexample:
    """A smallest event and register facts under which the protocol breaks an invariant, and the rule that does."""

    invariant: str
    where: str
    subscriber: str
    event_type: str
    rule_id: str
    paths: tuple[str, ...]
    why: str
    given: tuple[tuple[str, Any], ...]  # the facts that differ from an empty event's
    event: Mapping[str, Any]
    facts: CaseFacts

    def to_dict(self, protocol_file: str = "PROTOCOL.yaml") -> dict[str, Any]:
        return {"invariant": self.invariant, "where": self.where, "subscriber": self.subscriber,
                "event_type": self.event_type, "rule_id": self.rule_id, "paths": list(self.paths), "why": self.why,
                "given": {k: list(v) if isinstance(v, tuple) else v for k, v in self.given},
                "event": self.event, "explain": explain_command(protocol_file, self.subscriber, self.facts)}

    def sentence(self, protocol_file: str) -> str:
        what = f"shares {', '.join(self.paths[:3])}{' ...' if len(self.paths) > 3 else ''}" if self.paths \
            else "delivers the event"
        return (f"invariant {self.invariant} is broken: rule {self.rule_id} {what} to {self.subscriber} "
                f"({self.event_type}); {self.why}. Counterexample event: "
                f"{orjson.dumps(self.event).decode()} ; confirm with: "
                f"{explain_command(protocol_file, self.subscriber, self.facts)}")


@dataclass(slots=True)
class Proof:
    revision: str
    invariants: tuple[str, ...]
    scopes: int = 0
    points: int = 0
    counterexamples: list[Counterexample] = field(default_factory=list)
    unprovable: list[str] = field(default_factory=list)  # conditions without a finite domain (domains.py)

    @property
    def proven(self) -> bool:
        return not self.counterexamples and not self.unprovable

    def to_dict(self, protocol_file: str = "PROTOCOL.yaml") -> dict[str, Any]:
        broken = {c.invariant for c in self.counterexamples}
        return {"protocol": self.revision, "proven": self.proven, "scopes": self.scopes, "points": self.points,
                "invariants": {i: ("broken" if i in broken else "unprovable" if self.unprovable else "proven")
                               for i in self.invariants},
                "unprovable_conditions": self.unprovable,
                "counterexamples": [c.to_dict(protocol_file) for c in self.counterexamples]}


def _labels(classes: dict[str, str]) -> Callable[[str], str]:
    """A leaf path's classification, "" for a path the schema does not list."""
    return lambda path: classes.get(path, "")


def _confirm(protocol: Protocol, scope: Scope, case: Case, invariant: Invariant, paths: Sequence[str]
             ) -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """The counterexample event: the point's event with one offending leaf present, re-decided to confirm it."""
    for path in paths or ("",):
        event = with_leaf(case.event, path) if path else dict(case.event)
        decision = decide(protocol, event, scope.subscriber.name, facts=case.facts)
        rule = protocol.rule(decision.rule_id or "")
        shared = {**dict.fromkeys(decision.released, "released"), **{p: "masked" for p, _ in decision.masked}}
        if decision.delivered and rule is not None and _asked(invariant, protocol, scope, event, case.facts):
            found = breaches(invariant, decision, rule, shared, _labels(field_classes(scope.event_type)))
            if found is not None:
                return event, found.paths
    return None


def _asked(invariant: Invariant, protocol: Protocol, scope: Scope, event: Mapping[str, Any],
           facts: CaseFacts) -> bool:
    return asked(invariant, event, scope.subscriber, effective_consent(None, event), facts,
                 protocol.source_partner(event))


def _label(event_type: str) -> Any:
    labels = field_classes(event_type)
    return lambda path: labels.get(path, "narrative")


def prove(protocol: Protocol, invariants: Sequence[Invariant] | None = None) -> Proof:
    """Every invariant of the protocol (or those given) checked over every decision it can make."""
    invs = tuple(protocol.invariants if invariants is None else invariants)
    proof = Proof(protocol.revision, tuple(i.id for i in invs))
    if not invs:
        return proof
    proof.unprovable = unknown_conditions([*(r.conditions for r in protocol.rules), *(i.when for i in invs)])
    if proof.unprovable:
        return proof
    broken: set[str] = set()

    def asked_of(name: str, event_type: str) -> tuple[Any, ...]:
        sub = protocol.subscribers[name]
        return tuple((i.when, i.source_agencies) for i in invs if i.about(sub, event_type))

    for scope in scopes([protocol], asked_of):
        open_invs = [i for i in invs if i.id not in broken and i.about(scope.subscriber, scope.event_type)]
        if not open_invs:
            continue
        proof.scopes += 1
        label = _label(scope.event_type)
        for case in cases(scope):
            proof.points += 1
            result = outcome(protocol, scope, case)
            if not result.decision.delivered:
                continue
            rule = protocol.rule(result.decision.rule_id or "")
            shared = {p: s.split(":", 1)[0] for p, s in result.states.items()}
            for inv in open_invs:
                if inv.id in broken or not _asked(inv, protocol, scope, case.event, case.facts):
                    continue
                found = breaches(inv, result.decision, rule, shared, label)
                if found is None:
                    continue
                confirmed = _confirm(protocol, scope, case, inv, found.paths)
                if confirmed is None:
                    continue  # not a breach once written out: the walk over-approximated; the next point decides
                event, paths = confirmed
                broken.add(inv.id)
                proof.counterexamples.append(Counterexample(
                    inv.id, inv.where, scope.subscriber.name, scope.event_type, found.rule_id, paths, found.why,
                    case.point.given, event, case.facts))
    order = {i.id: n for n, i in enumerate(invs)}
    proof.counterexamples.sort(key=lambda c: order[c.invariant])
    return proof


_PROOFS: dict[str, Proof] = {}


def prove_cached(protocol: Protocol, text: bytes) -> Proof:
    """`prove` memoised by the protocol file's bytes: a process that loads one file many times proves it once, and
    a process that finds a trusted "proven" entry in the proof cache (proof_cache.py) does not prove it again."""
    from broker.policy.proof_cache import cached_verdict

    key = hashlib.sha256(text).hexdigest()
    if key not in _PROOFS:
        if len(_PROOFS) > 32:
            _PROOFS.clear()
        _PROOFS[key] = cached_verdict(protocol, text, lambda: prove(protocol))
    return _PROOFS[key]


def format_proof(proof: Proof, protocol_file: str) -> list[str]:
    lines = []
    broken = {c.invariant: c for c in proof.counterexamples}
    for inv in proof.invariants:
        if inv in broken:
            lines.append(f"BROKEN  invariant {inv}: {broken[inv].sentence(protocol_file)}")
        elif proof.unprovable:
            lines.append(f"UNPROVEN invariant {inv}: the checker has no finite domain for condition(s) "
                         f"{', '.join(proof.unprovable)} (broker/policy/domains.py)")
        else:
            lines.append(f"PROVEN  invariant {inv}")
    lines.append(f"{len(proof.invariants) - len(broken)} of {len(proof.invariants)} invariant(s) proven over "
                 f"{proof.points} decision contexts in {proof.scopes} (subscriber, event type) pairs "
                 f"({proof.revision})")
    return lines


# --- the static permission diff ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Change:
    first: Case
    old_rule: str | None
    new_rule: str | None
    count: int = 0
    seen: dict[str, set[Any]] = field(default_factory=lambda: defaultdict(set))


def _values(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _when(change: _Change, domain: Mapping[str, set[Any]]) -> dict[str, Any]:
    """Under which facts the change happens: per fact, the values it happens at, when not all of them."""
    out = {}
    for name, values in change.seen.items():
        if values != domain[name]:
            out[name] = sorted((_values(v) for v in values), key=repr)
    return out


def _counterexample(old: Protocol, new: Protocol, scope: Scope, change: _Change, path: str | None
                    ) -> dict[str, Any]:
    case = change.first
    event = with_leaf(case.event, path) if path else dict(case.event)
    before = decide(old, event, scope.subscriber.name, facts=case.facts)
    after = decide(new, event, scope.subscriber.name, facts=case.facts)
    return {"event": event, "given": {k: _values(v) for k, v in case.point.given},
            "facts": facts_flags(case.facts), "rule_from": before.rule_id, "rule_to": after.rule_id,
            "explain_from": explain_command("OLD.yaml", scope.subscriber.name, case.facts),
            "explain_to": explain_command("NEW.yaml", scope.subscriber.name, case.facts)}


def _state(outcome: Outcome, path: str | None) -> str:
    if path is None:
        return "delivered" if outcome.decision.delivered else (
            "human_decision" if outcome.decision.human_decision else "withheld")
    return outcome.state(path)


def static_diff(old: Protocol, new: Protocol) -> dict[str, Any]:
    """Per subscriber and event type: the event's outcome and each leaf's, wherever they can differ between the two
    versions, with the facts under which they do and a smallest counterexample each. Exhaustive like `prove`."""
    subscribers: dict[str, dict[str, list[dict[str, Any]]]] = {}
    points = 0
    for scope in scopes([old, new]):
        changes: dict[tuple[str | None, str, str], _Change] = {}
        domain: dict[str, set[Any]] = defaultdict(set)
        for case in cases(scope):
            points += 1
            for name, value in case.point.values:
                domain[name].add(value)
            before, after = outcome(old, scope, case), outcome(new, scope, case)
            keys: list[tuple[str | None, str, str]] = []
            if _state(before, None) != _state(after, None):
                keys.append((None, _state(before, None), _state(after, None)))
            for path in sorted(set(before.states) | set(after.states)):
                if before.state(path) != after.state(path):
                    keys.append((path, before.state(path), after.state(path)))
            for key in keys:
                change = changes.get(key)
                if change is None:
                    change = changes[key] = _Change(case, before.decision.rule_id, after.decision.rule_id)
                change.count += 1
                for name, value in case.point.values:
                    change.seen[name].add(value)
        if not changes:
            continue
        rows = [{"path": path, "from": a, "to": b, "contexts": c.count, "when": _when(c, domain),
                 "counterexample": _counterexample(old, new, scope, c, path)}
                for (path, a, b), c in sorted(changes.items(), key=lambda kv: (kv[0][0] or "", kv[0][1:]))]
        subscribers.setdefault(scope.subscriber.name, {})[scope.event_type] = rows
    changed = sum(len(rows) for types in subscribers.values() for rows in types.values())
    return {"from": old.revision, "to": new.revision, "static": True, "points": points, "changes": changed,
            "subscribers": subscribers, "changed": bool(changed)}


def format_static_diff(result: Mapping[str, Any]) -> str:
    lines = [f"protocol {result['from']} -> {result['to']}, every decision context ({result['points']}): "
             + (f"{result['changes']} outcome(s) CAN CHANGE" if result["changed"] else "no outcome can change")]
    for name, types in result["subscribers"].items():
        lines += ["", f"{name}:"]
        for event_type, rows in types.items():
            lines.append(f"  {event_type}:")
            for row in rows:
                what = row["path"] or "(the event)"
                when = "; ".join(f"{k} in {v}" for k, v in row["when"].items()) or "always"
                ce = row["counterexample"]
                lines.append(f"    {what}: {row['from']} -> {row['to']} when {when} "
                             f"(rule {ce['rule_from']} -> {ce['rule_to']}; {row['contexts']} context(s))")
    return "\n".join(lines) + "\n"


def static_changes(result: Mapping[str, Any]) -> Iterator[tuple[str, str, str, str, str]]:
    """(subscriber, event type, path, from, to) for every leaf change of a static diff (tests, the IG page)."""
    for name, types in result["subscribers"].items():
        for event_type, rows in types.items():
            for row in rows:
                if row["path"] is not None:
                    yield name, event_type, row["path"], row["from"], row["to"]


def replay_changes(old: Protocol, new: Protocol, events: Iterable[Mapping[str, Any]],
                   facts: CaseFacts | None = None) -> set[tuple[str, str, str, str, str]]:
    """The same tuples found by deciding concrete events under both versions (what `diff --events` sees)."""
    found = set()
    names = list(dict.fromkeys([*old.subscribers, *new.subscribers]))
    for event in events:
        paths = present_paths(event)
        for name in names:
            a, b = decide(old, event, name, facts=facts), decide(new, event, name, facts=facts)
            for path in paths:
                sa, sb = _leaf_state(a, path), _leaf_state(b, path)
                if sa != sb:
                    found.add((name, str(event.get("event_type")), path, sa, sb))
    return found


def _leaf_state(decision: Decision, path: str) -> str:
    if path in decision.released:
        return "released"
    kind = dict(decision.masked).get(path)
    return f"masked:{kind}" if kind else "withheld"
