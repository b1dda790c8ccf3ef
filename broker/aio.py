"""Running a coroutine on the fastest event loop available: uvloop where installed (Linux, macOS), else asyncio's.

uvloop cuts the event loop's own share of the CPU (aiokafka's many small callbacks, HTTP handling); uvicorn picks
it by itself for the service, and the share workers and the benchmark use it through `run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # e.g. Windows, where uvloop does not build
        return asyncio.run(main)
    return uvloop.run(main)
