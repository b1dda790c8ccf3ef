"""One supervision rule for every long-running worker task (share workers, the audit indexer, the hub watch).

A crash is logged with the worker's own event name, counted in `mash_worker_restarts_total`, and the body is run again
after a pause: a consumer-group member rejoins its group and redoes whatever it had not committed. Cancellation (the
service stopping) ends it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

RESTART_PAUSE_S = 1.0


async def supervised(stop: asyncio.Event, body: Callable[[], Awaitable[None]], *, log: Any, crashed: str,
                     restarts: Any, **fields: Any) -> None:
    """Run `body` until `stop` is set, again after each crash (`crashed`: the log event, with `fields`)."""
    while not stop.is_set():
        try:
            await body()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(crashed, **fields)
            restarts.inc()
            await asyncio.sleep(RESTART_PAUSE_S)
