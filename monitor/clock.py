"""Time, injected: every component that waits or stamps takes a :class:`Clock`.

The daemon uses :data:`SYSTEM`. Tests use :class:`FakeClock`, whose time moves only when the
test calls :meth:`FakeClock.advance`: a digest period, a retry backoff or a feed's next poll
then arrives at once and exactly, with no sleeping and no race with the machine's load.

Network timeouts (aiohttp's) stay on the event loop's real clock: they bound real I/O.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines and rates)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""

    def timer(self, seconds: float) -> asyncio.Future[None]:
        """A future done ``seconds`` from now, registered at once (not when first awaited), so
        a clock moved right after the call still wakes it."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def timer(self, seconds: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(max(0.0, seconds), _done, fut)
        fut.add_done_callback(lambda _: handle.cancel())
        return fut


def _done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


SYSTEM: Clock = SystemClock()


async def wait_event(event: asyncio.Event, timeout: float | None, clock: Clock = SYSTEM) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds of ``clock`` time pass; True if set."""
    if event.is_set():
        return True
    if timeout is not None and timeout <= 0:
        await asyncio.sleep(0)
        return event.is_set()
    waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
    sleeper = clock.timer(timeout) if timeout is not None else None
    try:
        await asyncio.wait(
            [waiter] if sleeper is None else [waiter, sleeper],
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        waiter.cancel()
        if sleeper is not None:
            sleeper.cancel()
    return event.is_set()


async def wait_any(
    events: list[asyncio.Event], timeout: float | None, clock: Clock = SYSTEM
) -> None:
    """Wait until any of ``events`` is set or ``timeout`` seconds of ``clock`` time pass."""
    if any(e.is_set() for e in events):
        return
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(e.wait()) for e in events]
    if timeout is not None:
        waiters.append(clock.timer(timeout))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


class FakeClock:
    """A clock for tests: time stands still until :meth:`advance` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self.timer(seconds)

    def timer(self, seconds: float) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if seconds <= 0:
            fut.set_result(None)
            return fut
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._ids), fut))
        return fut

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._elapsed += seconds
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def set(self, when: datetime) -> None:
        """Move time forward to ``when``."""
        self.advance(max(0.0, (when - self.now()).total_seconds()))

    @property
    def sleepers(self) -> int:
        """Tasks waiting on this clock now (a test can wait until the daemon is idle)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())
