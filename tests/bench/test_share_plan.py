"""pytest-benchmark of the share plan (broker/pipeline/share_plan.py) over the bench's mix: decide for the sample
protocol's subscribers, release, seal, audit, for every event, in batches as a share worker plans them.

Measured only when asked: `.venv/bin/pytest tests/bench/test_share_plan.py --benchmark-enable` (otherwise it runs
once, as a check). One round is the whole mix; divide by `extra_info["events"]` for the cost per event.
"""

from __future__ import annotations

import pytest

from broker.audit.withheld import expand
from broker.bench.share_mix import share_mix

RECORDS = 200


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    with share_mix(tmp_path_factory.mktemp("share-bench"), records=RECORDS) as m:
        list(m.plan_all())  # sealers made before anything is measured
        yield m


def test_bench_share_plan(benchmark, mix):
    benchmark.extra_info["events"] = mix.events
    plans = benchmark(lambda: list(mix.plan_all()))
    assert sum(len(p.deliveries) for p in plans) > 0
    # one decision per subscriber per event, once the store expands each event's group of withholds
    assert sum(len(expand(a)) for p in plans for a in p.audits) >= mix.events * len(mix.protocol.subscribers)
