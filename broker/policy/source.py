"""Reading protocol YAML safely: no timestamp magic, no duplicate keys, and a line number for every path.

Dates stay strings (the schema checks them); a duplicated key is an error rather than PyYAML's silent last-wins,
since a repeated `fields:` would quietly change what is shared.
"""

from __future__ import annotations

from typing import Any

import yaml

from broker.policy.errors import ProtocolError


class _Loader(yaml.SafeLoader):
    pass


# Keep YAML timestamps as plain strings: drop the implicit resolver for them.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:  # the node's own keys; a merge (<<) may supply a key they override
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, "duplicate key", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


# Anchors and aliases stay allowed (the sample protocol's tests reuse a child with `*child`), but what they expand to
# is bounded: an alias bomb (nine aliases of nine aliases of ...) is a few hundred bytes of YAML that expands to
# billions of nodes, which the compiler and the schema check then walk: the start hung. A real protocol expands to a
# few thousand nodes.
MAX_EXPANDED_NODES = 100_000


class _AliasBomb(Exception):
    def __init__(self, reason: str, node: yaml.Node) -> None:
        super().__init__(reason)
        self.reason, self.node = reason, node


def expanded_size(root: yaml.Node | None, limit: int = MAX_EXPANDED_NODES) -> int:
    """How many nodes the document has once every alias is expanded, counting each shared node once per use
    (memoised, so it costs one pass over the distinct nodes). Raises _AliasBomb past `limit` or on a cycle."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _AliasBomb("a YAML alias refers to its own anchor (a recursive structure)", node)
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                raise _AliasBomb(f"YAML aliases expand to more than {limit} nodes (refused: an alias bomb?)", node)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root) if root is not None else 0


def parse_yaml(text: str, origin: str) -> tuple[Any, yaml.Node | None]:
    """(data, node tree) of one YAML document; a syntax error names the line, never the text. Anchors and aliases
    are allowed within MAX_EXPANDED_NODES."""
    try:
        # one parse: the node tree is composed once, bounded, then constructed (what yaml.load does in one call;
        # parsing twice made `doctor`, which loads a 125 KB protocol twice, time out on a loaded CI host)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            try:
                expanded_size(node)
            except _AliasBomb as exc:
                raise ProtocolError(origin, "", exc.reason, exc.node.start_mark.line + 1) from None
            data = loader.construct_document(node) if node is not None else None  # _Loader derives from SafeLoader
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or "invalid YAML").split("\n")[0]
        raise ProtocolError(origin, "", f"not valid YAML ({problem})", line) from None
    except yaml.YAMLError:
        raise ProtocolError(origin, "", "not valid YAML") from None
    except RecursionError:  # PyYAML composes recursively: thousands of nested brackets exhaust the stack
        raise ProtocolError(origin, "", "not valid YAML (nested too deeply)") from None
    return data, node


def line_of(node: yaml.Node | None, parts: list[str | int]) -> int | None:
    """1-based line of the value at this path, or of the nearest ancestor that exists."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def yaml_path(parts: list[str | int]) -> str:
    """['rules', 2, 'fields', 0] -> 'rules[2].fields[0]'."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
