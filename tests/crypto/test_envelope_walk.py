"""The envelope's leaf walk hands each non-operational scalar to the leaf function with the concrete path the plain
recursive walk would build, on any shape: dict and list subclasses, empty keys, unknown fields, nested lists."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.crypto.envelope import _UNKNOWN, _map_leaves, _Node, _nonce_stream, _schema_tree


def reference_walk(node: Any, schema: _Node, concrete: str, leaf) -> Any:
    if isinstance(node, dict):
        return {k: reference_walk(v, schema.children.get(k, _UNKNOWN), f"{concrete}.{k}" if concrete else k, leaf)
                for k, v in node.items()}
    if isinstance(node, list):
        item = schema.children.get("[]", _UNKNOWN)
        return [reference_walk(v, item, f"{concrete}[{i}]", leaf) for i, v in enumerate(node)]
    return node if schema.label == "operational" else leaf(node, concrete, schema.label)


class Items(list):
    pass


keys = st.sampled_from(["subject", "child", "given_names", "addresses", "lines", "payload", "event_id", "", "zz"])
leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.sampled_from(["", "Testchild"])
shapes = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=2).map(Items)
    | st.dictionaries(keys, inner, max_size=3) | st.dictionaries(keys, inner, max_size=2).map(OrderedDict),
    max_leaves=25)


def tagged(value: Any, path: str, label: str) -> tuple[str, str, str]:
    return ("leaf", repr(value), f"{path}|{label}")


@settings(max_examples=300, deadline=None)
@given(shapes, st.sampled_from(["health.admission", "police.incident_child_present", "person.updated"]))
def test_walk_matches_the_plain_recursion(value: Any, event_type: str) -> None:
    tree = _schema_tree(event_type)
    got = _map_leaves(value, tree, tagged)
    assert repr(got) == repr(reference_walk(value, tree, "", tagged))
    assert type(got) is type(reference_walk(value, tree, "", tagged))


def test_nonces_are_fresh_twelve_byte_values_across_blocks() -> None:
    stream = _nonce_stream()
    drawn = [next(stream) for _ in range(64 * 3 + 5)]  # over several OS draws
    assert all(len(n) == 12 for n in drawn) and len(set(drawn)) == len(drawn)
