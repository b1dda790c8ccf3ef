"""pytest-benchmark twins of `mash-broker bench`'s stage timings: the pure stages over the synthetic mix.

Measured only when asked: `.venv/bin/pytest tests/bench --benchmark-enable` (otherwise each body runs once, as a
check that the stage works). One round is the whole mix of records (or their events), so figures compare across runs.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from adapters.kit.interface import AdaptContext
from adapters.kit.registry import select
from broker.bench.records import usable_formats
from broker.bench.stages import RECEIVED, native_inputs, run_stages, stage_kit
from broker.crypto import protect_event, reveal_event
from broker.pipeline.identify import complete
from broker.policy import decide_all, release
from broker.schema.validate import validate_event

RECORDS = 40


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    with stage_kit(tmp_path_factory.mktemp("bench")) as k:
        yield k


@pytest.fixture(scope="module")
def inputs():
    formats, _, _ = usable_formats()
    assert formats
    return native_inputs(formats, RECORDS)


def adapt_all(inputs) -> list[dict[str, Any]]:
    drafts = []
    for fmt, data in inputs:
        ctx = AdaptContext(source="bench", received_at=RECEIVED, system=fmt.system)
        drafts += select(fmt.agency, data, source="bench", content_type=fmt.content_type).adapt(data, ctx).events
    return drafts


@pytest.fixture(scope="module")
def events(kit, inputs) -> list[dict[str, Any]]:
    done = [complete(d, kit.linkage, RECEIVED) for d in adapt_all(inputs)]
    assert not any(validate_event(e) for e in done)
    run_stages(kit, inputs)  # data keys and sealers exist before anything is measured
    return done


@pytest.fixture(scope="module")
def decided(kit, events):
    return [(e, d) for e in events for d in decide_all(kit.protocol, e, None, case_open=True)
            if d.outcome == "deliver"]


def test_bench_adapt(benchmark, inputs):
    drafts = benchmark(adapt_all, inputs)
    assert len(drafts) >= len(inputs)


def test_bench_identify(benchmark, kit, inputs):
    drafts = adapt_all(inputs)
    done = benchmark(lambda: [complete(d, kit.linkage, RECEIVED) for d in drafts])
    assert all(e["subject"]["linkage"]["token"].startswith("lt1_") for e in done)


def test_bench_validate(benchmark, events):
    problems = benchmark(lambda: [validate_event(e) for e in events])
    assert not any(problems)


def test_bench_protect(benchmark, kit, events):
    protected = benchmark(lambda: [orjson.dumps(protect_event(e, kit.keys)) for e in events])
    assert b"Testchild" not in b"".join(protected)


def test_bench_reveal(benchmark, kit, events):
    protected = [orjson.dumps(protect_event(e, kit.keys)) for e in events]
    revealed = benchmark(lambda: [reveal_event(orjson.loads(p), kit.keys).event for p in protected])
    assert revealed == events


def test_bench_decide(benchmark, kit, events):
    decisions = benchmark(lambda: [decide_all(kit.protocol, e, None, case_open=True) for e in events])
    assert all(len(d) == len(kit.protocol.subscribers) for d in decisions)
    assert any(x.outcome == "deliver" for d in decisions for x in d)


def test_bench_release(benchmark, kit, decided):
    views = benchmark(lambda: [release(e, d, mask_key=kit.mask_key) for e, d in decided])
    assert [v["event_id"] for v in views] == [e["event_id"] for e, _ in decided]


def test_bench_seal(benchmark, kit, decided):
    views = [(d.subscriber, release(e, d, mask_key=kit.mask_key)) for e, d in decided]
    sealed = benchmark(lambda: [kit.sealer(s).seal(v) for s, v in views])
    assert all(b'"ciphertext"' in s for s in sealed)


def test_bench_whole_pure_pipeline(benchmark, kit, inputs, events):
    count = benchmark(run_stages, kit, inputs)
    assert count == len(events)


def test_bench_whole_pure_pipeline_without_encryption(benchmark, kit, inputs, events):
    count = benchmark(run_stages, kit, inputs, encrypt=False)
    assert count == len(events)
