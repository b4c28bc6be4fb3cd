"""Event-loop lag probe: how late a short sleep wakes up is how long the loop was blocked."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from monitor.logs import get_logger

log = get_logger(__name__)


class LagProbe:
    def __init__(self, interval: float = 0.1, warn_after: float = 0.1, keep: int = 100_000) -> None:
        self.interval = interval
        self.warn_after = warn_after
        # The newest samples only (100,000 at 0.1 s: the last ~3 hours), so a daemon that runs
        # for months reports its recent lag in a bounded amount of memory.
        self.samples: deque[float] = deque(maxlen=keep)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lag-probe")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.interval)
            lag = time.perf_counter() - t0 - self.interval
            self.samples.append(lag)
            if lag > self.warn_after:
                log.warning("event loop lag", seconds=round(lag, 3))

    def percentile(self, p: float) -> float:
        if not self.samples:
            return 0.0
        data = sorted(self.samples)
        return data[min(len(data) - 1, int(len(data) * p / 100))]

    @property
    def max(self) -> float:
        return max(self.samples, default=0.0)
