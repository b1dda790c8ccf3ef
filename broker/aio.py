"""The event loop: running a coroutine on the fastest loop available, and calling blocking code from async code.

uvloop cuts the event loop's own share of the CPU (aiokafka's many small callbacks, HTTP handling); uvicorn picks
it by itself for the service, and the share workers and the benchmark use it through `run`.

The rule for blocking I/O. One event loop serves every HTTP request and runs the workers, so a register write that
waits on a disk sync, a SQLite lock or a PostgreSQL round trip stalls all of them. Async code (an `async def` route,
a worker loop in `broker/service/`) therefore never calls a register (`broker/stores/`), the audit store, a key
store or a KMS itself: it awaits `blocking(fn, *args)`, which runs `fn` in a worker thread. A route whose work is all
blocking is a plain `def` instead (Starlette runs it in the same threads). Make each blocking stretch one call, so a
read and the write that depends on it stay together in one thread; the stores lock their connection, so any thread
may call them (broker/stores/db.py). Start-up and shut-down (opening the registers, the Kafka epoch check), when
nothing else is served yet or any more, may block. tests/integration/test_blocking_off_loop.py holds a register's
write lock and checks the service still answers.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread

T = TypeVar("T")
P = ParamSpec("P")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # e.g. Windows, where uvloop does not build
        return asyncio.run(main)
    return uvloop.run(main)


async def blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` in a worker thread, awaited: the loop serves others meanwhile (the module's rule).

    anyio's thread pool is the one Starlette runs `def` routes in: one bound (40 threads) on all blocking work. A
    cancelled caller stops waiting; the call itself runs to its end (Python cannot stop a thread), so a write a
    timeout gave up on may still be made, as it may when a client disconnects."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
