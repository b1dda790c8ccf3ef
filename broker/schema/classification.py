"""Field classification: the label each leaf of the canonical schema carries.

A leaf's label is the `classification` on its own property schema, else on the schema its `$ref` points to, else
the nearest classified ancestor's. The label picks the encryption key, the protocol's field rules and log redaction.
Paths are dotted with `[]` for array items: `subject.child.given_names[]`.

A leaf may also carry markers, independent of its label: `x-special-category` (the UK GDPR Art 9(1) kinds of data
it can hold, e.g. `["health", "sex_life"]`) and `x-criminal: true` (it can hold criminal offence data, Art 10).
Markers accumulate: a leaf has every marker on itself, on its `$ref` targets and on its ancestors. They exist because
one label cannot say everything: CIN assessment factors are social care data *and* health data *and* criminal
offence data. The protocol compiler reads them (`leaf_markers`) so a rule releasing such a leaf needs the Art 9 and
the Schedule 1 conditions its contents need, whatever its label.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from broker.schema.loader import load_schema

CLASSIFICATIONS: dict[str, str] = {
    "operational": "Ids, types, times, codes and the linkage token: what the broker needs readable on Kafka to route "
                   "and bind ciphertexts; released to a subscriber whose rule shares the event.",
    "sensitive_operational": "Codes the share stage reads to decide (risk level, consent and objection, the source "
                             "system, the source's lawful basis) that reveal a sensitive fact about the child: "
                             "encrypted on Kafka, read only after the event is revealed, withheld from subscribers "
                             "unless a field rule releases them.",
    "identity": "Who the person is: names, date of birth, NHS number, UPN, local authority child id.",
    "contact": "Phone numbers and e-mail addresses.",
    "location": "Addresses, postcodes, placement and incident locations.",
    "demographic": "Sex, ethnicity, language (ethnicity is special category data).",
    "health": "Clinical facts: encounters, conditions, flags, GP practice (special category data).",
    "criminal": "Recorded offences and incidents, the child's role in them, PNC and CRO ids (Art 10; DPA 2018 Part 3).",
    "intelligence": "Police intelligence and assessments: DASH risk grading, a PPN's concerns and the officer's "
                    "assessment. What the police believe or assess, not a recorded offence; criminal offence data "
                    "(Art 10) all the same where it relates to alleged offences.",
    "education": "School, attendance, exclusions, SEN, free school meals.",
    "social_care": "Referrals, assessments, plans, abuse categories, looked-after status, relationships.",
    "narrative": "Free text written by a professional: the most likely to hold anything.",
}

# UK GDPR Art 9(1): the kinds of special category data an `x-special-category` marker may name.
SPECIAL_CATEGORY_KINDS = frozenset({
    "racial_or_ethnic_origin", "political_opinions", "religious_or_philosophical_beliefs", "trade_union_membership",
    "genetic", "biometric", "health", "sex_life", "sexual_orientation"})
SPECIAL = "special_category"  # a leaf marker: x-special-category
CRIMINAL = "criminal_offence"  # a leaf marker: x-criminal

SCALAR_TYPES = {"string", "integer", "number", "boolean", "null"}


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return _resolve(node, root)


def _walk(
    schema: Mapping[str, Any], root: Mapping[str, Any], path: str, inherited: str | None
) -> Iterator[tuple[str, str | None]]:
    target = _resolve(schema, root)
    label = schema.get("classification") or target.get("classification") or inherited
    props = target.get("properties")
    items = target.get("items")
    if props:
        for name, sub in props.items():
            if path == "" and name == "payload":
                continue  # payloads are typed per event type: walked by payload_schemas()
            yield from _walk(sub, root, f"{path}.{name}" if path else name, label)
    elif items is not None:
        yield from _walk(items, root, f"{path}[]", label)
    else:
        yield path, label


def payload_schemas(root: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """event type -> its payload schema, read from the schema's `allOf` if/then branches."""
    out: dict[str, Mapping[str, Any]] = {}
    for branch in root.get("allOf", []):
        cond = branch["if"]["properties"]["event_type"]
        types = cond.get("enum") or [cond["const"]]
        payload = branch["then"]["properties"]["payload"]
        for event_type in types:
            out[event_type] = payload
    return out


def leaf_labels(root: Mapping[str, Any], event_type: str) -> dict[str, str | None]:
    """Every leaf path of an event of this type and its label (None: unclassified, a schema error)."""
    labels = dict(_walk(root, root, "", None))
    payload = payload_schemas(root).get(event_type)
    if payload is not None:
        labels.update(_walk(payload, root, "payload", None))
    return labels


@cache
def field_classes(event_type: str) -> dict[str, str]:
    """Leaf path -> classification for one event type of the installed schema."""
    return {path: label or "unclassified" for path, label in leaf_labels(load_schema(), event_type).items()}


def unclassified_leaves(root: Mapping[str, Any]) -> list[str]:
    """Leaves with no label or an unknown one, over every event type: must be empty."""
    bad: set[str] = set()
    for event_type in root["$defs"]["event_type"]["enum"]:
        for path, label in leaf_labels(root, event_type).items():
            if label not in CLASSIFICATIONS:
                bad.add(f"{event_type}: {path} ({label})")
    return sorted(bad)


def iter_leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(schema path, value) for every scalar in an event, with `[]` for list positions."""
    if isinstance(value, Mapping):
        for key, sub in value.items():
            yield from iter_leaves(sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for sub in value:
            yield from iter_leaves(sub, f"{path}[]")
    else:
        yield path, value


def classify(event: Mapping[str, Any], path: str) -> str:
    """Label of one leaf path in this event; unknown paths count as narrative (fail closed)."""
    return field_classes(str(event.get("event_type", ""))).get(path, "narrative")


def _own_markers(schema: Mapping[str, Any]) -> frozenset[str]:
    out = set()
    if schema.get("x-special-category"):
        out.add(SPECIAL)
    if schema.get("x-criminal") is True:
        out.add(CRIMINAL)
    return frozenset(out)


def _walk_markers(schema: Mapping[str, Any], root: Mapping[str, Any], path: str,
                  inherited: frozenset[str]) -> Iterator[tuple[str, frozenset[str]]]:
    target = _resolve(schema, root)
    markers = inherited | _own_markers(schema) | _own_markers(target)
    props = target.get("properties")
    items = target.get("items")
    if props:
        for name, sub in props.items():
            if path == "" and name == "payload":
                continue
            yield from _walk_markers(sub, root, f"{path}.{name}" if path else name, markers)
    elif items is not None:
        yield from _walk_markers(items, root, f"{path}[]", markers)
    else:
        yield path, markers


def markers_of(root: Mapping[str, Any], event_type: str) -> dict[str, frozenset[str]]:
    """Leaf path -> its markers (SPECIAL, CRIMINAL) for one event type of this schema; unmarked leaves left out."""
    out = {p: m for p, m in _walk_markers(root, root, "", frozenset()) if m}
    payload = payload_schemas(root).get(event_type)
    if payload is not None:
        out.update({p: m for p, m in _walk_markers(payload, root, "payload", frozenset()) if m})
    return out


@cache
def leaf_markers(event_type: str) -> dict[str, frozenset[str]]:
    """markers_of for the installed schema."""
    return markers_of(load_schema(), event_type)


def bad_markers(root: Mapping[str, Any]) -> list[str]:
    """Markers with a value the checks cannot read (x-special-category not a list of Art 9(1) kinds, x-criminal
    not true): must be empty."""
    bad: list[str] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, Mapping):
            kinds = node.get("x-special-category")
            if kinds is not None and (not isinstance(kinds, list) or not kinds
                                      or not set(kinds) <= SPECIAL_CATEGORY_KINDS):
                bad.append(f"{where}: x-special-category")
            if "x-criminal" in node and node["x-criminal"] is not True:
                bad.append(f"{where}: x-criminal")
            for key, sub in node.items():
                visit(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                visit(sub, f"{where}/{i}")

    visit(root, "#")
    return bad
