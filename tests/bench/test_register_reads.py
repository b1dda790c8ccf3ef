"""The cost of the share worker's case and consent register reads for one 500-event batch (issue 24): one read per
token (before) against one query per register per batch (`CaseRegister.open_states`, `ConsentRegister.get_many`).

Runs only when asked (it measures cost, CPU time): `nice -n 19 .venv/bin/python -m pytest
tests/bench/test_register_reads.py --benchmark-enable -p no:cacheprovider`. One round is one batch's reads;
`extra_info` gives the batch's events and distinct tokens, and the statements each way (sqlite3's trace callback).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.bench.share_mix import mix_events
from broker.policy import ConsentState
from broker.schema.envelope import linkage_token
from broker.stores.cases import CaseRegister
from broker.stores.consent import ConsentRegister

EVENTS = 500


def _per_token(cases: CaseRegister, consent: ConsentRegister, tokens: list[str]) -> Any:
    return {t: cases.is_open(t) for t in tokens}, {t: consent.get(t) for t in tokens}


def _batch(cases: CaseRegister, consent: ConsentRegister, tokens: list[str]) -> Any:
    return cases.open_states(tokens), consent.get_many(tokens)


@pytest.fixture(scope="module")
def registers(tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[tuple[CaseRegister, ConsentRegister, list[str], int]]:
    """SQLite registers holding a case for half the batch's children and consent records for a third of them."""
    events = mix_events(400)[:EVENTS]  # 400 of the mix's records make more than 500 events
    assert len(events) == EVENTS
    tokens = list(dict.fromkeys(linkage_token(e) for e in events))
    folder = Path(tmp_path_factory.mktemp("register-reads"))
    cases, consent = CaseRegister(folder / "cases.sqlite"), ConsentRegister(folder / "consent.sqlite")
    for n, token in enumerate(tokens):
        if n % 2 == 0:
            cases.set(token, n % 4 == 0, f"e{n}")
        if n % 3 == 0:
            consent.put(token, ConsentState(("given", "refused", "withdrawn")[n % 9 // 3], n % 5 == 0, "2026-06-01"))
    yield cases, consent, tokens, len(events)
    cases.close()
    consent.close()


@pytest.mark.benchmark(timer=time.process_time, group="share register reads, one 500-event batch")
@pytest.mark.parametrize("read", [_per_token, _batch], ids=["per_token", "batch"])
def test_bench_register_reads(benchmark, registers, read: Callable[..., Any]) -> None:
    if benchmark.disabled:
        pytest.skip("a cost measurement: run with --benchmark-enable")
    cases, consent, tokens, events = registers
    statements = [0]

    def seen(_: str) -> None:
        statements[0] += 1

    for conn in (cases.db.conn, consent.db.conn):
        conn.set_trace_callback(seen)
    answer = read(cases, consent, tokens)
    benchmark.extra_info.update(events=events, tokens=len(tokens), statements=statements[0])
    for conn in (cases.db.conn, consent.db.conn):
        conn.set_trace_callback(None)
    assert answer == _per_token(cases, consent, tokens)  # the same answers either way
    benchmark.pedantic(read, (cases, consent, tokens), rounds=30, iterations=1, warmup_rounds=2)
