"""The composition root (broker/service/root.py) builds every part whole: nothing in a Runtime is None waiting for a
start, so the shell has nothing to assert into existence, and each worker and router is given a narrow Protocol
(broker/service/ports.py) that mypy checks the Runtime satisfies (runtime.py). No server, no Kafka: the classes and
the source."""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from pathlib import Path

import pytest

from broker.service.runtime import Local, Runtime

ROOT = Path(__file__).resolve().parents[2]
SHELL = sorted([*(ROOT / "broker" / "service").glob("*.py"), *(ROOT / "broker" / "api").glob("*.py")])
# Optional by meaning, not by start order: say why for each
MAY_BE_NONE = {
    "kafka_transactions": "not known until the first share worker asks the cluster for a transactional producer",
}


def _optional(hint: object) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


@pytest.mark.parametrize("cls", [Local, Runtime])
def test_no_part_is_none_until_a_start(cls: type) -> None:
    hints = typing.get_type_hints(cls)
    waiting = {f.name for f in dataclasses.fields(cls) if _optional(hints[f.name])}
    assert waiting == set(MAY_BE_NONE) & {f.name for f in dataclasses.fields(cls)}


def test_a_runtime_cannot_be_made_without_its_parts() -> None:
    with pytest.raises(TypeError, match="missing"):
        Runtime()  # type: ignore[call-arg]  # the old Runtime(settings) that was filled in by start()


def _asserted_parts(path: Path, parts: set[str]) -> list[str]:
    """`assert rt.<part> is not None` (or runtime.<part>, self.<part>): a part asserted into existence."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Assert):
            continue
        for test in ast.walk(node.test):
            if (isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.IsNot)
                    and isinstance(test.left, ast.Attribute) and isinstance(test.left.value, ast.Name)
                    and test.left.value.id in {"rt", "runtime", "self"} and test.left.attr in parts):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(test)}")
    return found


def test_no_shell_module_asserts_a_part_into_existence() -> None:
    parts = {f.name for f in dataclasses.fields(Runtime)} - set(MAY_BE_NONE)
    assert [hit for path in SHELL for hit in _asserted_parts(path, parts)] == []


def test_the_assert_finder_finds_one(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f(rt):\n    assert rt.producer is not None and rt.cases is not None\n")
    assert len(_asserted_parts(probe, {"producer", "cases"})) == 2
