"""Every broker process hands glibc's free pages back now and then (broker/service/malloc_trim.py): session 15 found
the service's RSS growth in a soak to be freed C-heap memory kept by glibc's arenas, not Python objects."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from broker.service import malloc_trim
from broker.service.runtime import Runtime


async def test_trims_with_pad_zero_off_the_loop_until_stopped() -> None:
    stop = asyncio.Event()
    calls: list[tuple[int, bool]] = []
    loop_thread = asyncio.get_running_loop()

    def trim(pad: int) -> int:
        on_loop = True
        try:
            on_loop = asyncio.get_running_loop() is loop_thread
        except RuntimeError:  # no loop in this thread: a worker thread, as it should be
            on_loop = False
        calls.append((pad, on_loop))
        if len(calls) == 2:
            loop_thread.call_soon_threadsafe(stop.set)
        return 1

    await asyncio.wait_for(malloc_trim.run_malloc_trim(stop, every=0, trim=trim), 10)
    assert calls[:2] == [(0, False), (0, False)]


async def test_without_malloc_trim_it_waits_for_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc_trim, "glibc_trim", lambda: None)
    stop = asyncio.Event()
    task = asyncio.create_task(malloc_trim.run_malloc_trim(stop, every=0))
    await asyncio.sleep(0)
    assert not task.done()  # alive: the runtime's workers_alive counts it
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_glibc_trim_is_found_and_callable_on_linux() -> None:
    trim = malloc_trim.glibc_trim()
    if trim is None:
        pytest.skip("not glibc (musl has no malloc_trim)")
    assert trim(0) in (0, 1)


async def test_the_http_only_service_starts_the_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mash-broker run --share-workers 0 --no-audit-indexer` (the bench's service, whose RSS grew): no worker, but
    the trim runs; and in a share worker's process too."""
    started: list[str] = []

    async def fake_trim(stop: asyncio.Event, *args: Any, **kwargs: Any) -> None:
        started.append("trim")
        await stop.wait()

    monkeypatch.setattr(malloc_trim, "run_malloc_trim", fake_trim)
    rt: Any = SimpleNamespace(tasks=[], stop_event=asyncio.Event(), settings=SimpleNamespace(
        insight_watch_interval_seconds=0, kafka_reads_interval_seconds=0), protocol=SimpleNamespace(
        hub=SimpleNamespace(watches=())))
    Runtime.start_workers(rt, share_workers=0, audit_indexer=False)
    assert len(rt.tasks) == 1
    await asyncio.sleep(0)
    assert started == ["trim"]
    rt.stop_event.set()
    await asyncio.wait_for(asyncio.gather(*rt.tasks), 10)
