"""The process pool for CPU work (feed parsing, extraction), so the event loop never stalls.

Each task runs under a wall-clock limit enforced inside the worker with SIGALRM: a page that sends
trafilatura into a long loop is abandoned without killing the pool. A pool broken by a crashed
worker (segfault, OOM kill) is replaced on the next call.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class TaskTimeout(Exception):
    """A worker task ran past its time limit."""


class PoolClosed(Exception):
    """The pool was shut down while (or before) the task ran."""


def _fail(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(PoolClosed("the worker pool is shut down"))


def _alarm(signum: int, frame: Any) -> None:
    raise TaskTimeout("time limit reached")


def _init_worker() -> None:
    # Workers ignore Ctrl-C: the parent decides when to stop them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _alarm)
    try:  # warm the heavy imports once per worker, not per task
        import feedparser  # noqa: F401
        import trafilatura  # noqa: F401
    except Exception:  # pragma: no cover - import problems surface on first use
        pass


def _run_limited(limit: float, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    if limit > 0:
        signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return fn(*args)
    finally:
        if limit > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)


def default_workers() -> int:
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


class CpuPool:
    """A lazily started ProcessPoolExecutor shared by parse and extract."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None
        self._waiting: set[asyncio.Future[Any]] = set()
        self._closed = False

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker)
        return self._pool

    async def run(self, limit: float, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker; raise TaskTimeout after ``limit`` seconds of work."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            if self._closed:
                raise PoolClosed("the worker pool is shut down")
            fut = loop.run_in_executor(self._executor(), _run_limited, limit, fn, args)
            self._waiting.add(fut)
            try:
                return await fut
            except BrokenProcessPool:
                if self._closed:
                    raise PoolClosed("the worker pool is shut down") from None
                log.error("worker pool broken; restarting it attempt=%d", attempt)
                self._discard()
                if attempt == 2:
                    raise
            finally:
                self._waiting.discard(fut)
        raise AssertionError("unreachable")

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Stop the workers now: a page still being extracted is abandoned, not waited for.

        Shutdown must fit in the 10 s a service manager allows; an extraction can take up to
        ``extraction.timeout``. Whatever was abandoned is redone by the next process.
        """
        self._closed = True
        for fut in list(self._waiting):  # callers get PoolClosed instead of waiting forever
            if not fut.done():
                fut.get_loop().call_soon_threadsafe(_fail, fut)
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        processes = list(getattr(pool, "_processes", {}).values())  # no public API before 3.14
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(timeout=2)
