"""Field classification: the label each leaf of the canonical schema carries.

A leaf's label is the `classification` on its own property schema, else on the schema its `$ref` points to, else
the nearest classified ancestor's. The label picks the encryption key, the protocol's field rules and log redaction.
Paths are dotted with `[]` for array items: `subject.child.given_names[]`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from broker.schema.loader import load_schema

CLASSIFICATIONS: dict[str, str] = {
    "operational": "Ids, types, times, codes and the linkage token: no personal data; stays readable on Kafka.",
    "identity": "Who the person is: names, date of birth, NHS number, UPN, local authority child id.",
    "contact": "Phone numbers and e-mail addresses.",
    "location": "Addresses, postcodes, placement and incident locations.",
    "demographic": "Sex, ethnicity, language (ethnicity is special category data).",
    "health": "Clinical facts: encounters, conditions, flags, GP practice (special category data).",
    "criminal": "Police data: offences, incidents, PNC and CRO ids (DPA 2018 Part 3 / Art 10).",
    "education": "School, attendance, exclusions, SEN, free school meals.",
    "social_care": "Referrals, assessments, plans, abuse categories, looked-after status, relationships.",
    "narrative": "Free text written by a professional: the most likely to hold anything.",
}

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
