"""Hand the C heap's free pages back to the system now and then (glibc's `malloc_trim`), in every broker process.

Why (session 15, the service's "1 MB a minute" of session 14's soak): in `mash-broker bench --soak --rate 100
--batch 20` the service's Python heap is level once warm (gc's object counts; tracemalloc's total over intake's plan
path in process, 2.37 -> 2.38 MB over 10,000 events once the key store's caches hold their 4,096), and so, nearly,
is what glibc's malloc has handed out; but its arenas keep the pages of what was freed. A request's body, its
events' JSON and Kafka's buffers are mostly larger than Python's 512-byte small-object limit, so they come from
malloc, and glibc gives pages back only from the top of a heap (above a threshold that rises with the largest block
freed), never from the holes below it. In MiB (the bench's "MB"), over the service's first 7 minutes its arenas grew
63.5 -> 68.9, 1.0 of it in use and 4.4 more free in them (18.0 free in all), the RSS with them; `malloc_trim(0)` then
took the service 168.6 -> 157.8 and the share worker 127.1 -> 116.3 at once, nothing else changed, and without a
further trim the service was back at 170.5 six minutes later (three soaks on two cores). Contention (a CI run beside
a soak, a slowed service) makes the peaks, and so the holes, larger: hence session 14's faster growth. With this
trim once a minute the service stayed at 156.7-159.4 over the next soak's 8 minutes.

Once a minute, in a worker thread (a trim walks and locks each arena in turn: not on the event loop).
Where the C library has no `malloc_trim` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections.abc import Callable

from broker.aio import blocking

TRIM_EVERY_S = 60.0

Trim = Callable[[int], int]


def glibc_trim() -> Trim | None:
    """glibc's `malloc_trim(pad)` (1 when it released memory), or None where the C library has none."""
    try:
        fn = ctypes.CDLL(None).malloc_trim  # the process's own symbols: the C library it runs on
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


async def run_malloc_trim(stop: asyncio.Event, every: float = TRIM_EVERY_S, trim: Trim | None = None) -> None:
    """Trim every `every` seconds until `stop` (the first after one interval: a process starting has nothing freed)."""
    trim = trim or glibc_trim()
    if trim is None:
        await stop.wait()  # kept running: the runtime's workers_alive counts every task it started
        return
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
            return
        await blocking(trim, 0)
