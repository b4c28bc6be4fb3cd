"""The event-loop lag probe sees a blocked loop, and keeps only its newest samples."""

from __future__ import annotations

import asyncio
import time

from monitor.lag import LagProbe


async def test_probe_measures_a_blocked_loop_and_stays_bounded() -> None:
    probe = LagProbe(interval=0.01, warn_after=10, keep=50)
    probe.start()
    await asyncio.sleep(0.2)
    time.sleep(0.15)  # noqa: ASYNC251 - blocking the loop is the point
    await asyncio.sleep(0.05)
    await probe.stop()
    assert probe.max >= 0.1
    assert probe.percentile(50) < 0.1
    for _ in range(200):
        probe.samples.append(0.0)
    assert len(probe.samples) == 50 and probe.max == 0.0  # old samples age out
