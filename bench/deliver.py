"""Delivery benchmark: 10,000 alerts from a real SQLite outbox to a webhook receiver in another process.

    python bench/deliver.py [--alerts 10000] [--concurrency 4,16] [--baseline 1000]

For each run: the alerts are stored the way the pipeline stores them (article + alert + outbox
row per transaction batch), then the real ``ChannelWorker`` (real ``WebhookSender``, signed,
through one aiohttp session) drains the outbox with the default retry policy. The receiver runs
in a separate process, answers 200 (or 503 for 20 % of requests, at random) and counts 2xx per
webhook-id: duplicates = 2xx beyond the first for an id, lost = ids never answered 2xx.

Baselines, same receiver: a sequential loop with a fresh connection (new session) per POST, and
a sequential loop over one session. Neither stores anything or retries.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.deliver.outbox import ChannelWorker, Outbox
from monitor.deliver.retry import RetryPolicy
from monitor.deliver.webhook import WebhookSender
from monitor.settings import WebhookChannel
from storage import open_storage
from storage.base import FeedSpec, NewAlert, NewArticle, Storage

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
TIME_LIMIT = 150.0  # seconds for the whole benchmark; each drain gets a share


# --------------------------------------------------------------------------- receiver process


def _receiver_main(port_q: Any) -> None:
    """A separate process: 200 (or 503 with probability ``fail``), counting 2xx per webhook-id."""
    state: dict[str, Any] = {"fail": 0.0, "ok": Counter(), "requests": 0, "rng": random.Random(7)}

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        state["requests"] += 1
        if state["fail"] and state["rng"].random() < state["fail"]:
            return web.Response(status=503, text="busy")
        state["ok"][request.headers.get("webhook-id", "")] += 1
        return web.Response(status=200)

    async def reset(request: web.Request) -> web.Response:
        state.update(fail=float(request.query.get("fail", "0")), ok=Counter(), requests=0)
        return web.json_response({})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"requests": state["requests"], "ok": dict(state["ok"])})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_post("/reset", reset)
        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port_q.put(site._server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


# --------------------------------------------------------------------------- helpers


def payload(alert_id: str, i: int) -> dict[str, Any]:
    return {
        "type": "match",
        "id": alert_id,
        "watchlist": "bench",
        "article": {
            "url": f"https://news.example.org/{i}",
            "title": f"Evacuation order number {i} issued for the valley",
            "published": "2024-01-03T10:00:00Z",
            "feed": "Bench Feed",
            "summary": "Officials issued an evacuation order as the fire moved down the valley.",
        },
        "matches": [
            {
                "kind": "keyword",
                "term": "evacuation order",
                "text": "evacuation order",
                "snippet": "…officials issued an evacuation order for three villages…",
            }
        ],
    }


async def seed(storage: Storage, n: int) -> list[str]:
    states = await storage.sync_feeds([FeedSpec(key="https://bench.example.org/rss")])
    feed_id = states["https://bench.example.org/rss"].id
    ids = [f"msg_{i:032x}" for i in range(n)]
    for start in range(0, n, 500):
        batch = [
            NewArticle(
                feed_id=feed_id,
                guid=f"g{i}",
                url=f"https://news.example.org/{i}",
                canonical_url=f"https://news.example.org/{i}",
                title=f"Story {i}",
                alerts=[NewAlert(ids[i], "bench", payload(ids[i], i), ["hook"])],
            )
            for i in range(start, min(n, start + 500))
        ]
        await storage.add_articles(batch)
    return ids


async def receiver_stats(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(base + "/stats") as resp:
        data: dict[str, Any] = await resp.json()
        return data


async def outbox_run(
    base: str, n: int, fail: float, concurrency: int, limit: float
) -> dict[str, Any]:
    # 200-only runs use the default policy; the 503 run a faster one (first retry within 0.5 s,
    # at most 4 s apart) so that it measures throughput under failures rather than backoff
    # sleeps (the default policy's 5th attempt can wait ~80 s, by design).
    policy = RetryPolicy() if not fail else RetryPolicy(first_retry=0.5, max_backoff=4.0)
    async with aiohttp.ClientSession() as control:
        await control.post(f"{base}/reset?fail={fail}")
    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        storage = open_storage(str(Path(tmp) / "outbox.db"))
        await storage.open()
        try:
            ids = await seed(storage, n)
            connector = aiohttp.TCPConnector(limit=256)
            async with aiohttp.ClientSession(connector=connector) as session:
                ch = WebhookChannel.model_validate(
                    {"type": "webhook", "url": base + "/hook", "secret": SECRET}
                )
                sender = WebhookSender("hook", ch, session, allow_private_networks=True)
                worker = ChannelWorker(
                    "hook",
                    sender,
                    storage,
                    policy,
                    concurrency=concurrency,
                    timeout=ch.timeout,
                )
                t0 = time.perf_counter()
                left = await Outbox({"hook": worker}, storage).drain(time.monotonic() + limit)
                elapsed = time.perf_counter() - t0
                writes = worker.outcome_writer.batches
                stats = await receiver_stats(session, base)
            states = Counter(
                d.state for a in await storage.list_alerts(limit=n + 1) for d in a.deliveries
            )
        finally:
            await storage.close()
    ok: dict[str, int] = stats["ok"]
    return {
        "fail": fail,
        "concurrency": concurrency,
        "seconds": elapsed,
        "per_second": n / elapsed,
        "requests": stats["requests"],
        "duplicates": sum(c - 1 for c in ok.values() if c > 1),
        # lost: never answered 2xx and no longer queued either (neither delivered nor retried)
        "lost": sum(1 for i in ids if ok.get(i, 0) == 0) - left,
        "delivered_rows": states["delivered"],
        "still_queued": left,
        "outcome_transactions": writes,
    }


async def baseline(base: str, n: int, fresh: bool) -> float:
    """Sequential POSTs without any outbox: fresh connection each time, or one shared session."""
    body = [payload(f"base_{i:028x}", i) for i in range(n)]
    t0 = time.perf_counter()
    if fresh:
        for p in body:
            async with aiohttp.ClientSession() as s, s.post(base + "/hook", json=p) as r:
                await r.read()
    else:
        async with aiohttp.ClientSession() as s:
            for p in body:
                async with s.post(base + "/hook", json=p) as r:
                    await r.read()
    return n / (time.perf_counter() - t0)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)  # retry warnings would flood the output
    ctx = mp.get_context("spawn")
    port_q = ctx.Queue()
    proc = ctx.Process(target=_receiver_main, args=(port_q,), daemon=True)
    proc.start()
    t_start = time.monotonic()
    try:
        base = f"http://127.0.0.1:{port_q.get(timeout=30)}"
        concurrencies = [int(c) for c in args.concurrency.split(",")]
        results = []
        plan = [(0.0, c) for c in concurrencies] + [(0.2, concurrencies[-1])]
        for fail, conc in plan:
            remaining = TIME_LIMIT - (time.monotonic() - t_start)
            share = max(10.0, remaining / 2)
            r = await outbox_run(base, args.alerts, fail, conc, share)
            results.append(r)
            print(
                f"outbox  fail={fail:.0%} concurrency={conc:>2}: {r['per_second']:7.0f} deliveries/s "
                f"({r['seconds']:.1f} s, {r['requests']} requests) duplicates={r['duplicates']} "
                f"lost={r['lost']} delivered_rows={r['delivered_rows']} still_queued={r['still_queued']} "
                f"outcome_transactions={r['outcome_transactions']} "
                f"({r['requests'] / max(1, r['outcome_transactions']):.1f} sends each)",
                flush=True,
            )
        await _reset(base)
        fresh = await baseline(base, args.baseline, fresh=True)
        shared = await baseline(base, args.baseline, fresh=False)
        print(f"baseline sequential, fresh connection per POST: {fresh:7.0f} POST/s")
        print(f"baseline sequential, one session:               {shared:7.0f} POST/s")
        best = max(r["per_second"] for r in results if r["fail"] == 0)
        print(
            f"ratio outbox (best, durable) / fresh-connection baseline: {best / fresh:.1f}x; "
            f"/ one-session baseline: {best / shared:.1f}x"
        )
        print(f"peak RSS (benchmark process): {peak_rss_mb():.0f} MB")
        print(f"total {time.monotonic() - t_start:.0f} s")
        bad = any(r["duplicates"] or r["lost"] for r in results)
        return 1 if bad else 0
    finally:
        proc.terminate()
        proc.join(5)


async def _reset(base: str) -> None:
    async with aiohttp.ClientSession() as s:
        await s.post(base + "/reset?fail=0")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--concurrency", default="4,16", help="channel concurrency values, e.g. 4,16")
    ap.add_argument("--baseline", type=int, default=1000, help="POSTs per baseline loop")
    sys.exit(asyncio.run(main(ap.parse_args())))
