"""What proving costs: the sample protocol's invariants, and a generated protocol ten times its size. Run with
`nice -n 19 .venv/bin/python -m pytest tests/policy/test_bench_prove.py --benchmark-enable -p no:cacheprovider`
(figures in broker/policy/README.md). Without --benchmark-enable (as in `make test`) they skip: they measure cost,
and the sample's proof is shown by tests/policy/test_prove.py; the ten-times protocol alone is minutes of CPU."""

from __future__ import annotations

import copy

import pytest
import yaml

from broker.policy.compile import parse_protocol
from broker.policy.prove import prove
from tests.policy.conftest import SAMPLE


def _sample_data() -> dict:
    return yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))


def ten_times(data: dict) -> dict:
    """The sample with ten copies of every subscriber (each with its rules' copies naming it by name): ten times
    the rules and the (subscriber, event type) pairs, the same invariants."""
    out = copy.deepcopy(data)
    subs, rules = [], []
    for n in range(10):
        rename = {s["name"]: f"{s['name']}_{n}" for s in data["subscribers"]}
        for s in data["subscribers"]:
            subs.append({**copy.deepcopy(s), "name": rename[s["name"]]})
        for r in data["rules"]:
            rule = copy.deepcopy(r)
            rule["id"] = f"{r['id']}-{n}"
            # by name, this copy's subscribers only (roles are kept, so the invariants naming roles still apply)
            rule["subscribers"] = [rename[s["name"]] for s in data["subscribers"]
                                   if s["name"] in r["subscribers"] or s["role"] in r["subscribers"]]
            rules.append(rule)
    out["subscribers"], out["rules"], out["tests"] = subs, rules, []
    return out


def _measuring(benchmark) -> None:
    if benchmark.disabled:
        pytest.skip("a cost measurement: run with --benchmark-enable")


def test_bench_prove_sample(benchmark) -> None:
    _measuring(benchmark)
    protocol = parse_protocol(_sample_data(), str(SAMPLE), base_dir=SAMPLE.parent)
    proof = benchmark.pedantic(prove, args=(protocol,), rounds=3, iterations=1)
    assert proof.proven


def test_bench_prove_ten_times_the_sample(benchmark) -> None:
    _measuring(benchmark)
    protocol = parse_protocol(ten_times(_sample_data()), str(SAMPLE), base_dir=SAMPLE.parent)
    assert len(protocol.rules) >= 10 * len(_sample_data()["rules"])
    proof = benchmark.pedantic(prove, args=(protocol,), rounds=1, iterations=1)
    assert proof.proven and proof.scopes >= 10 * 50
