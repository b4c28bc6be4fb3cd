"""GroupCommit: concurrent submits share one write; a failing batch fails only its bad item."""

from __future__ import annotations

import asyncio

import pytest

from monitor.groupcommit import GroupCommit


async def test_concurrent_submits_share_batches_and_get_their_own_results() -> None:
    calls: list[list[int]] = []

    async def write(items: list[int]) -> list[int]:
        calls.append(list(items))
        await asyncio.to_thread(lambda: None)  # a transaction in another thread
        return [i * 10 for i in items]

    gc: GroupCommit[int, int] = GroupCommit("t", write, max_batch=40)
    results = await asyncio.wait_for(asyncio.gather(*(gc.submit(i) for i in range(100))), 5)
    assert results == [i * 10 for i in range(100)]
    assert sorted(i for c in calls for i in c) == list(range(100))  # each written exactly once
    assert len(calls) <= 4 and max(len(c) for c in calls) == 40  # batched, capped


async def test_a_failing_batch_is_retried_one_by_one() -> None:
    async def write(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("bad item 13")
        return items

    gc: GroupCommit[int, int] = GroupCommit("t", write)
    results = await asyncio.gather(*(gc.submit(i) for i in (1, 13, 2)), return_exceptions=True)
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ValueError) and "13" in str(results[1])


async def test_flush_waits_for_writes_in_progress() -> None:
    done: list[int] = []
    writing, commit = asyncio.Event(), asyncio.Event()

    async def write(items: list[int]) -> list[None]:
        writing.set()
        await commit.wait()  # the transaction is under way until the test lets it commit
        done.extend(items)
        return [None] * len(items)

    gc: GroupCommit[int, None] = GroupCommit("t", write)
    task = asyncio.create_task(gc.submit(7))
    await asyncio.wait_for(writing.wait(), 5)
    flush = asyncio.create_task(gc.flush())
    for _ in range(10):  # flush keeps waiting while the write is in progress
        await asyncio.sleep(0)
    assert not flush.done() and done == []
    commit.set()
    await asyncio.wait_for(flush, 5)
    assert done == [7]
    await task


async def test_a_cancelled_caller_does_not_break_the_others() -> None:
    gate, writing = asyncio.Event(), asyncio.Event()

    async def write(items: list[int]) -> list[int]:
        assert items == [1, 2]
        writing.set()
        await gate.wait()
        return items

    gc: GroupCommit[int, int] = GroupCommit("t", write)
    a = asyncio.create_task(gc.submit(1))
    b = asyncio.create_task(gc.submit(2))
    await asyncio.wait_for(writing.wait(), 5)  # both are in the batch being written
    a.cancel()
    gate.set()
    assert await asyncio.wait_for(b, 5) == 2
    with pytest.raises(asyncio.CancelledError):
        await a
