"""Group commit on the event loop: callers' items gathered while a flush is in flight, then flushed together.

Intake at one record per request paid, per request, what a batch of requests can pay once: an audit message on
Kafka (and so an indexer poll and transaction for a few records), the waits on Kafka's acknowledgements, a thread
hop for the register writes. `GroupCommit` lets concurrent requests share them without a fixed delay:

- an item that arrives when nothing is being flushed is flushed at once (the flusher task starts on the next turn of
  the loop, so the items submitted in the same turn go with it: no timer, no added latency when idle);
- items that arrive while a flush is in flight wait for it to end, then all go in the next flush (up to
  `max_items`; the rest in the one after);
- `flush(items)` answers each item with its result or its own exception (one item's failure is that caller's
  alone), or raises, and then every caller of that flush gets the error and none a result.

A caller that stops waiting (cancelled) does not stop its flush, as a request that had started sending before did
not stop Kafka from storing what it sent; its answer is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence["R | BaseException"]]]


@dataclass(slots=True)
class _Waiting(Generic[T, R]):
    item: T
    answer: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    """One flusher per event loop; `submit` from that loop only (the queue is not locked: the loop is one thread)."""

    def __init__(self, flush: Flush[T, R], *, max_items: int) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._flush = flush
        self._max_items = max_items
        self._queue: list[_Waiting[T, R]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.flushes = 0  # flushes made, and items flushed: what a test or a bench reads to see the grouping
        self.flushed = 0

    @property
    def waiting(self) -> int:
        """Items submitted and not yet in a flush."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(item, answer))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._drain())
        return await answer

    async def _drain(self) -> None:
        while self._queue:
            group, self._queue = self._queue[:self._max_items], self._queue[self._max_items:]
            self.flushes += 1
            self.flushed += len(group)
            await self._flush_group(group)

    async def _flush_group(self, group: list[_Waiting[T, R]]) -> None:
        try:
            answers = await self._flush([w.item for w in group])
            if len(answers) != len(group):  # a broken flush must not leave a caller answered with another's result
                raise RuntimeError(f"flush answered {len(answers)} of {len(group)} items")
        except BaseException as exc:  # every caller of the flush gets its error, none a result
            for waiting in group:
                _answer(waiting.answer, exc)
            if isinstance(exc, asyncio.CancelledError):  # the loop is stopping: the queued callers with it
                for waiting in self._queue:
                    _answer(waiting.answer, exc)
                self._queue = []
                raise
            return
        for waiting, answer in zip(group, answers, strict=True):
            _answer(waiting.answer, answer)


def _answer(future: asyncio.Future[R], answer: R | BaseException) -> None:
    if future.done():  # its caller stopped waiting
        return
    if isinstance(answer, asyncio.CancelledError):
        future.cancel()
    elif isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)
