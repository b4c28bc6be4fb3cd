"""Storage benchmark: polls' database work on SQLite and PostgreSQL, and batching vs row by row.

    python bench/storage.py                     # 2,000 feeds; PostgreSQL from a throwaway cluster
    python bench/storage.py --feeds 500 --pg postgresql://user:pw@127.0.0.1/db

Part 1, the database side of polling: ``--feeds`` feeds, each polled the way the pipeline does
it (claimed in batches by the dispatcher, then ``known_items``, ``add_articles`` with
``--items`` new articles and one alert each, ``update_feed``), ``--concurrency`` polls at once,
writes coalesced by the daemon's own group commit (``monitor.groupcommit``). Reported: polls per
second on each backend, and for PostgreSQL the statements sent per poll (each one network round
trip; ``PostgresStorage.round_trips``). A second pass (nothing new: known items only, like a 304
or unchanged feed) is reported too.

Part 2, the baseline in the same run: storing a backlog of ``--backlog`` articles (each with an
alert and two outbox rows) on PostgreSQL, with ``add_articles`` (one statement for the batch)
against the naive way, one INSERT per row in one transaction. The ratio is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from monitor.groupcommit import GroupCommit
from storage.base import FeedSpec, FeedUpdate, NewAlert, NewArticle, Storage
from storage.postgres import PostgresStorage
from storage.sqlite import SQLiteStorage


def new_articles(feed_id: int, poll: int, n: int) -> list[NewArticle]:
    out = []
    for k in range(n):
        ident = f"{feed_id}-{poll}-{k}"
        out.append(
            NewArticle(
                feed_id=feed_id, guid=f"g{ident}", url=f"https://n.example.org/{ident}",
                canonical_url=f"https://n.example.org/{ident}", title=f"Story {ident}",
                summary="A summary of the story. " * 4, body="Body text of the article. " * 120,
                alerts=[NewAlert(id=f"a{ident}", watchlist="w", payload={"id": f"a{ident}"},
                                 channels=["hook", "mail"])],
            )
        )  # fmt: skip
    return out


async def poll_pass(
    st: Storage,
    keys: list[str],
    make: Callable[[int], list[NewArticle]],
    concurrency: int,
    poll: int,
) -> float:
    """Every feed once, as the daemon would: claims, lookups, grouped writes. Returns seconds."""
    updates: GroupCommit[tuple[int, FeedUpdate], None] = GroupCommit(
        "updates", lambda b: _updates(st, b), max_batch=500
    )
    articles: GroupCommit[list[NewArticle], list[int | None]] = GroupCommit(
        "articles", lambda b: _articles(st, b), max_batch=64
    )
    now = datetime.now(UTC) + timedelta(hours=poll)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = 0

    async def poller() -> None:
        nonlocal done
        while True:
            feed = await queue.get()
            if feed is None:
                return
            batch = make(feed.id)
            known_g, known_u = await st.known_items(
                feed.id,
                [a.guid for a in batch if a.guid],
                [a.canonical_url for a in batch if a.canonical_url],
            )
            fresh = [a for a in batch if a.guid not in known_g and a.canonical_url not in known_u]
            if fresh:
                await articles.submit(fresh)
            await updates.submit((feed.id, FeedUpdate(now, now + timedelta(minutes=15), 200)))
            done += 1

    t0 = time.perf_counter()
    workers = [asyncio.create_task(poller()) for _ in range(concurrency)]
    claimed = 0
    while claimed < len(keys):
        got = await st.claim_feeds(now, keys, concurrency, 600)
        if not got:
            await asyncio.sleep(0.001)
            continue
        claimed += len(got)
        for f in got:
            queue.put_nowait(f)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    await updates.flush()
    await articles.flush()
    assert done == len(keys)
    return time.perf_counter() - t0


async def _updates(st: Storage, batch: list[tuple[int, FeedUpdate]]) -> list[None]:
    await st.update_feeds(batch)
    return [None] * len(batch)


async def _articles(st: Storage, batch: list[list[NewArticle]]) -> list[list[int | None]]:
    ids = await st.add_articles([a for b in batch for a in b])
    out, i = [], 0
    for b in batch:
        out.append(ids[i : i + len(b)])
        i += len(b)
    return out


async def polls(st: Storage, feeds: int, items: int, concurrency: int) -> dict[str, float]:
    keys = [f"https://feeds.example.org/{i}.xml" for i in range(feeds)]
    await st.sync_feeds([FeedSpec(k) for k in keys])

    def make(feed_id: int) -> list[NewArticle]:
        return new_articles(feed_id, 1, items)

    rt0 = getattr(st, "round_trips", 0)
    first = await poll_pass(st, keys, make, concurrency, poll=1)
    rt1 = getattr(st, "round_trips", 0)
    # The next interval: the same items again, all known, only the feeds' outcomes written.
    second = await poll_pass(st, keys, make, concurrency, poll=2)
    rt2 = getattr(st, "round_trips", 0)
    return {
        "new_polls_per_s": feeds / first,
        "known_polls_per_s": feeds / second,
        "rt_new": (rt1 - rt0) / feeds,
        "rt_known": (rt2 - rt1) / feeds,
    }


async def naive_backlog(url: str, feed_id: int, batch: list[NewArticle]) -> float:
    """The naive way: one INSERT ... RETURNING per article, alert and outbox row."""
    t0 = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        now = datetime.now(UTC)
        for a in batch:
            cur = await conn.execute(
                "INSERT INTO articles (feed_id, guid, url, canonical_url, title, summary, body, "
                "fetched_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING "
                "RETURNING id",
                (feed_id, a.guid, a.url, a.canonical_url, a.title, a.summary, a.body, now),
            )
            row = await cur.fetchone()
            if row is None:
                continue
            for al in a.alerts:
                await conn.execute(
                    "INSERT INTO alerts (id, watchlist, article_id, created_at, payload) "
                    "VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING",
                    (al.id, al.watchlist, row[0], now, '{"id": "x"}'),
                )
                for ch in al.channels:
                    await conn.execute(
                        "INSERT INTO deliveries (alert_id, channel, next_attempt, created_at) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (al.id, ch, now, now),
                    )
    return time.perf_counter() - t0


async def backlog(url: str, n: int) -> tuple[float, float]:
    st = PostgresStorage(url)
    await st.open()
    try:
        [a, b] = (
            await st.sync_feeds([FeedSpec("https://a.example/"), FeedSpec("https://b.example/")])
        ).values()
        batched = new_articles(a.id, 7, n)
        t0 = time.perf_counter()
        await st.add_articles(batched)
        ours = time.perf_counter() - t0
        naive = await naive_backlog(url, b.id, new_articles(b.id, 8, n))
        return ours, naive
    finally:
        await st.close()


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--items", type=int, default=3, help="new articles per feed in the first pass")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--backlog", type=int, default=2000)
    ap.add_argument(
        "--pg", help="a PostgreSQL URL (an empty database); default: a throwaway cluster"
    )
    args = ap.parse_args()

    cluster = None
    url = args.pg
    if url is None:
        from tests.pg import TempCluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL binaries: install postgresql or pass --pg URL")
        cluster = TempCluster(bindir)
        # Durable like a real server (the test cluster turns fsync off for speed).
        url = cluster.start()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = on")
            conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            conn.execute("SELECT pg_reload_conf()")
    try:
        results: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            sq = SQLiteStorage(Path(tmp) / "bench.db")
            await sq.open("daemon")
            try:
                results["sqlite"] = await polls(sq, args.feeds, args.items, args.concurrency)
            finally:
                await sq.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS fw_bench WITH (FORCE)")
            conn.execute("CREATE DATABASE fw_bench")
        from urllib.parse import urlsplit, urlunsplit

        bench_url = urlunsplit(urlsplit(url)._replace(path="/fw_bench"))
        pg = PostgresStorage(bench_url)
        await pg.open("daemon")
        try:
            results["postgresql"] = await polls(pg, args.feeds, args.items, args.concurrency)
        finally:
            await pg.close()
        ours, naive = await backlog(bench_url, args.backlog)
    finally:
        if cluster is not None:
            cluster.stop()

    print(f"feeds={args.feeds} new items per feed={args.items} concurrency={args.concurrency}")
    print(
        f"{'backend':<11} {'new polls/s':>12} {'known polls/s':>14} {'stmts/poll new':>15} {'stmts/poll known':>17}"
    )
    for name, r in results.items():
        rt_new = f"{r['rt_new']:.2f}" if name == "postgresql" else "-"
        rt_known = f"{r['rt_known']:.2f}" if name == "postgresql" else "-"
        print(
            f"{name:<11} {r['new_polls_per_s']:>12.0f} {r['known_polls_per_s']:>14.0f} {rt_new:>15} {rt_known:>17}"
        )
    s, p = results["sqlite"], results["postgresql"]
    print(f"postgresql/sqlite: new {p['new_polls_per_s'] / s['new_polls_per_s']:.2f}x, "
          f"known {p['known_polls_per_s'] / s['known_polls_per_s']:.2f}x")  # fmt: skip
    print(
        f"backlog of {args.backlog} articles (+1 alert, 2 outbox rows each) on PostgreSQL: "
        f"add_articles {ours:.3f}s, row by row {naive:.3f}s, {naive / ours:.1f}x faster"
    )


if __name__ == "__main__":
    asyncio.run(main())
