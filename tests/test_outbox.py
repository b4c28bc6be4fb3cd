"""The delivery workers against a real SQLite outbox and real loopback receivers.

Every test stores alerts the way the pipeline does (``add_articles``: article, alert and outbox
rows in one transaction), runs the real ``ChannelWorker`` / ``Outbox``, and checks both what the
receiver saw and what the outbox rows say afterwards.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.deliver.base import make_sender
from monitor.deliver.outbox import ChannelWorker, Outbox
from monitor.deliver.retry import RetryPolicy
from monitor.settings import WebhookChannel
from storage import open_storage
from storage.base import Delivery, FeedSpec, NewAlert, NewArticle, Storage
from tests.receivers import Reply, WebhookReceiver, sample_alert

FAST = RetryPolicy(first_retry=0.2, max_backoff=1.0, retry_for=3600)


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
    watchlist: str = "wildfire-evacuations",
    not_before: datetime | None = None,
    start: int = 0,
) -> list[str]:
    """Store ``n`` articles with one alert each, queued for ``channels``; return the alert ids."""
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
    policy: RetryPolicy = FAST,
    *,
    timeout: str = "3s",
    **kw: Any,
) -> ChannelWorker:
    ch = WebhookChannel.model_validate({"type": "webhook", "url": url, "timeout": timeout})
    sender = make_sender(name, ch, session, allow_private_networks=True)
    return ChannelWorker(name, sender, storage, policy, timeout=ch.timeout, **kw)


async def rows(storage: Storage, channel: str) -> dict[str, Delivery]:
    out: dict[str, Delivery] = {}
    for alert in await storage.list_alerts(limit=100_000):
        for d in alert.deliveries:
            if d.channel == channel:
                out[alert.id] = d
    return out


async def run_until(outbox: Outbox, cond: Any, limit: float) -> float:
    """Run the workers until ``cond()`` is true (at most ``limit`` s); return the seconds taken."""
    stop = asyncio.Event()
    outbox.start(stop)
    t0 = time.monotonic()
    try:
        while not await cond():
            if time.monotonic() - t0 > limit:
                raise AssertionError(f"condition not reached within {limit}s")
            await asyncio.sleep(0.02)
        return time.monotonic() - t0
    finally:
        stop.set()
        await outbox.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingReceiver(WebhookReceiver):
    """Also records how many requests were open at once and when each 2xx was answered."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.open = 0
        self.peak = 0
        self.answered: list[tuple[str, int, float]] = []  # (webhook-id, status, time)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            resp = await super()._handle(request)
        finally:
            self.open -= 1
        self.answered.append((request.headers.get("webhook-id", ""), resp.status, time.time()))
        return resp


# --------------------------------------------------------------------------- retries


async def test_503_503_200_is_delivered_once_with_one_webhook_id(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    [alert_id] = await seed(storage, 1, ["hook"])
    async with CountingReceiver(script=[503, Reply(503, "busy"), 200]) as rx:
        worker = hook_worker("hook", rx.url, storage, session)
        outbox = Outbox({"hook": worker}, storage)

        async def done() -> bool:
            return (await rows(storage, "hook"))[alert_id].state == "delivered"

        await run_until(outbox, done, 10)
        # Let a later pass prove nothing is sent again after the 2xx.
        assert await worker.process_due() == 0
        assert await storage.requeue(alert_id=alert_id) == 0
    assert [r.headers["webhook-id"] for r in rx.requests] == [alert_id] * 3
    assert [s for _, s, _ in rx.answered] == [503, 503, 200]
    gaps = [b.at - a.at for a, b in zip(rx.requests, rx.requests[1:], strict=False)]
    assert all(0.15 <= g < 2.0 for g in gaps), gaps  # backoff, not a hot loop, not stuck
    row = (await rows(storage, "hook"))[alert_id]
    assert (row.attempts, row.last_status, row.last_error) == (3, 200, None)
    assert row.delivered_at is not None and worker.retried == 2 and worker.sent == 1


async def test_429_retry_after_is_not_retried_early(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    [alert_id] = await seed(storage, 1, ["hook"])
    async with WebhookReceiver(script=[Reply(429, headers={"Retry-After": "2"}), 200]) as rx:
        policy = RetryPolicy(first_retry=0.2, max_backoff=10, retry_for=3600)
        outbox = Outbox({"hook": hook_worker("hook", rx.url, storage, session, policy)}, storage)

        async def done() -> bool:
            return len(rx.requests) >= 2

        await run_until(outbox, done, 8)
    gap = rx.requests[1].at - rx.requests[0].at
    assert gap >= 2.0, gap  # the policy alone would have retried within 0.2 s
    assert gap < 3.5, gap
    assert (await rows(storage, "hook"))[alert_id].state == "delivered"


async def test_410_fails_at_once_and_is_kept_visible(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    [alert_id] = await seed(storage, 1, ["hook"])
    async with WebhookReceiver(script=[Reply(410, "gone for good")]) as rx:
        worker = hook_worker("hook", rx.url, storage, session)
        outbox = Outbox({"hook": worker}, storage)
        left = await outbox.drain(time.monotonic() + 2)
        assert left == 0
        assert await worker.process_due() == 0
    assert len(rx.requests) == 1
    row = (await rows(storage, "hook"))[alert_id]
    assert row.state == "failed" and row.last_status == 410
    assert (
        row.last_error is not None and "410" in row.last_error and "gone for good" in row.last_error
    )
    failed = await storage.list_alerts(failed_only=True)
    assert [a.id for a in failed] == [alert_id]


async def test_gives_up_only_after_retry_for(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    [alert_id] = await seed(storage, 1, ["hook"])
    policy = RetryPolicy(first_retry=0.2, max_backoff=0.4, retry_for=1.5)
    async with WebhookReceiver(default=503) as rx:
        outbox = Outbox({"hook": hook_worker("hook", rx.url, storage, session, policy)}, storage)

        async def done() -> bool:
            return (await rows(storage, "hook"))[alert_id].state == "failed"

        took = await run_until(outbox, done, 8)
    assert took >= 1.5
    assert len(rx.requests) >= 3
    row = (await rows(storage, "hook"))[alert_id]
    assert row.last_error is not None and row.last_error.startswith("gave up after")
    assert "HTTP 503" in row.last_error and row.last_status == 503


# --------------------------------------------------------------------------- isolation, limits


async def test_refused_and_hanging_channels_do_not_delay_a_healthy_one(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    ids = await seed(storage, 20, ["good", "refused", "hanging"])
    async with (
        WebhookReceiver() as good,
        WebhookReceiver(default=Reply(200, delay=4.5)) as hanging,
    ):
        refused_url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
        outbox = Outbox(
            {
                "good": hook_worker("good", good.url, storage, session),
                "refused": hook_worker("refused", refused_url, storage, session),
                "hanging": hook_worker("hanging", hanging.url, storage, session, timeout="4s"),
            },
            storage,
        )

        async def good_done() -> bool:
            r = await rows(storage, "good")
            return all(r[i].state == "delivered" for i in ids)

        took = await run_until(outbox, good_done, 10)
        # All 20 on the healthy channel before the hanging channel's first send even timed out.
        assert took < 3.0, took
        assert len(good.requests) == 20
        assert len(hanging.requests) >= 1
        refused = await rows(storage, "refused")
        assert all(refused[i].state == "pending" for i in ids)
        assert any("cannot connect" in (refused[i].last_error or "") for i in ids)


async def test_concurrency_limit_holds_and_at_most_one_round_is_claimed_ahead(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    ids = await seed(storage, 12, ["hook"])
    async with CountingReceiver(default=Reply(200, delay=0.4)) as rx:
        worker = hook_worker("hook", rx.url, storage, session, concurrency=3)
        outbox = Outbox({"hook": worker}, storage)
        stop = asyncio.Event()
        t_start = datetime.now(UTC)
        outbox.start(stop)
        try:
            await rx.wait_for(3, timeout=5)
            await asyncio.sleep(0.1)
            claimed = [d for d in (await rows(storage, "hook")).values() if d.state == "in_flight"]
            # 3 being sent plus one round (3) claimed ahead; the rest is not touched.
            assert len(claimed) == 6, claimed
            assert (
                sum(1 for d in (await rows(storage, "hook")).values() if d.state == "pending") == 6
            )
            # Every lease covers a wait behind one send plus its own send (3 s timeout each).
            for d in claimed:
                assert d.lease_until is not None
                assert d.lease_until >= t_start + timedelta(seconds=worker.lease_ahead() - 1)
            assert worker.lease_ahead() >= 2 * worker.send_limit()

            async def done() -> bool:
                r = await rows(storage, "hook")
                return all(r[i].state == "delivered" for i in ids)

            t0 = time.monotonic()
            while not await done():
                assert time.monotonic() - t0 < 10
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await outbox.join(5)
    assert rx.peak == 3  # the channel's concurrency: never more requests open at once
    assert len(rx.requests) == 12
    assert all(d.attempts == 1 for d in (await rows(storage, "hook")).values())


async def test_rows_claimed_ahead_are_handed_back_unsent_at_the_deadline(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    ids = await seed(storage, 10, ["hook"])
    async with CountingReceiver(default=Reply(200, delay=0.5)) as rx:
        worker = hook_worker("hook", rx.url, storage, session, concurrency=2)
        t0 = time.monotonic()
        left = await Outbox({"hook": worker}, storage).drain(t0 + 0.3)
        took = time.monotonic() - t0
    assert took < 2.5, took
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
        worker2 = hook_worker("hook", rx2.url, storage, session, concurrency=2)
        assert await Outbox({"hook": worker2}, storage).drain(time.monotonic() + 10) == 0
    assert sorted(r.headers["webhook-id"] for r in rx2.requests) == sorted(set(ids) - sent)


async def test_rate_limit_spaces_messages(storage: Storage, session: aiohttp.ClientSession) -> None:
    await seed(storage, 6, ["hook"])
    async with WebhookReceiver() as rx:
        worker = hook_worker("hook", rx.url, storage, session, concurrency=4, rate=5.0)
        left = await Outbox({"hook": worker}, storage).drain(time.monotonic() + 5)
    assert left == 0 and len(rx.requests) == 6
    gaps = [b.at - a.at for a, b in zip(rx.requests, rx.requests[1:], strict=False)]
    assert min(gaps) >= 0.17, gaps  # 5/s means 0.2 s apart (small clock slack)
    assert rx.requests[-1].at - rx.requests[0].at >= 0.95


# --------------------------------------------------------------------------- digests


async def test_digest_waits_for_the_period_and_sends_one_message(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    period_end = datetime.now(UTC) + timedelta(seconds=1.5)
    ids = await seed(storage, 5, ["hook"], not_before=period_end)
    async with WebhookReceiver(script=[503, 200]) as rx:
        worker = hook_worker("hook", rx.url, storage, session, digest=True)
        outbox = Outbox({"hook": worker}, storage)

        async def done() -> bool:
            r = await rows(storage, "hook")
            return all(r[i].state == "delivered" for i in ids)

        await run_until(outbox, done, 10)
    assert len(rx.requests) == 2  # one digest, retried once as the same digest
    first, second = rx.requests
    assert first.at >= period_end.timestamp() - 0.01
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-id"].startswith("digest_")
    body = second.json()
    assert body["type"] == "digest" and body["id"] == second.headers["webhook-id"]
    assert sorted(a["id"] for a in body["alerts"]) == sorted(ids)


async def test_mixed_channel_sends_immediate_alerts_alone_and_digest_watchlists_together(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    slow = await seed(storage, 4, ["hook"], watchlist="slow-news", not_before=soon)
    fast = await seed(storage, 3, ["hook"], watchlist="fast-news")
    async with WebhookReceiver() as rx:
        worker = hook_worker(
            "hook", rx.url, storage, session, digest_watchlists=frozenset({"slow-news"})
        )
        outbox = Outbox({"hook": worker}, storage)

        async def done() -> bool:
            return len(rx.requests) >= 4

        await run_until(outbox, done, 8)
        await asyncio.sleep(0.3)
    bodies = [r.json() for r in rx.requests]
    singles = [b for b in bodies if b["type"] == "match"]
    digests = [b for b in bodies if b["type"] == "digest"]
    assert sorted(b["id"] for b in singles) == sorted(fast)
    assert len(digests) == 1 and sorted(a["id"] for a in digests[0]["alerts"]) == sorted(slow)
    # The immediate ones did not wait for the digest period.
    assert max(r.at for r in rx.requests if r.json()["type"] == "match") < soon.timestamp()


# --------------------------------------------------------------------------- drain


async def test_drain_returns_when_the_next_retry_is_past_the_deadline(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    good_ids = await seed(storage, 3, ["good", "down"])
    policy = RetryPolicy(first_retry=5, max_backoff=60, retry_for=3600)
    async with WebhookReceiver() as good, WebhookReceiver(default=503) as down:
        outbox = Outbox(
            {
                "good": hook_worker("good", good.url, storage, session, policy),
                "down": hook_worker("down", down.url, storage, session, policy),
            },
            storage,
        )
        t0 = time.monotonic()
        # First attempts fail; their retries (1-5 s away) may or may not fall before a 1.2 s
        # deadline, so drain either retries them once or stops: never waits beyond the deadline.
        left = await outbox.drain(t0 + 1.2)
        took = time.monotonic() - t0
    assert took < 1.2 + 3.5, took  # deadline + at most one send in hand (timeout 3 s)
    assert left == 3
    assert len(good.requests) == 3
    down_rows = await rows(storage, "down")
    assert all(down_rows[i].state == "pending" for i in good_ids)
    assert all(down_rows[i].next_attempt > datetime.now(UTC) for i in good_ids)


async def test_drain_exits_promptly_when_everything_is_delivered(
    storage: Storage, session: aiohttp.ClientSession
) -> None:
    await seed(storage, 10, ["hook"])
    async with WebhookReceiver(script=[503]) as rx:
        outbox = Outbox({"hook": hook_worker("hook", rx.url, storage, session)}, storage)
        t0 = time.monotonic()
        left = await outbox.drain(t0 + 20)
        took = time.monotonic() - t0
    assert left == 0 and took < 3, took
    assert len({r.headers["webhook-id"] for r in rx.requests}) == 10 and len(rx.requests) == 11


async def test_a_failing_claim_hands_back_rows_and_the_worker_carries_on(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Fault injection on a real SQLite outbox: the second claim raises (say, a locked database).

    Rows claimed ahead are handed back, sends under way are recorded, the worker logs and
    comes back, and in the end every alert got exactly one 2xx.
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
        ids = await seed(st, 12, ["hook"])
        async with WebhookReceiver(script=[Reply(200, delay=0.05)] * 12) as r:
            worker = hook_worker("hook", r.url, st, session, concurrency=2)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            await r.wait_for(12, timeout=20)
            for _ in range(100):  # the last outcomes are being committed
                states = {d.state for d in (await rows(st, "hook")).values()}
                if states == {"delivered"}:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, 10)
        assert FlakyClaims.claims >= 3  # it failed once and claimed again
        got = [req.headers["webhook-id"] for req in r.requests]
        assert sorted(got) == sorted(ids)  # each alert exactly once
        assert {d.state for d in (await rows(st, "hook")).values()} == {"delivered"}
    finally:
        await st.close()
