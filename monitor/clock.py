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
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines and rates)."""

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Wait ``seconds`` of this clock's time."""
        ...

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
SETTLE_TURNS = 8  # loop turns a task woken by an event may need to drop its sleeper (3 seen)


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
    """A clock for tests: time stands still until :meth:`advance` moves it.

    A test moves time from one wake-up to the next: :meth:`wait_sleepers` or :meth:`wait_idle`
    (the tasks under test are all asleep on this clock), then :meth:`advance_to_next`. Every
    wait is bounded in real time, so a task that never goes to sleep fails the test.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._elapsed = 0.0
        # (wake-up time, sequence, future, the task that went to sleep)
        self._sleepers: list[tuple[float, int, asyncio.Future[None], asyncio.Task[Any] | None]] = []
        self._ids = itertools.count()
        self._changed = asyncio.Event()  # a task went to sleep or one being watched ended

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def sleep(self, seconds: float) -> asyncio.Future[None]:
        """A future that resolves once ``seconds`` of fake time have passed.

        The wake-up time is fixed when ``sleep`` is called, not when the awaiting task next runs:
        ``asyncio.ensure_future(clock.sleep(x))`` (as ``wait_event`` does) cannot miss an
        :meth:`advance` made before its first step, so no wake-up is ever lost to scheduling.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if seconds <= 0:
            loop.call_soon(_resolve, fut)
            return fut
        owner = asyncio.current_task()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._ids), fut, owner))
        self._changed.set()
        return fut

    def timer(self, seconds: float) -> asyncio.Future[None]:
        """The same registered future as :meth:`sleep`."""
        return self.sleep(seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._elapsed += seconds
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _resolve(heapq.heappop(self._sleepers)[2])

    def set(self, when: datetime) -> None:
        """Move time forward to ``when``."""
        self.advance(max(0.0, (when - self.now()).total_seconds()))

    def _pending(self) -> list[tuple[float, int, asyncio.Future[None], asyncio.Task[Any] | None]]:
        return [s for s in self._sleepers if not s[2].done()]

    @property
    def sleepers(self) -> int:
        """Tasks waiting on this clock now (a test can wait until the daemon is idle)."""
        return len(self._pending())

    @property
    def next_wake(self) -> float | None:
        """Seconds of fake time until the earliest sleeper wakes; None when nothing sleeps."""
        pending = self._pending()
        return min(s[0] for s in pending) - self._elapsed if pending else None

    def advance_to_next(self) -> float:
        """Move time exactly to the earliest sleeper's wake-up (waking it); return the seconds
        moved. Raises when nothing sleeps: time would move for nobody."""
        step = self.next_wake
        if step is None:
            raise RuntimeError("advance_to_next: no task is sleeping on this clock")
        self.advance(step)
        return step

    def asleep(self, task: asyncio.Task[Any]) -> bool:
        """Whether ``task`` is waiting on this clock (directly or through wait_event/wait_any)."""
        return any(owner is task for *_, owner in self._pending())

    async def wait_sleepers(self, n: int = 1, timeout: float = 10.0) -> None:
        """Wait until at least ``n`` tasks sleep on this clock (``timeout``: real seconds)."""
        await self._wait(lambda: self.sleepers >= n, timeout, f"{n} sleepers")

    async def wait_idle(self, tasks: Iterable[asyncio.Task[Any]], timeout: float = 10.0) -> None:
        """Wait until each of ``tasks`` has ended or sleeps on this clock: then only moving time
        can make them go on (``timeout``: real seconds)."""
        watched = list(tasks)

        def ended(_: object) -> None:
            self._changed.set()

        def idle() -> bool:
            return all(t.done() or self.asleep(t) for t in watched)

        for task in watched:
            task.add_done_callback(ended)
        try:
            await self._wait(idle, timeout, "the tasks to sleep")
        finally:
            for task in watched:
                task.remove_done_callback(ended)

    async def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._changed.clear()  # before looking: a change while settling is kept
                    if await self._settled(ready):
                        return
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"FakeClock: waited {timeout:g}s (real) for {what}; {self.sleepers} asleep"
            ) from None

    @staticmethod
    async def _settled(ready: Callable[[], bool]) -> bool:
        """``ready()``, and still so after the loop has run what was already scheduled.

        A task woken by an event (not by time) still holds its sleeper until it runs, a few loop
        turns later; it must not pass for asleep, or time would move under a busy task.
        """
        for _ in range(SETTLE_TURNS):
            if not ready():
                return False
            await asyncio.sleep(0)
        return ready()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
