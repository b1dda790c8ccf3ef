"""Hostile protocol YAML: an alias bomb, a recursive alias and deep nesting are refused at once, in one plain line
naming the file and line; the anchors a real protocol uses still load."""

from __future__ import annotations

import shutil
import time

import pytest

from broker.config import Settings
from broker.policy import ProtocolError, load_protocol
from broker.policy.source import MAX_EXPANDED_NODES, parse_yaml
from broker.service.root import load_local
from tests.policy.conftest import SAMPLE


def alias_bomb(levels: int = 9) -> str:
    """Nine aliases of nine aliases ...: ~300 bytes that expand to 9**levels nodes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "protocol:\n  id: bomb\n" + "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_in_well_under_a_second(tmp_path) -> None:
    """Promise: a protocol file cannot hang the start by expanding aliases (before: the load never finished)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    started = time.monotonic()
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    assert time.monotonic() - started < 1.0
    message = str(info.value)
    assert "\n" not in message and str(path) in message and f"more than {MAX_EXPANDED_NODES} nodes" in message
    assert info.value.line is not None and "lol" not in message


def test_the_start_reports_the_bomb_in_one_line(tmp_path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    settings = Settings(data_dir=tmp_path / "data", protocol_file=path, dev_mode=True)
    with pytest.raises(ProtocolError, match="alias bomb"):
        load_local(settings)


@pytest.mark.parametrize(("text", "reason"), [
    ("a: &a [1, *a]\n", "refers to its own anchor"),
    ("a: &a {b: *a}\n", "refers to its own anchor"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_recursive_aliases_and_deep_nesting_are_protocol_errors(text: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_yaml(text, "hostile.yaml")


def test_a_bomb_just_under_the_bound_loads_and_one_just_over_does_not() -> None:
    # 9**5 = 59049 leaves plus their lists: under 100,000 nodes; 9**6 is over
    data, _ = parse_yaml(alias_bomb(5), "small.yaml")
    assert len(data["a4"]) == 9
    with pytest.raises(ProtocolError):
        parse_yaml(alias_bomb(6), "big.yaml")


def test_the_sample_protocol_keeps_its_anchors(tmp_path) -> None:
    shutil.copy(SAMPLE, tmp_path / "p.yaml")
    assert "*child" in (tmp_path / "p.yaml").read_text()
    protocol = load_protocol(tmp_path / "p.yaml")
    assert protocol.tests and protocol.subscribers
