"""The finite space the invariant checker (prove.py) walks: every fact a decision can turn on, with the few values
that tell its outcomes apart, and how to write each value into a concrete event and register facts.

The engine is pure and reads a handful of things beyond the field tables: the source agency and system, the risk
level and categories, the child's age, the GP practice and school, a referral's source, a CP-IS notice's plan kind,
the anonymous-access and restricted marks, the child's consent, agreement, confidentiality and objection records,
and the registers' case status, s47(9) requests and adult-at-risk determinations. Each is a `Dimension` below. A
point of the space is one value per dimension; `realise` turns it into the smallest event (and facts) that has
those values, so the checker decides it with the engine itself (`engine.decide`): one semantics, no model of it.

**One place for conditions.** `CONDITION_DIMENSIONS` names, for every field of `model.Conditions`, the dimension
that decides it. A condition added to the language without a dimension here makes `unknown_conditions` name it,
and a protocol using it is refused as unprovable (prove.py) until its finite domain is written down here: add a
`Dimension` (values, how to write a value into the event or facts, and which paths a value rules out).

Values are chosen per (subscriber, event type) from the rules that could decide it (and the invariants asking),
so a fact no rule reads keeps its one default value: the space stays small without losing an outcome.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

from broker.policy.codes import CONSENT_STATUSES, RISK_ORDER, STATUTES
from broker.policy.decision import uuid5_text
from broker.policy.engine import S251B
from broker.policy.facts import CaseFacts
from broker.policy.model import Conditions, Protocol, Rule, Subscriber
from broker.policy.restricted import MARKS
from broker.schema.loader import load_schema

EVENT_DATE = "2026-05-01T09:00:00Z"
CHILD_BORN = "2016-05-14"  # under 18 on EVENT_DATE
ADULT_BORN = "1990-02-03"
PROOF_NAMESPACE = uuid.UUID("3f4a7c1e-8b2d-4e6f-9a01-6d6173682d70")


@dataclass(frozen=True, slots=True)
class Scope:
    """What decides one subscriber's events of one type: the rules that could apply (from one protocol, or both of
    a diff) and the extra conditions asked about (invariants' `when`)."""

    subscriber: Subscriber
    event_type: str
    rules: tuple[Rule, ...]
    asked: tuple[Conditions, ...] = ()
    asked_agencies: tuple[frozenset[str] | None, ...] = ()  # invariants' source_agencies
    partners: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (agency, system) -> partner id

    conditions: tuple[Conditions, ...] = ()  # the rules' and the asked: filled in by __post_init__

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditions", tuple(r.conditions for r in self.rules) + self.asked)


@dataclass(slots=True)
class Draft:
    """The event and facts a point is written into, dimension by dimension."""

    event: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    consent: dict[str, Any] = field(default_factory=dict)  # the event's own consent block
    absent: set[str] = field(default_factory=set)  # leaf paths the point's values rule out (presence would change it)
    partner: str | None = None  # the partner the source system names, once chosen

    def child(self) -> dict[str, Any]:
        child: dict[str, Any] = self.event.setdefault("subject", {}).setdefault("child", {})
        return child

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.event.setdefault("payload", {})
        return payload


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    values: Callable[[Scope, Draft], tuple[Any, ...]]  # the first is the default (what an empty event says)
    write: Callable[[Any, Draft, Scope], None]
    reads_draft: bool = False  # its values depend on earlier dimensions' (the agency, the partner)


def _any(scope: Scope, test: Callable[[Conditions], Any]) -> bool:
    return any(test(c) for c in scope.conditions)


def _schema_agencies() -> tuple[str, ...]:
    return tuple(load_schema()["properties"]["source"]["properties"]["agency"]["enum"])


def _agencies(scope: Scope, draft: Draft) -> tuple[str, ...]:
    """The agency matters to a rule's source_agencies, to the duty of confidence (health under no statute) and to
    the discloser (partners are declared per agency): agencies alike in all three are one class, the type's own
    family standing for its class."""
    family = scope.event_type.split(".", 1)[0]
    known = _schema_agencies()
    default = family if family in known else known[0]
    s47 = _any(scope, lambda c: c.s47_request)
    confidential = _confidential(scope)
    declared = {a for a, _ in scope.partners}

    def signature(agency: str) -> tuple[Any, ...]:
        return (tuple(r.source_agencies is None or agency in r.source_agencies for r in scope.rules),
                confidential and agency == "health", s47 and agency in declared,
                tuple(agency in (a or ()) for a in scope.asked_agencies))

    seen = {signature(default)}
    out = [default]
    for agency in known:
        if signature(agency) not in seen:
            seen.add(signature(agency))
            out.append(agency)
    return tuple(out)


def _write_agency(value: str, draft: Draft, scope: Scope) -> None:
    draft.event["source"] = {"agency": value}


def _systems(scope: Scope, draft: Draft) -> tuple[str | None, ...]:
    if not _any(scope, lambda c: c.s47_request):
        return (None,)
    agency = draft.event["source"]["agency"]
    return (None, *sorted(s for a, s in scope.partners if a == agency))


def _write_system(value: str | None, draft: Draft, scope: Scope) -> None:
    if value is None:
        return  # no system: no partner is known to have disclosed it (an undeclared one says the same)
    draft.event["source"]["system"] = value
    draft.partner = scope.partners[(draft.event["source"]["agency"], value)]


def _s47(scope: Scope, draft: Draft) -> tuple[bool, ...]:
    return (False, True) if draft.partner is not None and _any(scope, lambda c: c.s47_request) else (False,)


def _write_s47(value: bool, draft: Draft, scope: Scope) -> None:
    if value:
        draft.facts["s47_requested_of"] = frozenset({draft.partner})


def _flag(test: Callable[[Scope], bool]) -> Callable[[Scope, Draft], tuple[bool, ...]]:
    return lambda scope, draft: (False, True) if test(scope) else (False,)


def _three(attr: str) -> Callable[[Scope, Draft], tuple[bool | None, ...]]:
    """A register fact: unknown, or the values conditions name (unknown fails both, so it stands for the other)."""
    def values(scope: Scope, draft: Draft) -> tuple[bool | None, ...]:
        named = {getattr(c, attr) for c in scope.conditions} - {None}
        return (None, *sorted(named & {True, False}, reverse=True)) if named != {True, False} else (None, True, False)
    return values


def _write_anonymous(value: bool, draft: Draft, scope: Scope) -> None:
    if value:
        draft.payload()["anonymous_access"] = True
    else:
        draft.absent.add("payload.anonymous_access")


def _levels(scope: Scope, draft: Draft) -> tuple[str, ...]:
    """One level per band the thresholds cut the order into (unknown, the lowest, first)."""
    least = {c.risk_at_least for c in scope.conditions if c.risk_at_least}
    most = {c.risk_at_most for c in scope.conditions if c.risk_at_most}
    out: dict[tuple[bool, ...], str] = {}
    for level in sorted(RISK_ORDER, key=RISK_ORDER.__getitem__):
        rank = RISK_ORDER[level]
        key = (*(rank >= RISK_ORDER[x] for x in sorted(least)), *(rank <= RISK_ORDER[x] for x in sorted(most)))
        out.setdefault(key, level)
    return tuple(out.values())


def _write_level(value: str, draft: Draft, scope: Scope) -> None:
    if value != "unknown":
        draft.event.setdefault("risk", {})["level"] = value


def _category_sets(scope: Scope, draft: Draft) -> tuple[tuple[str, ...], ...]:
    """Categories named by the same rules are alike: one stands for its class, and every set of classes is tried
    (a category no rule names is the empty set's)."""
    sets = [c.risk_categories_any for c in scope.conditions if c.risk_categories_any is not None]
    classes: dict[tuple[bool, ...], str] = {}
    for category in sorted(set().union(*sets)) if sets else ():
        classes.setdefault(tuple(category in s for s in sets), category)
    reps = sorted(classes.values())
    return tuple(combo for n in range(len(reps) + 1) for combo in itertools.combinations(reps, n))


def _write_categories(value: tuple[str, ...], draft: Draft, scope: Scope) -> None:
    if value:
        draft.event.setdefault("risk", {})["categories"] = list(value)


def _ages(scope: Scope, draft: Draft) -> tuple[str, ...]:
    # unknown and adult both fail `subject_under_18` (the only form): adult is tried as well, for its reason text
    # costs nothing and a counterexample with a date of birth reads more plainly
    return ("unknown", "under_18", "adult") if _any(scope, lambda c: c.subject_under_18) else ("unknown",)


def _write_age(value: str, draft: Draft, scope: Scope) -> None:
    draft.event["occurred_at"] = EVENT_DATE
    if value == "unknown":
        draft.absent |= {"subject.child.date_of_birth", "subject.child.expected_date_of_birth"}
        return
    # with a date of birth, an expected date of birth decides nothing (conditions.under_18): it may be present
    draft.child()["date_of_birth"] = CHILD_BORN if value == "under_18" else ADULT_BORN


def _registered(kind: str) -> Callable[[Scope, Draft], tuple[bool, ...]]:
    return _flag(lambda scope: _any(scope, lambda c: c.registered_with == kind))


def _write_gp(value: bool, draft: Draft, scope: Scope) -> None:
    if value:
        draft.child()["gp_practice"] = {"ods_code": scope.subscriber.organisation.get("ods_code", "")}


def _write_school(value: bool, draft: Draft, scope: Scope) -> None:
    if value:
        draft.child()["school"] = {"urn": scope.subscriber.organisation.get("urn", "")}


def _codes(attr: str) -> Callable[[Scope, Draft], tuple[str | None, ...]]:
    def values(scope: Scope, draft: Draft) -> tuple[str | None, ...]:
        named = set().union(*(getattr(c, attr) for c in scope.conditions if getattr(c, attr) is not None))
        return (None, *sorted(named))
    return values


def _payload_code(key: str) -> Callable[[str | None, Draft, Scope], None]:
    def write(value: str | None, draft: Draft, scope: Scope) -> None:
        if value is not None:
            draft.payload()[key] = value
    return write


def _fact(key: str, skip: Any = None) -> Callable[[Any, Draft, Scope], None]:
    def write(value: Any, draft: Draft, scope: Scope) -> None:
        if value is not skip and value is not None:
            draft.facts[key] = value
    return write


def _write_restricted(value: bool, draft: Draft, scope: Scope) -> None:
    if value:
        draft.child()["restricted"] = True
    else:
        draft.absent |= MARKS


def _statuses(scope: Scope, draft: Draft) -> tuple[str, ...]:
    """The engine tells given, refused and withdrawn apart (consent rules, para 18 alone); conditions name codes;
    every other status behaves as unknown."""
    named = set().union(*(c.consent_status for c in scope.conditions if c.consent_status is not None))
    if any(r.consent_based or r.para18_alone for r in scope.rules):
        named |= {"given", "refused"}  # withdrawn is refused's twin in every branch of the engine
    return ("unknown", *(s for s in CONSENT_STATUSES if s in named and s != "unknown"))


def _write_status(value: str, draft: Draft, scope: Scope) -> None:
    if value != "unknown":
        draft.consent["status"] = value


def _write_objection(value: bool, draft: Draft, scope: Scope) -> None:
    if value:
        draft.consent["objection"] = True


# None: no record (not sought, unknown: the same outcome); withdrawn is refused's twin in every branch of the engine
RECORD_STATES = (None, "given", "refused")


def _record_states(test: Callable[[Scope], bool]) -> Callable[[Scope, Draft], tuple[str | None, ...]]:
    return lambda scope, draft: RECORD_STATES if test(scope) else (None,)


def _write_record(kind: str) -> Callable[[str | None, Draft, Scope], None]:
    def write(value: str | None, draft: Draft, scope: Scope) -> None:
        if value is not None:
            draft.consent.setdefault("records", []).append({"kind": kind, "state": value})
            draft.absent.add("consent.records[].ref")  # a ref makes the record a related person's, not the child's
    return write


def _write_partner_named(value: bool, draft: Draft, scope: Scope) -> None:
    """Name the subscriber's partner in every payload field a partner_in condition reads (or in none of them: the
    fields may still be present, naming other partners, as a placeholder does)."""
    names = set().union(*(c.partner_in for c in scope.conditions if c.partner_in is not None))
    if not value:
        return
    for name in names:
        partner = scope.subscriber.partner
        draft.payload()[name] = partner if name == "assigned_partner" else [partner]


def _confidential(scope: Scope) -> bool:
    """Could a rule share health data under no statute (the common-law duty of confidence: engine)?"""
    return any(not STATUTES.intersection(r.lawful_basis) for r in scope.rules)


def _confidentiality(scope: Scope, draft: Draft) -> tuple[str | None, ...]:
    health = draft.event["source"]["agency"] == "health"
    return RECORD_STATES if health and _confidential(scope) else (None,)


def _restricted(scope: Scope, draft: Draft) -> tuple[bool, ...]:
    """The mark matters to a `restricted` condition, and to a rule sharing any location or contact leaf."""
    from broker.schema.classification import field_classes

    labels = field_classes(scope.event_type)
    shares = any(r.tables[scope.event_type][leaf].action != "withhold" for r in scope.rules
                 if scope.event_type in r.tables for leaf, label in labels.items() if label in ("location", "contact"))
    return (False, True) if shares or _any(scope, lambda c: c.restricted is not None) else (False,)


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("source_agency", _agencies, _write_agency),
    Dimension("source_system", _systems, _write_system, reads_draft=True),
    Dimension("s47_requested", _s47, _write_s47, reads_draft=True),
    Dimension("anonymous_access", _flag(lambda s: any(S251B in r.lawful_basis for r in s.rules)), _write_anonymous),
    Dimension("risk_level", _levels, _write_level),
    Dimension("risk_categories", _category_sets, _write_categories),
    Dimension("age", _ages, _write_age),
    Dimension("registered_gp", _registered("gp_practice"), _write_gp),
    Dimension("registered_school", _registered("school"), _write_school),
    Dimension("referral_source", _codes("referral_sources"), _payload_code("referral_source")),
    Dimension("plan_kind", _codes("plan_kinds"), _payload_code("plan_kind")),
    Dimension("case_open", _three("case_open"), _fact("case_open")),
    # `adult_at_risk: true` is the only form: a determination that the adult is not at risk fails it as none does.
    Dimension("adult_at_risk", _flag(lambda s: _any(s, lambda c: c.adult_at_risk)), _fact("adult_at_risk", skip=False)),
    Dimension("restricted", _restricted, _write_restricted),
    Dimension("partner_named", _flag(lambda s: _any(s, lambda c: c.partner_in is not None)), _write_partner_named),
    Dimension("consent_status", _statuses, _write_status),
    Dimension("objection", lambda scope, draft: (False, True), _write_objection),
    Dimension("confidentiality", _confidentiality, _write_record("confidentiality"), reads_draft=True),
    Dimension("service_agreement", _record_states(lambda s: any(r.requires_service_agreement for r in s.rules)),
              _write_record("service_agreement")),
)
BY_NAME = {d.name: d for d in DIMENSIONS}

# Every condition of the language and the dimension that decides it: the checker's one list (see the docstring).
CONDITION_DIMENSIONS: dict[str, str] = {
    "risk_at_least": "risk_level", "risk_at_most": "risk_level", "risk_categories_any": "risk_categories",
    "subject_under_18": "age", "consent_status": "consent_status", "case_open": "case_open",
    "registered_with": "registered_gp", "referral_sources": "referral_source", "plan_kinds": "plan_kind",
    "s47_request": "s47_requested", "adult_at_risk": "adult_at_risk", "restricted": "restricted",
    "partner_in": "partner_named",
}


def unknown_conditions(conditions: Iterable[Conditions]) -> list[str]:
    """Conditions in use that no dimension decides: the checker cannot enumerate them, so it proves nothing."""
    defaults = Conditions()
    return sorted({f.name for c in conditions for f in fields(Conditions)
                   if f.name not in CONDITION_DIMENSIONS and getattr(c, f.name) != getattr(defaults, f.name)})


@dataclass(frozen=True, slots=True)
class Point:
    """One value per dimension; `given` holds those that differ from the default (what a reader needs to see)."""

    values: tuple[tuple[str, Any], ...]
    given: tuple[tuple[str, Any], ...]

    @property
    def weight(self) -> int:
        return len(self.given)

    def get(self, name: str) -> Any:
        return dict(self.values)[name]


@dataclass(frozen=True, slots=True)
class Case:
    """A point written out: the smallest event and facts with its values, and the leaves it rules out."""

    point: Point
    event: dict[str, Any]
    facts: CaseFacts
    absent: frozenset[str]


def _replay(scope: Scope, chosen: Sequence[tuple[str, Any]], free: frozenset[str] = frozenset()) -> Draft:
    """A fresh draft with these values written in order (cheaper than copying drafts down the walk). A `free`
    dimension (one value: nothing in the scope reads it) rules out no leaf: whatever an event carries there
    decides nothing, so the walk must meet those leaves present (the date of birth where no rule reads the age)."""
    draft = Draft({"event_type": scope.event_type})
    for name, value in chosen:
        if name in free:
            kept = set(draft.absent)
            BY_NAME[name].write(value, draft, scope)
            draft.absent = kept
        else:
            BY_NAME[name].write(value, draft, scope)
    return draft


def _realise(scope: Scope, chosen: tuple[tuple[str, Any], ...], given: tuple[tuple[str, Any], ...],
             free: frozenset[str] = frozenset()) -> Case:
    draft = _replay(scope, chosen, free)
    event = draft.event
    if draft.consent:
        event["consent"] = draft.consent
    key = ";".join(f"{k}={v}" for k, v in given)
    event["event_id"] = uuid5_text(PROOF_NAMESPACE.bytes, f"{scope.subscriber.name}|{scope.event_type}|{key}")
    return Case(Point(chosen, given), _ordered(event), CaseFacts(**draft.facts), frozenset(draft.absent))


Chosen = tuple[tuple[str, Any], ...]


def _points(scope: Scope, dims: Sequence[Dimension], chosen: Chosen, given: Chosen,
            free: frozenset[str] = frozenset()) -> Iterator[tuple[Chosen, Chosen, frozenset[str]]]:
    if not dims:
        yield chosen, given, free
        return
    dim, rest = dims[0], dims[1:]
    values = dim.values(scope, _replay(scope, chosen) if dim.reads_draft else _EMPTY)
    if len(values) == 1:
        free = free | {dim.name}
    for i, value in enumerate(values):
        yield from _points(scope, rest, (*chosen, (dim.name, value)), given if i == 0 else (*given, (dim.name, value)),
                           free)


_EMPTY = Draft({})


def _ordered(event: dict[str, Any]) -> dict[str, Any]:
    head = ("event_id", "event_type", "occurred_at", "source", "risk", "subject", "consent", "payload")
    return {k: event[k] for k in (*head, *sorted(set(event) - set(head))) if k in event}


def cases(scope: Scope) -> list[Case]:
    """Every point of the scope's space, written out, fewest non-default values first (so the first breach
    found is a smallest counterexample)."""
    found = sorted(_points(scope, DIMENSIONS, (), ()), key=lambda p: len(p[1]))
    return [_realise(scope, chosen, given, free) for chosen, given, free in found]


def space_size(scope: Scope) -> int:
    return sum(1 for _ in _points(scope, DIMENSIONS, (), ()))


Asked = tuple[tuple[Conditions, frozenset[str] | None], ...]  # invariants' (when, source_agencies)


def scopes(protocols: Sequence[Protocol], asked: Callable[[str, str], Asked] = lambda s, t: ()) -> Iterator[Scope]:
    """One scope per (subscriber, event type) that some rule of these protocols could decide; the subscriber as
    the last protocol naming it has it (its organisation codes realise `registered_with`)."""
    keys = dict.fromkeys(k for p in protocols for k in p.index)
    partners: dict[tuple[str, str], str] = {}
    for p in protocols:
        partners.update(p.partner_by_system)
    for name, event_type in keys:
        sub = next(p.subscribers[name] for p in reversed(protocols) if name in p.subscribers)
        rules = tuple(r for p in protocols for r in p.index.get((name, event_type), ()))
        found = asked(name, event_type)
        yield Scope(sub, event_type, rules, tuple(c for c, _ in found), tuple(a for _, a in found), partners)


# --- leaves: a placeholder value of the right type, to put a path into a counterexample --------------------------


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _leaf_value(node: Mapping[str, Any]) -> Any:
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    kinds = node.get("type", "string")
    kind = next((k for k in ([kinds] if isinstance(kinds, str) else kinds) if k != "null"), "string")
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return max(1, node.get("minimum", 1))
    fmt = str(node.get("format", ""))
    return {"date": "2026-05-01", "date-time": EVENT_DATE}.get(fmt, "Testvalue")


def _leaf_schemas(node: Mapping[str, Any], root: Mapping[str, Any], path: str,
                  out: dict[str, Mapping[str, Any]]) -> None:
    node = _resolve(node, root)
    if node.get("properties"):
        for name, sub in node["properties"].items():
            if not (path == "" and name == "payload"):
                _leaf_schemas(sub, root, f"{path}.{name}" if path else name, out)
    elif node.get("items") is not None:
        _leaf_schemas(node["items"], root, f"{path}[]", out)
    else:
        out[path] = node


# Leaves the engine reads, whose first schema value would change a decision (a consent status "given"): their
# placeholder says what an absent leaf says, so putting the leaf into a counterexample keeps its decision.
NEUTRAL: dict[str, Any] = {"consent.status": "unknown", "consent.records[].state": "unknown"}


@cache
def leaf_placeholders(event_type: str) -> dict[str, Any]:
    """Leaf path -> a fictitious value of the schema's type for it, for one event type."""
    from broker.schema.classification import payload_schemas

    root = load_schema()
    found: dict[str, Mapping[str, Any]] = {}
    _leaf_schemas(root, root, "", found)
    payload = payload_schemas(root).get(event_type)
    if payload is not None:
        _leaf_schemas(payload, root, "payload", found)
    return {path: NEUTRAL.get(path, _leaf_value(node)) for path, node in found.items()}


def with_leaf(event: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A copy of the event with `path` present (a placeholder value where it is not already)."""
    import copy

    out = copy.deepcopy(dict(event))
    parts = path.replace("[]", ".[]").split(".")
    node: Any = out
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt = None if last else parts[i + 1]
        if part == "[]":
            continue
        holder = node
        if nxt == "[]":
            items = holder.setdefault(part, [])
            if i + 1 == len(parts) - 1:  # a list of scalars
                if not items:
                    items.append(leaf_placeholders(str(event.get("event_type", ""))).get(path, "Testvalue"))
                return out
            if not items:
                items.append({})
            node = items[0]
        elif last:
            holder.setdefault(part, leaf_placeholders(str(event.get("event_type", ""))).get(path, "Testvalue"))
        else:
            node = holder.setdefault(part, {})
    return out
