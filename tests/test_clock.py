"""FakeClock: time moves only when the test moves it, and exactly to the next wake-up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from monitor.clock import FakeClock, wait_event


async def test_a_sleep_counts_from_when_it_is_called() -> None:
    """``ensure_future(clock.sleep(x))`` (as wait_event does) runs a step later; an advance in
    between must still wake it, or a daemon could sleep through the time the test gave it."""
    clock = FakeClock()
    waiter = asyncio.ensure_future(clock.sleep(5))
    clock.advance(5)
    await asyncio.wait_for(waiter, 10)
    assert clock.monotonic() == 5


async def test_advance_to_next_moves_exactly_to_each_wake_up_in_turn() -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = FakeClock(start)
    woke: list[tuple[str, datetime]] = []

    async def sleeper(name: str, *waits: float) -> None:
        for w in waits:
            await clock.sleep(w)
            woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper("a", 3, 4)), asyncio.create_task(sleeper("b", 5))]
    steps = []
    while True:
        await clock.wait_idle(tasks)
        if all(t.done() for t in tasks):
            break
        steps.append(clock.advance_to_next())
    await asyncio.gather(*tasks)
    assert steps == [3, 2, 2]
    assert woke == [
        ("a", start + timedelta(seconds=3)),
        ("b", start + timedelta(seconds=5)),
        ("a", start + timedelta(seconds=7)),
    ]
    assert clock.next_wake is None
    with pytest.raises(RuntimeError, match="no task is sleeping"):
        clock.advance_to_next()


async def test_a_task_woken_by_an_event_is_not_taken_for_asleep() -> None:
    """Between the event and the task dropping its sleeper lie a few loop turns; wait_idle must
    not report the task idle then, or a test would move time under a busy task."""
    clock = FakeClock()
    poke = asyncio.Event()
    progress: list[str] = []

    async def worker() -> None:
        await wait_event(poke, 30, clock)  # woken by the event, not by time
        progress.append("woken")
        await clock.sleep(1)
        progress.append("slept")

    task = asyncio.create_task(worker())
    await clock.wait_idle([task])
    assert clock.next_wake == 30
    poke.set()
    await clock.wait_idle([task])
    assert progress == ["woken"] and clock.next_wake == 1  # asleep again, on its own sleep
    clock.advance_to_next()
    await asyncio.wait_for(task, 10)
    assert progress == ["woken", "slept"] and clock.monotonic() == 1


async def test_waits_are_bounded_in_real_time() -> None:
    clock = FakeClock()
    with pytest.raises(TimeoutError, match="2 sleepers; 0 asleep"):
        await clock.wait_sleepers(2, timeout=0.05)
    busy = asyncio.create_task(asyncio.Event().wait())  # never sleeps on the clock
    try:
        with pytest.raises(TimeoutError, match="the tasks to sleep"):
            await clock.wait_idle([busy], timeout=0.05)
    finally:
        busy.cancel()
