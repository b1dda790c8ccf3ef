"""Old against new for the service's intake shell (issue 24), and the intake plan's benchmark.

Old: after Kafka acknowledged a request, a second thread hop always, writing the identity register (links, merges)
and the facts the events carry (dates of birth, schools, GP practices), even when there was nothing new. New: the
plan's own thread hop also asks whether there is anything to learn (`facts_to_learn`, reads only); the second hop
is made only when there is (`writes_registers`, or facts to learn). Over the bench's mix, at one record per request
and at 20, the registers must end the same after every request either way: every identity row, every date of birth,
school and practice (opened: their seals are randomised), while the new way skips the writes for most requests.

The benchmark runs only when asked: `nice -n 19 .venv/bin/python -m pytest tests/bench/test_intake_differential.py
--benchmark-enable -p no:cacheprovider` (otherwise it skips: it measures cost). One round is the whole mix; divide
by `extra_info["events"]` for the cost per event.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from broker.bench.intake_mix import intake_mix, plan_with_store
from broker.pipeline.intake_flush import writes_registers
from broker.pipeline.intake_plan import ErasureFacts, resolve_intake
from broker.service.facts import _opened, _opened_registrations, facts_to_learn, learn_facts
from broker.stores.identities import IdentityRegister


def _state(rt: SimpleNamespace, tokens: list[str]) -> dict:
    """Everything the identity register holds, its sealed facts opened."""
    rows = rt.identities.db.query("SELECT identifier, kind, child, linked_at FROM identity ORDER BY identifier")
    dates = rt.identities.db.query("SELECT token, conflict, learned_at FROM birth_dates ORDER BY token")
    regs = rt.identities.db.query("SELECT token, kind, learned_at FROM registrations ORDER BY token, kind")
    return {"identity": rows, "birth_dates": dates, "registrations": regs, "opened": _opened(rt, tokens),
            "opened_registrations": _opened_registrations(rt, rt.identities.sealed_registrations(tokens))}


@pytest.mark.parametrize(("batch", "count"), [(1, 320), (20, 16)])
def test_writing_only_what_is_new_leaves_the_registers_as_writing_after_every_request(tmp_path: Path, batch, count):
    with intake_mix(tmp_path, count=count, batch=batch) as m:
        always = SimpleNamespace(identities=m.identities, keys=m.keys)  # the old way, the mix's own register
        only_new = SimpleNamespace(identities=IdentityRegister(tmp_path / "only-new.sqlite"), keys=m.keys)
        skipped = 0
        tokens: list[str] = []
        try:
            for body in m.bodies:
                prepared = body.prepared
                ids = [i.token for event_ids in prepared.identities for i in event_ids]
                known = always.identities.known(ids)
                assert only_new.identities.known(ids) == known  # the same facts going in, each time
                resolved = resolve_intake(prepared, known)
                plan = plan_with_store(m.keys, body, resolved, ErasureFacts())
                published = [e for e in resolved.events if e["event_id"] in set(plan.result.event_ids)]
                at = body.request.received_at
                always.identities.apply(plan.links, at)
                learn_facts(always, published, at)
                if writes_registers(plan) or facts_to_learn(only_new, published):
                    only_new.identities.apply(plan.links, at)
                    learn_facts(only_new, published, at)
                else:
                    skipped += 1
                tokens += [e["subject"]["linkage"]["token"] for e in published]
                assert _state(only_new, tokens) == _state(always, tokens)
        finally:
            only_new.identities.db.close()
        assert skipped < len(m.bodies)  # first sight of a child writes
        if batch == 1:  # the mix's children recur after 200 records: some requests then have nothing to write
            assert skipped > 0
        assert _state(always, tokens)["opened"]  # and there were facts to compare


@pytest.mark.parametrize("batch", [1, 20])
def test_bench_intake_plan(benchmark, tmp_path, batch):
    if benchmark.disabled:
        pytest.skip("a cost measurement: run with --benchmark-enable")
    with intake_mix(tmp_path, count=600 // batch, batch=batch) as m:
        list(m.plan_all(plan_with_store))  # every child's keys and links made before anything is measured
        benchmark.extra_info["events"] = m.events
        plans = benchmark.pedantic(lambda: list(m.plan_all(plan_with_store)), rounds=5, iterations=1)
        assert sum(len(p.result.event_ids) for p in plans) == m.events
