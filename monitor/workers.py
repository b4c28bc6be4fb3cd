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

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker)
        return self._pool

    async def run(self, limit: float, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker; raise TaskTimeout after ``limit`` seconds of work."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            try:
                return await loop.run_in_executor(self._executor(), _run_limited, limit, fn, args)
            except BrokenProcessPool:
                log.error("worker pool broken; restarting it attempt=%d", attempt)
                self._discard()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
