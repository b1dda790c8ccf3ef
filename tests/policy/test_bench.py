"""Decision cost (goal: well under 100 us per event per subscriber). Run with
`.venv/bin/pytest tests/policy --benchmark-enable -k bench`; disabled benchmarks still run each body once."""

from __future__ import annotations

import yaml

from broker.policy import ConsentState, decide, decide_all, load_protocol, release
from tests.policy.conftest import MASK_KEY, SAMPLE, make_event


def _incident():
    return make_event("police.incident_child_present", "police",
                      {"incident_reference": "TEST/0001", "child_role": "present", "dash_risk": "medium",
                       "offences": [{"code": "TEST-OFF"}], "summary": "Fictitious narrative."},
                      risk="medium", categories=("domestic_abuse",))


def test_bench_decide_one_subscriber(benchmark, sample) -> None:
    event = _incident()
    # a police notice of a child present at an incident is the force's contact with the front door (issue 19)
    decision = benchmark(decide, sample, event, "mash_hub", consent=ConsentState("given"), case_open=True)
    assert decision.outcome == "deliver" and decision.rule_id == "mash-police-contact"


def test_bench_decide_withhold(benchmark, sample) -> None:
    event = _incident()
    decision = benchmark(decide, sample, event, "riverside_gp")
    assert decision.outcome == "withhold"


def test_bench_decide_all_five_subscribers(benchmark, sample) -> None:
    event = _incident()
    decisions = benchmark(decide_all, sample, event, ConsentState("given"), case_open=True)
    # early help no longer receives a police incident (police records need authority under DPA 2018 s36(4)); the
    # pupil's school does (Operation Encompass, Domestic Abuse Act 2021 s49A)
    assert [d.outcome for d in decisions] == ["deliver", "withhold", "withhold", "deliver", "withhold"]


def test_bench_release(benchmark, sample) -> None:
    event = _incident()
    decision = decide(sample, event, "mash_hub", case_open=True)
    view = benchmark(release, event, decision, mask_key=MASK_KEY)
    assert view["payload"]["summary"] == "[redacted]"


def test_bench_compile_sample(benchmark) -> None:
    protocol = benchmark.pedantic(load_protocol, args=(SAMPLE,), rounds=3, iterations=1)
    assert [r.id for r in protocol.rules] == [r["id"] for r in yaml.safe_load(SAMPLE.read_text())["rules"]]
