"""The CPU pool: hard deadlines (kill and respawn), fair shares per key, crash recovery, close."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.workers import CpuPool, PoolClosed, TaskTimeout, WorkerCrashed


def _stuck_in_c(seconds: float) -> str:
    """Stands in for lxml busy in C: SIGALRM is blocked, so only a kill stops it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "finished"


def _pid() -> int:
    return os.getpid()


def _wait_for_file(path: str, seconds: float) -> str:
    """Busy until ``path`` exists (another task creates it) or ``seconds`` pass."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.path.exists(path):
            return "released"
        os.sched_yield()
    return "gave up"


def _touch(path: str) -> str:
    Path(path).write_text("x")
    return "touched"


def _die() -> None:
    os._exit(3)


async def test_a_task_stuck_where_no_signal_reaches_is_killed_and_the_worker_replaced() -> None:
    pool = CpuPool(1, kill_grace=0.2)
    try:
        first = await pool.run(5, _pid)
        with pytest.raises(TaskTimeout):
            await pool.run(0.2, _stuck_in_c, 600)
        assert pool.kills == 1
        second = await pool.run(5, _pid)
        assert second != first  # a fresh process serves the next task
    finally:
        pool.close()


async def test_one_key_never_takes_the_whole_pool(tmp_path: Path) -> None:
    """Two tasks of a hostile host and one of a healthy feed on two workers: the healthy task
    runs while the hostile host's second task waits for its share. The hostile tasks can only
    finish once the healthy one has run (it creates the file they wait for); if the hostile host
    held both workers, they would give up instead."""
    gate = str(tmp_path / "gate")
    pool = CpuPool(2, per_key=1)
    try:
        evil = [
            asyncio.create_task(pool.run(0, _wait_for_file, gate, 60, key="evil.example"))
            for _ in range(2)
        ]
        await asyncio.sleep(0)
        good = asyncio.create_task(pool.run(0, _touch, gate, key="good.example"))
        assert await asyncio.wait_for(good, 60) == "touched"
        assert await asyncio.wait_for(asyncio.gather(*evil), 60) == ["released", "released"]
    finally:
        pool.close()


async def test_one_feed_linking_to_many_hosts_never_takes_the_whole_pool(tmp_path: Path) -> None:
    """A task counts against every key it carries: one feed's pages on two hosts share the
    feed's one worker, so a healthy feed's page on a third host still gets the other."""
    gate = str(tmp_path / "gate")
    pool = CpuPool(2, per_key=1)
    try:
        evil = [
            asyncio.create_task(
                pool.run(0, _wait_for_file, gate, 60, key=(f"host:trap{i}.example", "feed:evil"))
            )
            for i in range(2)
        ]
        await asyncio.sleep(0)
        good = asyncio.create_task(
            pool.run(0, _touch, gate, key=("host:good.example", "feed:good", None))
        )
        assert await asyncio.wait_for(good, 60) == "touched"
        assert await asyncio.wait_for(asyncio.gather(*evil), 60) == ["released", "released"]
        assert pool._by_key == {}  # every share handed back
    finally:
        pool.close()


async def test_a_crashed_worker_fails_its_task_and_is_replaced() -> None:
    pool = CpuPool(1)
    try:
        first = await pool.run(5, _pid)
        with pytest.raises(WorkerCrashed):
            await pool.run(5, _die)
        assert pool.crashes == 1
        assert await pool.run(5, _pid) != first
    finally:
        pool.close()


async def test_close_stops_busy_workers_at_once() -> None:
    pool = CpuPool(1)
    await pool.run(5, _pid)  # a warm worker: the next task takes it without waiting
    task = asyncio.create_task(pool.run(0, _stuck_in_c, 600))
    waiting = asyncio.create_task(pool.run(0, _pid))
    await asyncio.sleep(0)
    procs = [w.proc for w in pool._busy]
    assert len(procs) == 1
    pool.close()
    with pytest.raises(PoolClosed):
        await asyncio.wait_for(task, 10)
    with pytest.raises(PoolClosed):
        await asyncio.wait_for(waiting, 10)
    assert all(not p.is_alive() for p in procs)
    with pytest.raises(PoolClosed):
        await pool.run(1, _pid)


async def test_workers_are_replaced_after_max_tasks() -> None:
    pool = CpuPool(1, max_tasks=2)
    try:
        pids = [await pool.run(5, _pid) for _ in range(5)]
        assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    finally:
        pool.close()


async def test_a_caller_cancelled_while_waiting_does_not_leak_a_worker(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    pool = CpuPool(1)
    try:
        assert await pool.run(5, _pid)
        blocker = asyncio.create_task(pool.run(0, _wait_for_file, str(gate), 60))
        queued = asyncio.create_task(pool.run(5, _pid))
        await asyncio.sleep(0)
        queued.cancel()
        await asyncio.gather(queued, return_exceptions=True)
        gate.write_text("go")
        assert await asyncio.wait_for(blocker, 60) == "released"
        assert isinstance(await asyncio.wait_for(pool.run(5, _pid), 30), int)
        assert pool.alive == 1
    finally:
        pool.close()


def _echo(data: bytes, extra: int) -> bytes:
    return data[::-1] + b"x" * extra


def _unpicklable() -> object:
    return lambda: None


def _rebuilt_here(pad: bytes) -> tuple[str, int]:
    """Runs where the parent unpickles a reply: says which thread that is."""
    return threading.current_thread().name, len(pad)


def _explode(pad: bytes) -> None:
    raise ValueError(f"cannot rebuild this ({len(pad)} bytes)")


class _Reply:
    """A worker's result whose unpickling in the parent runs ``rebuild``."""

    def __init__(self, rebuild: Callable[[bytes], Any], size: int) -> None:
        self.rebuild, self.pad = rebuild, b"p" * size

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.rebuild, (self.pad,))


def _reply(rebuild: Callable[[bytes], Any], size: int) -> _Reply:
    return _Reply(rebuild, size)


async def test_big_messages_cross_the_pipe_whole_both_ways() -> None:
    """Bodies far past the pipe's buffer go out and come back in pieces, driven by the loop."""
    pool = CpuPool(2)
    try:
        big = os.urandom(6 * 2**20)
        small = b"tiny"
        results = await asyncio.gather(
            pool.run(30, _echo, big, 3 * 2**20),
            pool.run(30, _echo, small, 0),
            pool.run(30, _echo, big[:70_000], 5),
        )
        assert results[0] == big[::-1] + b"x" * 3 * 2**20
        assert results[1] == b"ynit"
        assert results[2] == big[:70_000][::-1] + b"xxxxx"
    finally:
        pool.close()


async def test_an_unpicklable_result_fails_its_task_and_keeps_the_worker() -> None:
    pool = CpuPool(1)
    try:
        first = await pool.run(5, _pid)
        with pytest.raises(RuntimeError, match="pickle"):
            await pool.run(5, _unpicklable)
        assert await pool.run(5, _pid) == first
    finally:
        pool.close()


async def test_a_worker_that_died_while_idle_fails_the_next_task_as_a_crash() -> None:
    """The OOM killer picks an idle worker: the next task (a big body, so the write itself
    meets the closed pipe) is a crash, and the one after gets a fresh worker."""
    pool = CpuPool(1)
    try:
        first = await pool.run(5, _pid)
        (idle,) = pool._idle
        idle.proc.kill()
        idle.proc.join(5)
        with pytest.raises(WorkerCrashed):
            await pool.run(5, _echo, b"y" * 4 * 2**20, 0)
        assert pool.crashes == 1
        assert await pool.run(5, _pid) != first
    finally:
        pool.close()


async def test_a_caller_cancelled_mid_task_stops_its_worker_and_the_pool_goes_on(
    tmp_path: Path,
) -> None:
    pool = CpuPool(1)
    try:
        first = await pool.run(5, _pid)
        busy = asyncio.create_task(pool.run(0, _wait_for_file, str(tmp_path / "never"), 600))
        for _ in range(100):  # a few loop turns: the warm worker is handed over at once
            if pool._busy:
                break
            await asyncio.sleep(0)
        (worker,) = pool._busy
        fd = worker.pipe.fd
        await asyncio.sleep(0)
        busy.cancel()
        await asyncio.gather(busy, return_exceptions=True)
        assert busy.cancelled()
        worker.proc.join(10)
        assert not worker.proc.is_alive()  # a worker mid-task cannot be reused: it is killed
        selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
        assert fd not in selector.get_map()  # and the loop no longer watches its pipe
        assert await pool.run(5, _pid) != first
        assert pool.alive == 1
    finally:
        pool.close()


async def test_a_big_reply_is_unpickled_off_the_event_loop() -> None:
    """Unpickling a 50,000-URL sitemap's entries takes ~170 ms: a reply past 512 KB is read
    in a thread, a small one (a feed's, a page's) on the loop without a hand-off."""
    pool = CpuPool(1)
    try:
        small = await pool.run(5, _reply, _rebuilt_here, 1000)
        big = await pool.run(5, _reply, _rebuilt_here, 2 * 2**20)
        assert small == (threading.current_thread().name, 1000)
        assert big[1] == 2 * 2**20 and big[0] != threading.current_thread().name
    finally:
        pool.close()


@pytest.mark.parametrize("size", [10, 2 * 2**20])
async def test_a_reply_the_parent_cannot_rebuild_fails_its_task_only(size: int) -> None:
    pool = CpuPool(1)
    try:
        first = await pool.run(5, _pid)
        with pytest.raises(RuntimeError, match=r"unreadable worker reply: cannot rebuild this"):
            await pool.run(5, _reply, _explode, size)
        assert await pool.run(5, _pid) == first  # the worker itself was fine
    finally:
        pool.close()
