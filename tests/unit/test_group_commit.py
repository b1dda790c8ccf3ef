"""Group commit (broker/service/group_commit.py), which intake's flushes use: the grouping and the answers.

What intake relies on: nothing is held back when idle; what arrives while a flush is in flight goes, in order, in
the next flush; each caller gets its own item's answer, one item's error is its caller's alone, and a flush that
fails answers every caller of that flush with the error and none with a result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from broker.service.group_commit import GroupCommit


class Recorder:
    """A flush that records its groups and answers each item with its double; `gate` holds a flush in flight."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.groups.append(list(items))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return [i * 2 for i in items]


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_an_item_alone_is_flushed_on_the_next_turns_of_the_loop_not_after_a_timer():
    flush = Recorder()
    commit = GroupCommit(flush, max_items=8)
    answer = asyncio.create_task(commit.submit(21))
    await _turns(3)  # no clock: a timer of any length would leave the flush unmade here
    assert flush.groups == [[21]]
    assert answer.done() and answer.result() == 42


async def test_items_arriving_during_a_flush_go_together_in_the_next_one_in_order():
    flush = Recorder()
    flush.gate = asyncio.Event()
    commit = GroupCommit(flush, max_items=64)
    first = asyncio.create_task(commit.submit(1))
    await flush.entered.wait()
    later = [asyncio.create_task(commit.submit(n)) for n in range(10, 16)]
    await _turns(3)
    assert flush.groups == [[1]]  # the later items wait for the flush in flight
    flush.gate.set()
    assert await first == 2
    assert [await t for t in later] == [n * 2 for n in range(10, 16)]
    assert flush.groups == [[1], list(range(10, 16))]
    assert (commit.flushes, commit.flushed) == (2, 7)


async def test_a_flush_takes_at_most_max_items_and_the_rest_follow_in_order():
    flush = Recorder()
    flush.gate = asyncio.Event()
    commit = GroupCommit(flush, max_items=4)
    first = asyncio.create_task(commit.submit(0))
    await flush.entered.wait()
    later = [asyncio.create_task(commit.submit(n)) for n in range(1, 11)]
    await _turns(1)
    flush.gate.set()
    assert [await first, *[await t for t in later]] == [n * 2 for n in range(11)]
    assert flush.groups == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]


async def test_an_items_own_error_is_its_callers_alone():
    class Refused(Exception):
        pass

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        return [Refused(f"item {i}") if i == 2 else i for i in items]

    commit = GroupCommit(flush, max_items=8)
    answers = await asyncio.gather(*(commit.submit(i) for i in range(4)), return_exceptions=True)
    assert commit.flushes == 1  # the four went together: the error was within the flush, not a flush of its own
    assert answers[0] == 0 and answers[1] == 1 and answers[3] == 3
    assert isinstance(answers[2], Refused) and str(answers[2]) == "item 2"


async def test_a_failed_flush_answers_every_caller_of_it_with_the_error_and_the_next_flush_goes_on():
    gate, entered, calls = asyncio.Event(), asyncio.Event(), []

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        calls.append(list(items))
        if len(calls) == 1:
            entered.set()
            await gate.wait()
            raise ConnectionError("the first flush failed")
        return [*items]

    commit = GroupCommit(flush, max_items=8)
    failing = [asyncio.create_task(commit.submit(i)) for i in range(3)]
    await entered.wait()
    after = [asyncio.create_task(commit.submit(i)) for i in (7, 8)]
    await _turns(1)
    gate.set()
    await asyncio.wait([*failing, *after], timeout=10)  # a guard against a hang, not a measure of speed
    assert all(t.done() for t in [*failing, *after]), "a caller of the failed flush was never answered"
    for t in failing:
        with pytest.raises(ConnectionError, match="first flush failed"):
            await t
    assert [await t for t in after] == [7, 8]
    assert calls == [[0, 1, 2], [7, 8]]


async def test_a_flush_answering_the_wrong_number_of_items_answers_none_of_them():
    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        answers: list[int | BaseException] = [*items]
        return answers[1:]  # a bug: one answer short, every answer would be another item's

    commit = GroupCommit(flush, max_items=8)
    answers = await asyncio.wait_for(  # the timeout guards against a hang (a caller never answered), not speed
        asyncio.gather(*(commit.submit(i) for i in range(3)), return_exceptions=True), 10)
    assert all(isinstance(a, RuntimeError) for a in answers), answers


async def test_a_caller_that_stops_waiting_does_not_stop_its_flush_nor_its_neighbours_answers():
    flush = Recorder()
    flush.gate = asyncio.Event()
    commit = GroupCommit(flush, max_items=8)
    first = asyncio.create_task(commit.submit(1))
    await flush.entered.wait()
    leaving, staying = asyncio.create_task(commit.submit(2)), asyncio.create_task(commit.submit(3))
    await _turns(1)
    leaving.cancel()
    flush.gate.set()
    assert await first == 2 and await staying == 6
    assert leaving.cancelled()
    assert flush.groups == [[1], [2, 3]]  # its item was flushed all the same
