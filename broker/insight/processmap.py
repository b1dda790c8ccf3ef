"""The process map: who sends what to whom, under which rule and lawful basis, drawn from the compiled protocol.

`process_map` turns a `Protocol` into plain data: one `Edge` per (event type, rule, subscriber) the decision engine
could choose, read from the same compiled structures the engine decides with (`Protocol.index`, the subscriber ->
event type -> candidate rules lookup, and each rule's field `tables`), so the map cannot disagree with a decision.
Each edge carries the agencies that may send the event type, the rule's discloser's lawful bases, its conditions in
words, and the classifications it releases, masks (with the mask kinds) and withholds. `map_diff` compares two maps
edge by edge; `to_dot` draws one (with a diff, added edges green, removed red and dashed, changed orange); only
`render_svg` leaves the functional core, running Graphviz's `dot`.

Protocol ids, schema classifications and lawful basis codes only: no event is read, so no value can appear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import graphviz  # type: ignore[import-untyped]

from adapters.kit.registry import AGENCIES
from broker.errors import Unavailable
from broker.policy.codes import BY_CODE
from broker.policy.compile import event_types
from broker.policy.lawful import possible_sources
from broker.policy.model import Conditions, Protocol, Rule
from broker.schema.classification import field_classes

Status = Literal["added", "removed", "changed", "same"]
EdgeKey = tuple[str, str, str]  # (event type, rule id, subscriber)


@dataclass(frozen=True, slots=True)
class Edge:
    """One route an event type can take to one subscriber under one rule."""

    event_type: str
    rule_id: str
    subscriber: str
    senders: tuple[str, ...]  # the agencies that may send this event type under this rule
    lawful_basis: tuple[str, ...]  # the discloser's bases, as compiled (aliases expanded)
    conditions: tuple[str, ...]  # the rule's conditions, in words
    released: tuple[str, ...]  # classifications whose every field is released
    masked: tuple[tuple[str, tuple[str, ...]], ...]  # classification -> mask kinds used on some of its fields
    withheld: tuple[str, ...]  # classifications whose every field is withheld
    partly: tuple[str, ...]  # classifications with some fields released and others withheld (no mask)
    human_decision: bool  # every event this rule matches waits for a recorded human decision

    @property
    def key(self) -> EdgeKey:
        return (self.event_type, self.rule_id, self.subscriber)

    def as_dict(self) -> dict[str, Any]:
        return {"event_type": self.event_type, "rule_id": self.rule_id, "subscriber": self.subscriber,
                "senders": list(self.senders), "lawful_basis": list(self.lawful_basis),
                "conditions": list(self.conditions), "released": list(self.released),
                "masked": {cls: list(kinds) for cls, kinds in self.masked}, "withheld": list(self.withheld),
                "partly_released": list(self.partly),
                "human_decision": self.human_decision}


@dataclass(frozen=True, slots=True)
class ProcessMap:
    protocol: str  # id@version
    title: str
    subscribers: Mapping[str, str]  # name -> partner
    edges: tuple[Edge, ...]
    unshared: tuple[str, ...]  # event types no rule sends anywhere (default deny)
    rules: Mapping[str, str] = field(default_factory=dict)  # rule id -> purpose

    def edge(self, key: EdgeKey) -> Edge | None:
        return next((e for e in self.edges if e.key == key), None)


@dataclass(frozen=True, slots=True)
class MapDiff:
    old: str
    new: str
    added: tuple[Edge, ...]
    removed: tuple[Edge, ...]
    changed: tuple[tuple[Edge, Edge, tuple[str, ...]], ...]  # (before, after, the attributes that differ)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def status(self, key: EdgeKey) -> Status:
        if any(e.key == key for e in self.added):
            return "added"
        if any(e.key == key for e in self.removed):
            return "removed"
        if any(after.key == key for _, after, _ in self.changed):
            return "changed"
        return "same"


def conditions_in_words(c: Conditions) -> tuple[str, ...]:
    """Each condition of a rule as a short phrase, in the order the protocol language lists them."""
    words: list[str] = []
    if c.risk_at_least:
        words.append(f"risk at least {c.risk_at_least}")
    if c.risk_at_most:
        words.append(f"risk at most {c.risk_at_most}")
    if c.risk_categories_any:
        words.append(f"risk category {' or '.join(sorted(c.risk_categories_any))}")
    if c.subject_under_18:
        words.append("under 18")
    if c.consent_status:
        words.append(f"consent {' or '.join(sorted(c.consent_status))}")
    if c.case_open is not None:
        words.append("case open" if c.case_open else "no open case")
    if c.registered_with:
        words.append(f"registered with the {c.registered_with.replace('_', ' ')}")
    if c.referral_sources:
        words.append(f"referral source {' or '.join(sorted(c.referral_sources))}")
    if c.plan_kinds:
        words.append(f"plan kind {' or '.join(sorted(c.plan_kinds))}")
    if c.s47_request:
        words.append("s47(9) request recorded")
    if c.adult_at_risk:
        words.append("adult at risk recorded")
    if c.restricted is not None:
        words.append("restricted record" if c.restricted else "no restricted record")
    if c.partner_in:
        words.append(f"partner named in {' or '.join(sorted(c.partner_in))}")
    return tuple(words)


def _senders(rule: Rule, event_type: str) -> tuple[str, ...]:
    """Who may send this event type under this rule: its declared source agencies, narrowed to the event type's
    agency when the type belongs to one (`police.*` comes from the police)."""
    declared = possible_sources(rule.source_agencies, (event_type,))
    family = event_type.split(".", 1)[0]
    if family in AGENCIES and rule.source_agencies is not None:
        declared = declared & {family} or declared
    return tuple(sorted(declared))


Classes = tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...], tuple[str, ...]]


def _classes(rule: Rule, event_type: str) -> Classes:
    """The rule's field table for one event type (the engine's own table), folded by classification into four
    disjoint lists: released in full, masked (in part or in full, with the kinds), withheld in full, partly
    released. A leaf missing from the table is withheld, as the engine withholds it."""
    table = rule.tables.get(event_type, {})
    actions: dict[str, set[str]] = {}
    kinds: dict[str, set[str]] = {}
    for path, label in field_classes(event_type).items():
        outcome = table.get(path)
        action = "withhold" if outcome is None else outcome.action
        actions.setdefault(label, set()).add(action)
        if outcome is not None and action == "mask":
            kinds.setdefault(label, set()).add(outcome.mask or "mask")
    masked = tuple((c, tuple(sorted(k))) for c, k in sorted(kinds.items()))
    released = tuple(c for c, a in sorted(actions.items()) if a == {"release"})
    withheld = tuple(c for c, a in sorted(actions.items()) if a == {"withhold"})
    partly = tuple(c for c, a in sorted(actions.items()) if a == {"release", "withhold"})
    return released, masked, withheld, partly


def process_map(protocol: Protocol) -> ProcessMap:
    """Every route of the protocol: for each subscriber and event type, each rule the engine would try, in order."""
    edges: list[Edge] = []
    for name in sorted(protocol.subscribers):
        for event_type in sorted(event_types()):
            for rule in protocol.index.get((name, event_type), ()):
                released, masked, withheld, partly = _classes(rule, event_type)
                edges.append(Edge(event_type=event_type, rule_id=rule.id, subscriber=name,
                                  senders=_senders(rule, event_type), lawful_basis=rule.lawful_basis,
                                  conditions=conditions_in_words(rule.conditions), released=released,
                                  masked=masked, withheld=withheld, partly=partly,
                                  human_decision=rule.requires_human_decision is not None))
    covered = {e.event_type for e in edges}
    return ProcessMap(protocol=protocol.revision, title=protocol.title,
                      subscribers={n: s.partner for n, s in sorted(protocol.subscribers.items())},
                      edges=tuple(edges), unshared=tuple(t for t in sorted(event_types()) if t not in covered),
                      rules={r.id: r.purpose for r in protocol.rules})


_COMPARED = ("senders", "lawful_basis", "conditions", "released", "masked", "withheld", "partly",
             "human_decision")


def map_diff(old: ProcessMap, new: ProcessMap) -> MapDiff:
    """Edges the new protocol adds, removes, or keeps with a different basis, condition or field outcome."""
    before = {e.key: e for e in old.edges}
    after = {e.key: e for e in new.edges}
    changed = []
    for key in sorted(before.keys() & after.keys()):
        differs = tuple(a for a in _COMPARED if getattr(before[key], a) != getattr(after[key], a))
        if differs:
            changed.append((before[key], after[key], differs))
    return MapDiff(old=old.protocol, new=new.protocol,
                   added=tuple(after[k] for k in sorted(after.keys() - before.keys())),
                   removed=tuple(before[k] for k in sorted(before.keys() - after.keys())),
                   changed=tuple(changed))


def basis_short(code: str) -> str:
    """`UK GDPR Art 6(1)(e)` for uk_gdpr_art6_1_e: the citation part of the basis's title."""
    basis = BY_CODE.get(code)
    return basis.title.split(":", 1)[0] if basis else code


def _masked_words(masked: Iterable[tuple[str, tuple[str, ...]]]) -> str:
    return ", ".join(f"{cls} ({'/'.join(kinds)})" for cls, kinds in masked)


def _edge_words(e: Edge) -> list[str]:
    lines = [f"basis: {'; '.join(basis_short(c) for c in e.lawful_basis)}"]
    if e.conditions:
        lines.append(f"when: {', '.join(e.conditions)}")
    if e.human_decision:
        lines.append("every event waits for a recorded human decision")
    lines.append(f"released: {', '.join(e.released) or 'none'}")
    if e.partly:
        lines.append(f"partly released: {', '.join(e.partly)}")
    if e.masked:
        lines.append(f"masked: {_masked_words(e.masked)}")
    lines.append(f"withheld: {', '.join(e.withheld) or 'none'}")
    return lines


def format_text(pmap: ProcessMap) -> str:
    """The map as lines for people and for review: one block per route, grouped by rule."""
    lines = [f"process map of {pmap.protocol}: {pmap.title}",
             f"{len(pmap.edges)} routes, {len({e.rule_id for e in pmap.edges})} rules, "
             f"{len(pmap.subscribers)} subscribers", ""]
    for rule_id in dict.fromkeys(e.rule_id for e in pmap.edges):
        mine = [e for e in pmap.edges if e.rule_id == rule_id]
        lines.append(f"rule {rule_id} ({pmap.rules.get(rule_id, '')})")
        for e in mine:
            lines.append(f"  {'/'.join(e.senders)} -> {e.event_type} -> {e.subscriber}")
            lines += [f"      {w}" for w in _edge_words(e)]
    if pmap.unshared:
        lines += ["", f"no rule sends (withheld from every subscriber): {', '.join(pmap.unshared)}"]
    return "\n".join(lines) + "\n"


def format_diff(diff: MapDiff) -> str:
    """The map diff in text: every edge added, removed or changed, and what changed."""
    lines = [f"map diff {diff.old} -> {diff.new}: {len(diff.added)} added, {len(diff.removed)} removed, "
             f"{len(diff.changed)} changed"]
    for e in diff.added:
        lines.append(f"+ {e.event_type} -> {e.subscriber} under {e.rule_id}")
        lines += [f"      {w}" for w in _edge_words(e)]
    for e in diff.removed:
        lines.append(f"- {e.event_type} -> {e.subscriber} under {e.rule_id}")
    for before, after, differs in diff.changed:
        lines.append(f"~ {after.event_type} -> {after.subscriber} under {after.rule_id}: {', '.join(differs)}")
        for attr in differs:
            lines.append(f"      {attr}: {_value_words(getattr(before, attr))} -> {_value_words(getattr(after, attr))}")
    return "\n".join(lines) + "\n"


def diff_as_dict(diff: MapDiff) -> dict[str, Any]:
    return {"from": diff.old, "to": diff.new, "added": [e.as_dict() for e in diff.added],
            "removed": [e.as_dict() for e in diff.removed],
            "changed": [{"before": b.as_dict(), "after": a.as_dict(), "differs": list(d)}
                        for b, a, d in diff.changed]}


def _value_words(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value and isinstance(value[0], tuple):
        return _masked_words(value)
    return ", ".join(value) or "none"


# --- drawing -----------------------------------------------------------------------------------------------------

COLOURS: Mapping[Status, str] = {"added": "#1b7f3b", "removed": "#b3261e", "changed": "#c25e00", "same": "#5f6b7a"}
_FONT = "Helvetica"


def _id(kind: str, name: str) -> str:
    return f"{kind}__{name}"  # not `:`, which DOT reads as a port


def _rule_label(rule_id: str, edges: list[Edge]) -> str:
    """One label per rule on the map (its routes share basis and conditions): the rule id, its bases, its
    conditions and, over the event types it covers, the classifications released, masked and withheld."""
    first = edges[0]
    masked: dict[str, set[str]] = {}
    for e in edges:
        for cls, kinds in e.masked:
            masked.setdefault(cls, set()).update(kinds)
    # over several event types a class may be released in one and withheld in another: it is then "partly"
    anywhere_released = {c for e in edges for c in e.released}
    anywhere_withheld = {c for e in edges for c in e.withheld}
    partly = ({c for e in edges for c in e.partly} | (anywhere_released & anywhere_withheld)) - masked.keys()
    released = sorted(anywhere_released - partly - masked.keys())
    withheld = sorted(anywhere_withheld - partly - masked.keys())
    rows = [rule_id, "; ".join(basis_short(c) for c in first.lawful_basis)]
    if first.conditions:
        rows.append("when " + ", ".join(first.conditions))
    if first.human_decision:
        rows.append("waits for a human decision")
    rows.append("released: " + (", ".join(released) or "none"))
    if partly:
        rows.append("partly released: " + ", ".join(sorted(partly)))
    if masked:
        rows.append("masked: " + _masked_words((c, tuple(sorted(k))) for c, k in sorted(masked.items())))
    rows.append("withheld: " + (", ".join(withheld) or "none"))
    return "\\l".join(_wrap(r) for r in rows) + "\\l"


def _wrap(text: str, width: int = 60) -> str:
    words, lines, line = text.split(" "), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = "  " + w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return "\\l".join(lines)


def to_dot(pmap: ProcessMap, diff: MapDiff | None = None) -> str:
    """Graphviz DOT of the map, left to right: agencies, event types, rules (each a note naming its basis and
    classes), subscribers. With a diff, the edges the old map had and the new lacks are drawn too (red, dashed)."""
    edges = list(pmap.edges) + (list(diff.removed) if diff else [])
    status: dict[EdgeKey, Status] = {e.key: (diff.status(e.key) if diff else "same") for e in edges}
    g = graphviz.Digraph("process_map", graph_attr={
        "rankdir": "LR", "fontname": _FONT, "fontsize": "12", "nodesep": "0.12", "ranksep": "1.1",
        "label": f"{pmap.protocol}: {pmap.title}" + (f" (diff from {diff.old})" if diff else ""),
        "labelloc": "t"}, node_attr={"fontname": _FONT, "fontsize": "10"}, edge_attr={"arrowsize": "0.6"})
    for agency in sorted({a for e in edges for a in e.senders}):
        g.node(_id("agency", agency), agency.replace("_", " "), shape="box", style="rounded,filled",
               fillcolor="#e8eef7")
    for event_type in sorted({e.event_type for e in edges}):
        g.node(_id("type", event_type), event_type, shape="box", style="rounded")
    for rule_id in dict.fromkeys(e.rule_id for e in edges):
        mine = [e for e in edges if e.rule_id == rule_id]
        states = {status[e.key] for e in mine}
        state: Status = states.pop() if len(states) == 1 else ("changed" if states - {"same"} else "same")
        g.node(_id("rule", rule_id), _rule_label(rule_id, mine), shape="note", fontsize="9",
               color=COLOURS[state], style="dashed" if state == "removed" else "solid",
               tooltip=f"rule {rule_id}" + ("" if state == "same" else f" ({state})"))
    for name in sorted({e.subscriber for e in edges}):
        partner = pmap.subscribers.get(name, "")
        g.node(_id("subscriber", name), f"{name}\\n{partner}", shape="box", style="filled", fillcolor="#f3ecf9")
    for agency, event_type in sorted({(a, e.event_type) for e in edges for a in e.senders}):
        g.edge(_id("agency", agency), _id("type", event_type), color="#9aa5b1")
    for e in edges:
        s = status[e.key]
        g.edge(_id("type", e.event_type), _id("rule", e.rule_id), color=COLOURS[s],
               style="dashed" if s == "removed" else "solid", penwidth="2" if s != "same" else "1",
               tooltip=f"{e.event_type} -> {e.subscriber} under {e.rule_id} ({s}): " + "; ".join(_edge_words(e)))
    for rule_id, name in dict.fromkeys((e.rule_id, e.subscriber) for e in edges):
        states = {status[e.key] for e in edges if e.rule_id == rule_id and e.subscriber == name}
        route: Status = states.pop() if len(states) == 1 else "changed"
        g.edge(_id("rule", rule_id), _id("subscriber", name), color=COLOURS[route],
               style="dashed" if route == "removed" else "solid", penwidth="2" if route != "same" else "1")
    return str(g.source)


class RenderError(Unavailable, RuntimeError):
    """Graphviz's `dot` is missing or failed: names the cause, never the map."""


def render_svg(dot_source: str) -> bytes:
    """The map as SVG, by Graphviz's `dot` (Debian's `graphviz` package): the only impure function here."""
    try:
        return bytes(graphviz.Source(dot_source).pipe(format="svg"))
    except graphviz.ExecutableNotFound:
        raise RenderError("Graphviz's dot is not installed (Debian: apt-get install graphviz)") from None
    except graphviz.CalledProcessError as exc:
        raise RenderError(f"Graphviz's dot failed (exit {exc.returncode})") from None
