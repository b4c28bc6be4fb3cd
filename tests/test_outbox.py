"""The delivery workers against a real SQLite outbox and real loopback receivers, on a fake clock.

Every test stores alerts the way the pipeline does (``add_articles``: article, alert and outbox
rows in one transaction), runs the real ``ChannelWorker`` / ``Outbox``, and checks both what the
receiver saw and what the outbox rows say afterwards.

Time is a ``FakeClock``: it moves only once every worker is asleep on it (nothing is left to do
before time passes), and then exactly to the next wake-up. So a retry 0.2 s after a failure is
seen 0.2 s later in fake time, whatever the machine's load, and 24 hours of retries take as long
as their requests. The network and the database stay real.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.clock import FakeClock
from monitor.deliver.base import make_sender
from monitor.deliver.outbox import ChannelWorker, Outbox
from monitor.deliver.retry import RetryPolicy
from monitor.settings import WebhookChannel
from storage import open_storage
from storage.base import Delivery, FeedSpec, NewAlert, NewArticle, Storage
from tests.receivers import Reply, WebhookReceiver, sample_alert

# Under a second the backoff's jitter has no room (its floor is min(1 s, ceiling)): with this
# policy a row is retried exactly 0.2, 0.4, 0.8, then 1.0 s after each failure.
FAST = RetryPolicy(first_retry=0.2, max_backoff=1.0, retry_for=3600)
REAL_LIMIT = 30.0  # real seconds a test waits for its workers: a hang fails, it does not block


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    st = open_storage(str(tmp_path / "outbox.db"))
    await st.open()
    try:
        yield st
    finally:
        await st.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def seed(
    storage: Storage,
    n: int,
    channels: list[str],
    *,
    now: datetime,
    watchlist: str = "wildfire-evacuations",
    not_before: datetime | None = None,
    start: int = 0,
) -> list[str]:
    """Store ``n`` articles fetched ``now``, with one alert each, queued for ``channels``;
    return the alert ids."""
    states = await storage.sync_feeds([FeedSpec(key="https://feed.example.org/rss")])
    feed_id = states["https://feed.example.org/rss"].id
    ids: list[str] = []
    articles: list[NewArticle] = []
    for i in range(start, start + n):
        alert_id = f"msg_{watchlist[:4]}{i:028x}"
        ids.append(alert_id)
        url = f"https://news.example.org/{watchlist}/{i}"
        articles.append(
            NewArticle(
                feed_id=feed_id,
                guid=f"{watchlist}-{i}",
                url=url,
                canonical_url=url,
                title=f"Story {i}",
                fetched_at=now,
                alerts=[
                    NewAlert(
                        id=alert_id,
                        watchlist=watchlist,
                        payload=sample_alert(id=alert_id, watchlist=watchlist, title=f"Story {i}"),
                        channels=channels,
                        not_before={c: not_before for c in channels} if not_before else {},
                    )
                ],
            )
        )
    await storage.add_articles(articles)
    return ids


def hook_worker(
    name: str,
    url: str,
    storage: Storage,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    policy: RetryPolicy = FAST,
    *,
    timeout: str = "3s",
    **kw: Any,
) -> ChannelWorker:
    ch = WebhookChannel.model_validate({"type": "webhook", "url": url, "timeout": timeout})
    sender = make_sender(name, ch, session, allow_private_networks=True)
    return ChannelWorker(name, sender, storage, policy, timeout=ch.timeout, clock=clock, **kw)


async def rows(storage: Storage, channel: str) -> dict[str, Delivery]:
    out: dict[str, Delivery] = {}
    for alert in await storage.list_alerts(limit=100_000):
        for d in alert.deliveries:
            if d.channel == channel:
                out[alert.id] = d
    return out


def all_in(
    storage: Storage, channel: str, ids: list[str], state: str
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        r = await rows(storage, channel)
        return all(r[i].state == state for i in ids)

    return check


async def run_clock(
    clock: FakeClock,
    tasks: Iterable[asyncio.Task[Any]],
    done: Callable[[], Awaitable[bool]],
    jump_to: Callable[[], Awaitable[datetime]] | None = None,
) -> None:
    """Until ``done()``: wait until every task is asleep on the fake clock (all they could do
    without time passing is done), look, and if not done move time to the next wake-up, or
    straight to ``jump_to()`` (past the idle polls of a worker waiting for that time)."""
    tasks = list(tasks)
    async with asyncio.timeout(REAL_LIMIT):
        while True:
            await clock.wait_idle(tasks, timeout=REAL_LIMIT)
            if await done():
                return
            if jump_to is None:
                clock.advance_to_next()
            else:
                clock.set(await jump_to())


async def run_until(outbox: Outbox, clock: FakeClock, done: Callable[[], Awaitable[bool]]) -> None:
    """Run the workers, moving fake time from wake-up to wake-up, until ``done()``."""
    stop = asyncio.Event()
    outbox.start(stop)
    try:
        await run_clock(clock, outbox._tasks, done)
    finally:
        stop.set()
        await stop_workers(outbox)


async def stop_workers(outbox: Outbox) -> None:
    """Join the stopped workers (a worker that does not stop fails the test after REAL_LIMIT)."""
    async with asyncio.timeout(REAL_LIMIT):
        await outbox.join(timeout=REAL_LIMIT)


async def drain(outbox: Outbox, clock: FakeClock, seconds: float) -> int:
    """``Outbox.drain`` with its deadline ``seconds`` of fake time away; whenever every worker
    still running is asleep, time moves to the next wake-up."""
    outbox.start(asyncio.Event())  # as `run --once` does: drain ends the workers started here
    workers = list(outbox._tasks)
    run = asyncio.ensure_future(outbox.drain(clock.monotonic() + seconds))
    async with asyncio.timeout(REAL_LIMIT):
        while True:
            await clock.wait_idle(workers, timeout=REAL_LIMIT)
            if all(w.done() for w in workers):
                return await run
            clock.advance_to_next()


def offsets(requests: Iterable[Any], start: datetime) -> list[float]:
    """Arrival times in fake seconds after ``start`` (receivers stamped with the fake clock)."""
    return [r.at - start.timestamp() for r in requests]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingReceiver(WebhookReceiver):
    """Also records how many requests were open at once and how each was answered."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.open = 0
        self.peak = 0
        self.answered: list[tuple[str, int]] = []  # (webhook-id, status)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            resp = await super()._handle(request)
        finally:
            self.open -= 1
        self.answered.append((request.headers.get("webhook-id", ""), resp.status))
        return resp


# --------------------------------------------------------------------------- retries


async def test_503_503_200_is_delivered_once_with_one_webhook_id(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    t0 = clock.now()
    [alert_id] = await seed(storage, 1, ["hook"], now=t0)
    async with CountingReceiver(script=[503, Reply(503, "busy"), 200], clock=clock) as rx:
        worker = hook_worker("hook", rx.url, storage, session, clock)
        outbox = Outbox({"hook": worker}, storage, clock=clock)
        await run_until(outbox, clock, all_in(storage, "hook", [alert_id], "delivered"))
        # A later pass proves nothing is sent again after the 2xx.
        assert await worker.process_due() == 0
        assert await storage.requeue(alert_id=alert_id) == 0
    assert [r.headers["webhook-id"] for r in rx.requests] == [alert_id] * 3
    assert [s for _, s in rx.answered] == [503, 503, 200]
    # Backoff, exactly: the first retry 0.2 s after the first failure, the next 0.4 s later.
    assert offsets(rx.requests, t0) == pytest.approx([0.0, 0.2, 0.6], abs=1e-6)
    row = (await rows(storage, "hook"))[alert_id]
    assert (row.attempts, row.last_status, row.last_error) == (3, 200, None)
    assert row.delivered_at == t0 + timedelta(seconds=0.6)
    assert worker.retried == 2 and worker.sent == 1


async def test_429_retry_after_is_honoured_exactly(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    t0 = clock.now()
    [alert_id] = await seed(storage, 1, ["hook"], now=t0)
    script = [Reply(429, headers={"Retry-After": "120"}), 200]
    async with WebhookReceiver(script=script, clock=clock) as rx:
        policy = RetryPolicy()  # alone it would retry within 1-5 s
        worker = hook_worker("hook", rx.url, storage, session, clock, policy)
        outbox = Outbox({"hook": worker}, storage, clock=clock)
        await run_until(outbox, clock, all_in(storage, "hook", [alert_id], "delivered"))
    assert offsets(rx.requests, t0) == pytest.approx([0.0, 120.0], abs=1e-6)


async def test_410_fails_at_once_and_is_kept_visible(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    [alert_id] = await seed(storage, 1, ["hook"], now=clock.now())
    async with WebhookReceiver(script=[Reply(410, "gone for good")]) as rx:
        worker = hook_worker("hook", rx.url, storage, session, clock)
        outbox = Outbox({"hook": worker}, storage, clock=clock)
        assert await drain(outbox, clock, 2) == 0
        assert await worker.process_due() == 0
    assert len(rx.requests) == 1
    assert clock.monotonic() == 0  # nothing waited for a retry
    row = (await rows(storage, "hook"))[alert_id]
    assert row.state == "failed" and row.last_status == 410
    assert (
        row.last_error is not None and "410" in row.last_error and "gone for good" in row.last_error
    )
    failed = await storage.list_alerts(failed_only=True)
    assert [a.id for a in failed] == [alert_id]


async def test_retries_for_24_hours_with_growing_backoff_then_gives_up(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The contract's schedule with the default policy: first retry within 5 s, the wait
    roughly doubling up to an hour, for at least 24 hours; then failed, kept and visible."""
    t0 = clock.now()
    [alert_id] = await seed(storage, 1, ["hook"], now=t0)
    policy = RetryPolicy()
    async with WebhookReceiver(default=503, clock=clock) as rx:
        worker = hook_worker("hook", rx.url, storage, session, clock, policy)
        stop = asyncio.Event()
        outbox = Outbox({"hook": worker}, storage, clock=clock)
        outbox.start(stop)

        async def next_attempt() -> datetime:
            return (await rows(storage, "hook"))[alert_id].next_attempt

        try:  # from one retry to the next, past the worker's idle polls (every 30 s) between
            await run_clock(
                clock, outbox._tasks, all_in(storage, "hook", [alert_id], "failed"), next_attempt
            )
        finally:
            stop.set()
            await stop_workers(outbox)
    at = offsets(rx.requests, t0)
    day = policy.retry_for
    assert day == 86400
    # Gave up at the first failure 24 h or more after the first attempt, not one before.
    assert at[-1] >= day > at[-2], at[-3:]
    gaps = [b - a for a, b in itertools.pairwise(at)]
    for n, gap in enumerate(gaps, start=1):
        ceiling = policy.ceiling(n)  # 5, 10, 20, ... then 3600
        assert min(1.0, ceiling) - 1e-6 <= gap <= ceiling + 1e-6, (n, gap)
    assert gaps[0] <= 5.0 and max(gaps) <= 3600.0 + 1e-6
    row = (await rows(storage, "hook"))[alert_id]
    assert row.attempts == len(rx.requests)
    assert row.last_error is not None
    assert row.last_error.startswith(f"gave up after {len(rx.requests)} attempts over 24h")
    assert "HTTP 503" in row.last_error and row.last_status == 503


# --------------------------------------------------------------------------- isolation, limits


async def test_refused_and_hanging_channels_do_not_delay_a_healthy_one(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    ids = await seed(storage, 20, ["good", "refused", "hanging"], now=clock.now())
    never = asyncio.Event()  # the hanging receiver answers only when the test ends
    async with (
        WebhookReceiver() as good,
        WebhookReceiver(default=Reply(200, hold=never)) as hanging,
    ):
        refused_url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
        outbox = Outbox(
            {
                "good": hook_worker("good", good.url, storage, session, clock),
                "refused": hook_worker("refused", refused_url, storage, session, clock),
                "hanging": hook_worker(
                    "hanging", hanging.url, storage, session, clock, timeout="60s"
                ),
            },
            storage,
            clock=clock,
        )
        stop = asyncio.Event()
        outbox.start(stop)
        try:
            task = dict(zip(outbox.workers, outbox._tasks, strict=True))
            await hanging.wait_for(4, timeout=REAL_LIMIT)  # its four send slots are stuck
            await clock.wait_idle([task["good"], task["refused"]], timeout=REAL_LIMIT)
            # All 20 delivered on the healthy channel while the hanging one's first sends are
            # still unanswered, and without any time passing for the refused one's retries.
            r = await rows(storage, "good")
            assert all(r[i].state == "delivered" for i in ids) and len(good.requests) == 20
            assert len(hanging.requests) == 4 and not clock.asleep(task["hanging"])
            assert clock.monotonic() == 0
            refused = await rows(storage, "refused")
            assert all(refused[i].state == "pending" for i in ids)
            assert all("cannot connect" in (refused[i].last_error or "") for i in ids)
        finally:
            never.set()
            stop.set()
            await stop_workers(outbox)


async def test_concurrency_limit_holds_and_at_most_one_round_is_claimed_ahead(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    ids = await seed(storage, 12, ["hook"], now=clock.now())
    answer = asyncio.Event()
    async with CountingReceiver(default=Reply(200, hold=answer)) as rx:
        worker = hook_worker("hook", rx.url, storage, session, clock, concurrency=3)
        outbox = Outbox({"hook": worker}, storage, clock=clock)
        stop = asyncio.Event()
        outbox.start(stop)
        try:
            await rx.wait_for(3, timeout=REAL_LIMIT)  # three sends held open by the receiver
            r = await rows(storage, "hook")
            claimed = [d for d in r.values() if d.state == "in_flight"]
            # 3 being sent plus one round (3) claimed ahead; the rest is not touched.
            assert len(claimed) == 6, claimed
            assert sum(1 for d in r.values() if d.state == "pending") == 6
            # Every lease covers a wait behind one send plus its own send (3 s timeout each).
            assert worker.lease_ahead() >= 2 * worker.send_limit()
            lease = clock.now() + timedelta(seconds=worker.lease_ahead())
            assert all(d.lease_until == lease for d in claimed), claimed
            answer.set()
            await run_clock(clock, outbox._tasks, all_in(storage, "hook", ids, "delivered"))
        finally:
            stop.set()
            await stop_workers(outbox)
    assert rx.peak == 3  # the channel's concurrency: never more requests open at once
    assert len(rx.requests) == 12
    assert all(d.attempts == 1 for d in (await rows(storage, "hook")).values())


async def test_rows_claimed_ahead_are_handed_back_unsent_at_the_deadline(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    ids = await seed(storage, 10, ["hook"], now=clock.now())
    answer = asyncio.Event()
    async with CountingReceiver(default=Reply(200, hold=answer)) as rx:
        worker = hook_worker("hook", rx.url, storage, session, clock, concurrency=2)
        outbox = Outbox({"hook": worker}, storage, clock=clock)
        run = asyncio.ensure_future(outbox.drain(clock.monotonic() + 0.3))
        await rx.wait_for(2, timeout=REAL_LIMIT)  # two sends under way, two rows claimed ahead
        clock.advance(0.5)  # the deadline passes while they wait for their answers
        answer.set()
        left = await asyncio.wait_for(run, REAL_LIMIT)
    sent = {r.headers["webhook-id"] for r in rx.requests}
    assert len(sent) == 2 and len(rx.requests) == 2  # no send starts after the deadline
    after = await rows(storage, "hook")
    assert left == 8
    for i in ids:
        if i in sent:
            assert after[i].state == "delivered" and after[i].attempts == 1
        else:  # claimed ahead (or never claimed): pending, due now, no attempt counted
            assert after[i].state == "pending", after[i]
            assert after[i].attempts == 0 and after[i].lease_until is None
            assert after[i].first_attempt is None
    # A later run in the same process takes them at once (no lease to wait out).
    async with WebhookReceiver() as rx2:
        worker2 = hook_worker("hook", rx2.url, storage, session, clock, concurrency=2)
        before = clock.monotonic()
        assert await drain(Outbox({"hook": worker2}, storage, clock=clock), clock, 10) == 0
        assert clock.monotonic() == before
    assert sorted(r.headers["webhook-id"] for r in rx2.requests) == sorted(set(ids) - sent)


async def test_rate_limit_spaces_messages(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    t0 = clock.now()
    ids = await seed(storage, 6, ["hook"], now=t0)
    async with WebhookReceiver() as rx:
        worker = hook_worker("hook", rx.url, storage, session, clock, concurrency=4, rate=5.0)
        left = await drain(Outbox({"hook": worker}, storage, clock=clock), clock, 5)
    assert left == 0 and sorted(r.headers["webhook-id"] for r in rx.requests) == sorted(ids)
    # Each row is claimed (and sent) only when the rate lets it go: 5/s is exactly 0.2 s apart.
    claims = sorted(
        d.last_attempt for d in (await rows(storage, "hook")).values() if d.last_attempt
    )
    assert [(c - t0).total_seconds() for c in claims] == pytest.approx(
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], abs=1e-6
    )


# --------------------------------------------------------------------------- digests


async def test_digest_waits_for_the_period_and_sends_one_message(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    period_end = clock.now() + timedelta(seconds=90)
    ids = await seed(storage, 5, ["hook"], now=clock.now(), not_before=period_end)
    async with WebhookReceiver(script=[503, 200], clock=clock) as rx:
        worker = hook_worker("hook", rx.url, storage, session, clock, digest=True)
        outbox = Outbox({"hook": worker}, storage, clock=clock)
        await run_until(outbox, clock, all_in(storage, "hook", ids, "delivered"))
    assert len(rx.requests) == 2  # one digest, retried once as the same digest
    first, second = rx.requests
    # At the period's end exactly (not a moment before), then the policy's 0.2 s retry.
    assert offsets(rx.requests, period_end) == pytest.approx([0.0, 0.2], abs=1e-6)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-id"].startswith("digest_")
    body = second.json()
    assert body["type"] == "digest" and body["id"] == second.headers["webhook-id"]
    assert sorted(a["id"] for a in body["alerts"]) == sorted(ids)


async def test_mixed_channel_sends_immediate_alerts_alone_and_digest_watchlists_together(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    t0 = clock.now()
    soon = t0 + timedelta(seconds=60)
    slow = await seed(storage, 4, ["hook"], now=t0, watchlist="slow-news", not_before=soon)
    fast = await seed(storage, 3, ["hook"], now=t0, watchlist="fast-news")
    async with WebhookReceiver(clock=clock) as rx:
        worker = hook_worker(
            "hook", rx.url, storage, session, clock, digest_watchlists=frozenset({"slow-news"})
        )
        outbox = Outbox({"hook": worker}, storage, clock=clock)
        await run_until(outbox, clock, all_in(storage, "hook", slow + fast, "delivered"))
    bodies = [r.json() for r in rx.requests]
    singles = [b for b in bodies if b["type"] == "match"]
    digests = [b for b in bodies if b["type"] == "digest"]
    assert len(bodies) == 4
    assert sorted(b["id"] for b in singles) == sorted(fast)
    assert len(digests) == 1 and sorted(a["id"] for a in digests[0]["alerts"]) == sorted(slow)
    # The immediate ones went at once; the digest exactly at its period's end.
    when = {b["id"]: at for b, at in zip(bodies, offsets(rx.requests, t0), strict=True)}
    assert [when[i] for i in sorted(fast)] == [0.0, 0.0, 0.0]
    assert when[digests[0]["id"]] == pytest.approx(60.0, abs=1e-6)


# --------------------------------------------------------------------------- drain


async def test_drain_returns_when_the_next_retry_is_past_the_deadline(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    ids = await seed(storage, 3, ["good", "down"], now=clock.now())
    policy = RetryPolicy(first_retry=5, max_backoff=60, retry_for=3600)  # retries 1-5 s away
    async with WebhookReceiver() as good, WebhookReceiver(default=503) as down:
        outbox = Outbox(
            {
                "good": hook_worker("good", good.url, storage, session, clock, policy),
                "down": hook_worker("down", down.url, storage, session, clock, policy),
            },
            storage,
            clock=clock,
        )
        left = await drain(outbox, clock, 0.5)
    assert clock.monotonic() == 0  # returned without waiting: every retry is past the deadline
    assert left == 3
    assert len(good.requests) == 3 and len(down.requests) == 3
    down_rows = await rows(storage, "down")
    for i in ids:
        assert down_rows[i].state == "pending"
        wait = (down_rows[i].next_attempt - clock.now()).total_seconds()
        assert 1.0 <= wait <= 5.0, wait


async def test_drain_retries_what_is_due_before_the_deadline_and_no_more(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    t0 = clock.now()
    [alert_id] = await seed(storage, 1, ["down"], now=t0)
    async with WebhookReceiver(default=503, clock=clock) as down:
        worker = hook_worker("down", down.url, storage, session, clock)
        left = await drain(Outbox({"down": worker}, storage, clock=clock), clock, 1.0)
    # Retries at 0.2 and 0.6 s fall before the 1.0 s deadline; the next (1.4 s) does not.
    assert offsets(down.requests, t0) == pytest.approx([0.0, 0.2, 0.6], abs=1e-6)
    assert clock.monotonic() == pytest.approx(0.6)  # it did not wait on into the deadline
    assert left == 1
    row = (await rows(storage, "down"))[alert_id]
    assert row.state == "pending" and row.next_attempt == t0 + timedelta(seconds=1.4)


async def test_drain_exits_promptly_when_everything_is_delivered(
    storage: Storage, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    await seed(storage, 10, ["hook"], now=clock.now())
    async with WebhookReceiver(script=[503]) as rx:
        worker = hook_worker("hook", rx.url, storage, session, clock)
        left = await drain(Outbox({"hook": worker}, storage, clock=clock), clock, 20)
    assert left == 0
    assert clock.monotonic() == pytest.approx(0.2)  # the one retry, not the 20 s deadline
    assert len({r.headers["webhook-id"] for r in rx.requests}) == 10 and len(rx.requests) == 11


async def test_a_failing_claim_hands_back_rows_and_the_worker_carries_on(
    tmp_path: Path, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Fault injection on a real SQLite outbox: the second claim raises (say, a locked database).

    Rows claimed ahead are handed back, sends under way are recorded, the worker logs, backs off
    (one second of fake time) and comes back, and in the end every alert got exactly one 2xx.
    """
    from storage.base import StorageError
    from storage.sqlite import SQLiteStorage

    class FlakyClaims(SQLiteStorage):
        claims = 0

        async def claim_deliveries(self, *args: Any, **kwargs: Any) -> list[Delivery]:
            FlakyClaims.claims += 1
            if FlakyClaims.claims == 2:
                raise StorageError("database is locked (injected)")
            return await super().claim_deliveries(*args, **kwargs)

    st = FlakyClaims(tmp_path / "flaky.db")
    await st.open()
    try:
        ids = await seed(st, 12, ["hook"], now=clock.now())
        async with WebhookReceiver() as r:
            worker = hook_worker("hook", r.url, st, session, clock, concurrency=2)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            try:
                await run_clock(clock, [task], all_in(st, "hook", ids, "delivered"))
            finally:
                stop.set()
                await asyncio.wait_for(task, REAL_LIMIT)
        assert FlakyClaims.claims >= 3  # it failed once and claimed again
        assert clock.monotonic() == pytest.approx(1.0)  # after the error backoff, not IDLE_POLL
        got = [req.headers["webhook-id"] for req in r.requests]
        assert sorted(got) == sorted(ids)  # each alert exactly once
    finally:
        await st.close()


async def test_time_moving_on_while_a_claim_runs_does_not_strand_a_due_digest(
    tmp_path: Path, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The clock reaches the period's end while the worker's claim (taken with the earlier
    ``now``) is in the database: the worker must look again at once, not sleep a short while on
    a clock that may not move again (the daemon's ``run --once`` between two passes, a test)."""
    from storage.sqlite import SQLiteStorage

    period_end = clock.now() + timedelta(seconds=40)

    class TimePassesDuringClaim(SQLiteStorage):
        async def claim_deliveries(self, *args: Any, **kwargs: Any) -> list[Delivery]:
            got = await super().claim_deliveries(*args, **kwargs)
            if not got and clock.now() < period_end:
                clock.set(period_end)  # the period ends while this claim was running
            return got

    st = TimePassesDuringClaim(tmp_path / "moved.db")
    await st.open()
    try:
        ids = await seed(st, 3, ["hook"], now=clock.now(), not_before=period_end)
        async with WebhookReceiver(clock=clock) as rx:
            worker = hook_worker("hook", rx.url, st, session, clock, digest=True)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            try:
                # Time never moves again: only the worker's own re-check can send the digest.
                (req,) = await rx.wait_for(1, timeout=REAL_LIMIT)
            finally:
                stop.set()
                await asyncio.wait_for(task, REAL_LIMIT)
        body = req.json()
        assert body["type"] == "digest" and sorted(a["id"] for a in body["alerts"]) == sorted(ids)
        assert offsets(rx.requests, period_end) == pytest.approx([0.0], abs=1e-6)
    finally:
        await st.close()
