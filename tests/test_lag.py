"""The event-loop lag probe sees a blocked loop, and keeps only its newest samples.

Lag is real time by nature, so the loop is really blocked (by CPU work, as a parse run on the
loop by mistake would block it); only lower bounds that a busy machine cannot break are asserted.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import Any

from monitor.lag import LagProbe


def block_the_loop(seconds: float) -> None:
    """Hold the event loop with CPU work for at least ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def next_sample(probe: LagProbe, limit: float = 10.0) -> None:
    """Wait (``limit`` real seconds at most) until the probe records another sample."""
    n = len(probe.samples)
    async with asyncio.timeout(limit):
        while len(probe.samples) == n:  # noqa: ASYNC110 - the probe offers no event to wait on
            await asyncio.sleep(0)


async def test_probe_measures_a_blocked_loop_and_stays_bounded() -> None:
    probe = LagProbe(interval=0.01, warn_after=10, keep=50)
    probe.start()
    try:
        await next_sample(probe)  # the probe is running: its next sleep is under way
        block_the_loop(0.15)
        await next_sample(probe)  # the sleep that spanned the block woke up late
    finally:
        await probe.stop()
    # That sleep lasted the whole block: at least 0.15 s, less the 0.01 s it meant to sleep.
    assert probe.max >= 0.14, list(probe.samples)
    probe.samples.clear()
    probe.samples.extend([0.0] * 48 + [0.5, 1.0])
    assert probe.percentile(50) == 0.0 and probe.percentile(99) == 1.0 and probe.max == 1.0
    for _ in range(200):
        probe.samples.append(0.0)
    assert len(probe.samples) == 50 and probe.max == 0.0  # old samples age out


class _Cycle:
    """Garbage only the cyclic collector can free."""

    def __init__(self) -> None:
        self.me = self


async def test_a_daemon_freezes_its_start_up_heap_and_a_reload_thaws_it(tmp_path: Path) -> None:
    """`feedwatch run` freezes what start-up built, so a full collection (a stall of the loop)
    walks only what polls allocated since; a reload thaws it first, so what the reload
    replaced can be collected."""
    import gc
    import weakref

    from monitor.daemon import Daemon
    from monitor.settings import load_config_text

    def config(keyword: str) -> Any:
        text = f"""
        storage: {{url: "{tmp_path / "fw.db"}"}}
        feeds: [{{url: "http://127.0.0.1:9/feed.xml"}}]
        channels: {{terminal: {{type: console}}}}
        watchlists: [{{name: w, keywords: [{keyword}], channels: [terminal]}}]
        """
        return load_config_text(textwrap.dedent(text), base_dir=tmp_path, env={})

    held = [_Cycle()]
    ref = weakref.ref(held[0])
    try:
        async with Daemon(config("flood"), freeze_heap=True) as d:
            assert gc.get_freeze_count() > 0
            held.clear()  # unreachable now, but frozen: the collector does not look at it
            gc.collect()
            assert ref() is not None
            assert await d.reload(config("wildfire")) == ["watchlists"]
            assert ref() is None  # the reload thawed and collected
    finally:
        gc.unfreeze()
