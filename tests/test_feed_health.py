"""Feed health through the real daemon: moved, gone, rate-limited, failing, hostile and slow feeds
beside good ones. The daemon keeps running, alerts from the good ones, and `status` explains the
bad ones. All servers are on 127.0.0.1; the database is a real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.clock import SYSTEM, Clock, FakeClock
from monitor.daemon import Daemon
from monitor.settings import Config, load_config
from storage import open_storage
from storage.base import FeedState
from tests.harness import feedwatch
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import WebhookReceiver

FIRE = Item(
    "fire",
    "Wildfire near the coast",
    ["A wildfire burned near the coast on Monday, officials said."],
)


def make_config(
    tmp_path: Path, feeds: list[tuple[str, str]], hook: str, extra_feed: str = "", **kw: Any
) -> Config:
    lines = "\n".join(f"  - {{url: '{u}', name: '{n}'{extra_feed}}}" for u, n in feeds)
    text = f"""
storage: {{url: {tmp_path / "fw.db"}}}
fetch: {{allow_private_networks: true, timeout: {kw.get("timeout", "5s")}, idle_timeout: 1s, max_bytes: 1MB}}
defaults: {{interval: {kw.get("interval", "15m")}, extract: false}}
delivery: {{drain_seconds: 3}}
feeds:
{lines}
channels:
  hook: {{type: webhook, url: "{hook}"}}
watchlists:
  - {{name: fires, keywords: [wildfire*], channels: [hook]}}
"""
    path = tmp_path / "feedwatch.yaml"
    path.write_text(text)
    return load_config(path, env={})


@asynccontextmanager
async def running(d: Daemon) -> AsyncIterator[None]:
    """``d.run()`` while the block runs; then stop it and expect a clean exit (bounded)."""
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    try:
        yield
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


async def once(cfg: Config, clock: Clock = SYSTEM) -> Daemon:
    async with Daemon(cfg, clock=clock) as d:
        await d.run_once()
    return d


async def states(cfg: Config) -> dict[str, FeedState]:
    s = open_storage(cfg.storage.url)
    await s.open()
    try:
        return {st.name or st.key: st for st in await s.list_feeds()}
    finally:
        await s.close()


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    code, out, err = await feedwatch(*args)
    return subprocess.CompletedProcess(list(args), code, out, err)


async def status_json(cfg: Config, code: int = 3) -> dict[str, dict[str, Any]]:
    res = await cli("status", "--json", "--config", str(cfg.path))
    assert res.returncode == code, res.stderr
    return {f["name"]: f for f in json.loads(res.stdout)["feeds"]}


@pytest.fixture
async def server() -> Any:
    async with HostileServer() as srv:
        yield srv


async def test_broken_moved_slow_and_limited_feeds_beside_a_good_one(
    tmp_path: Path, server: HostileServer
) -> None:
    # The rate-limited feed lives on its own host: Retry-After holds for its whole host.
    limited_host = await HostileServer(host="127.0.0.2").start()
    try:
        await _broken_beside_good(tmp_path, server, limited_host)
    finally:
        await limited_host.close()


async def _broken_beside_good(
    tmp_path: Path, server: HostileServer, limited_host: HostileServer
) -> None:
    room = Newsroom(server)
    good = room.add(Feed("/good.xml", "Good", [FIRE]))
    moved_target = room.add(
        Feed("/new-home.xml", "Moved", [Item("m1", "Wildfire moves", ["A wildfire moved fast."])])
    )
    feeds = [
        (good, "Good"),
        (server.url(f"/redirect/301?to={moved_target}"), "Moved"),
        (server.url("/status/410"), "Gone"),
        (limited_host.url("/status/429?retry_after=3600"), "Limited"),
        (server.url("/status/503"), "Flaky"),
        (server.url("/hang"), "Hangs"),
        (server.url("/drip?every=3&count=10"), "Drips"),
        (server.url("/endless"), "Endless"),
        (server.url("/bomb/gzip"), "Bomb"),
        (server.url("/loop/a"), "Loop"),
        (server.url("/chain/12"), "Chain"),
    ]
    async with WebhookReceiver() as hook:
        cfg = make_config(tmp_path, feeds, hook.url, timeout="2s")
        d = await once(cfg)
        titles = sorted(r.json()["article"]["title"] for r in hook.requests)
        assert titles == ["Wildfire moves", "Wildfire near the coast"]
        by = {r.feed: r for r in d.stats.results}
        assert by["Good"].status == "ok" and by["Moved"].status == "ok"
        for bad in (
            "Gone",
            "Limited",
            "Flaky",
            "Hangs",
            "Drips",
            "Endless",
            "Bomb",
            "Loop",
            "Chain",
        ):
            assert by[bad].status == "error", bad

        st = await status_json(cfg)
        assert st["Moved"]["url"] == moved_target  # 301: the stored URL follows the move
        assert st["Gone"]["disabled"] is True and st["Gone"]["next_poll"] is None
        assert "410" in st["Gone"]["last_error"]
        assert st["Limited"]["http_status"] == 429
        limited_next = datetime.fromisoformat(st["Limited"]["next_poll"].replace("Z", "+00:00"))
        assert limited_next > datetime.now(UTC) + timedelta(minutes=55)  # Retry-After: 3600
        plain = {
            "Flaky": "503",
            "Hangs": "no data for 1s",
            "Drips": "no data",
            "Endless": "larger than",
            "Bomb": "larger than",
            "Loop": "redirect",
            "Chain": "redirect",
        }
        for name, words in plain.items():
            assert st[name]["error_count"] == 1, name
            assert words in st[name]["last_error"], (name, st[name]["last_error"])

        # A second pass: the moved feed is fetched at its new URL; the gone feed and the
        # rate-limited one are not contacted at all; everything else is retried.
        hits = dict(server.hits)
        d2 = await once(cfg)
        assert server.hits["/status/410"] == hits["/status/410"]
        assert limited_host.hits["/status/429"] == 1  # not asked again before Retry-After
        assert server.hits["/redirect/301"] == hits["/redirect/301"]
        assert server.hits["/new-home.xml"] == hits["/new-home.xml"] + 1
        assert server.hits["/status/503"] == hits["/status/503"] + 1
        assert len(hook.requests) == 2  # nothing repeated
        assert {r.feed for r in d2.stats.results} == {
            "Good",
            "Moved",
            "Flaky",
            "Hangs",
            "Drips",
            "Endless",
            "Bomb",
            "Loop",
            "Chain",
        }
        st2 = await states(cfg)
        assert st2["Flaky"].error_count == 2
        assert st2["Good"].error_count == 0


async def test_gone_feed_is_reenabled_by_command_or_config_edit(
    tmp_path: Path, server: HostileServer
) -> None:
    gone = {"status": 410}

    async def handler(request: web.Request) -> web.StreamResponse:
        if gone["status"] == 410:
            return web.Response(status=410)
        return web.Response(
            body=b'<?xml version="1.0"?><rss version="2.0"><channel><title>Back</title>'
            b"<item><title>Wildfire back</title><link>http://x.example/a</link><description>wildfire</description></item>"
            b"</channel></rss>",
            content_type="application/rss+xml",
        )

    server.route("/maybe.xml", handler)
    async with WebhookReceiver() as hook:
        cfg = make_config(tmp_path, [(server.url("/maybe.xml"), "Maybe")], hook.url)
        await once(cfg)
        assert (await states(cfg))["Maybe"].disabled
        res = await cli("enable", "Maybe", "--config", str(cfg.path))
        assert res.returncode == 0 and "re-enabled" in res.stdout, res.stderr
        assert not (await states(cfg))["Maybe"].disabled
        await once(cfg)  # still 410: disabled again
        assert (await states(cfg))["Maybe"].disabled
        # The user edits the feed's entry (here: a new interval): that re-enables it.
        gone["status"] = 200
        cfg2 = make_config(
            tmp_path, [(server.url("/maybe.xml"), "Maybe")], hook.url, extra_feed=", interval: 20m"
        )
        d = await once(cfg2)
        assert [r.status for r in d.stats.results] == ["ok"]
        assert not (await states(cfg2))["Maybe"].disabled
        assert len(hook.requests) == 1


async def test_error_backoff_grows_and_success_resets(
    tmp_path: Path, server: HostileServer
) -> None:
    mode = {"fail": True}
    body = Newsroom(server)._rss(Feed("/x", "X", [FIRE]))

    async def handler(request: web.Request) -> web.StreamResponse:
        if mode["fail"]:
            return web.Response(status=500, text="boom")
        return web.Response(body=body, content_type="application/rss+xml")

    server.route("/flaky.xml", handler)
    async with WebhookReceiver() as hook:
        cfg = make_config(tmp_path, [(server.url("/flaky.xml"), "Flaky")], hook.url, interval="10m")
        clock = FakeClock(datetime.now(UTC))
        gaps = []
        for _ in range(3):
            await once(cfg, clock)
            st = (await states(cfg))["Flaky"]
            assert st.next_poll is not None and st.last_poll == clock.now()
            gaps.append((st.next_poll - clock.now()).total_seconds())
        assert st.error_count == 3 and "500" in (st.last_error or "")
        # 10m, 20m, 40m (each with +-10 % jitter)
        assert 540 <= gaps[0] <= 660 and 1080 <= gaps[1] <= 1320 and 2160 <= gaps[2] <= 2640, gaps
        mode["fail"] = False
        await once(cfg)
        st = (await states(cfg))["Flaky"]
        assert st.error_count == 0 and st.last_error is None and st.http_status == 200
        assert len(hook.requests) == 1


async def test_restart_does_not_repoll_feeds_that_are_not_due(
    tmp_path: Path, server: HostileServer
) -> None:
    """Two daemon lifetimes on a fake clock: the second starts half an hour after the first poll
    and runs dispatcher passes up to just before the feed's next poll without contacting it;
    at its next poll time, and only then, it is polled again."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    room = Newsroom(server)
    feed = room.add(Feed("/f.xml", "F", [FIRE]))
    async with WebhookReceiver() as hook:
        cfg = make_config(tmp_path, [(feed, "F")], hook.url, interval="1h")
        async with Daemon(cfg, clock=clock) as d, running(d):
            await hook.wait_for(1)  # a new feed is due at once
        first = (await states(cfg))["F"]
        assert first.last_poll == clock.now() and first.next_poll is not None
        due = first.next_poll
        assert due - clock.now() >= timedelta(minutes=50)  # 1 h, give or take its jitter

        clock.advance(30 * 60)
        async with Daemon(cfg, clock=clock) as d, running(d):
            # The dispatcher and the outbox worker asleep: a scheduling pass is over.
            await clock.wait_sleepers(2)
            for _ in range(5):  # five more wake-ups, then the last moment before the feed is due
                clock.advance_to_next()
                await clock.wait_sleepers(2)
            clock.set(due - timedelta(seconds=1))
            await clock.wait_sleepers(2)
            assert server.hits["/f.xml"] == 1  # the second daemon found it not due
            clock.set(due)
            await server.traffic.wait_until(lambda: server.hits["/f.xml"] == 2)
        assert (await states(cfg))["F"].last_poll == due
        assert len(hook.requests) == 1  # polled again, nothing alerted twice


async def test_auto_interval_is_learned_and_survives_restart(
    tmp_path: Path, server: HostileServer
) -> None:
    room = Newsroom(server)
    busy = Feed(
        "/busy.xml",
        "Busy",
        [
            Item(f"b{i}", f"Item {i}", ["Text of the item."], hours_ago=i * 5 / 60)
            for i in range(20)
        ],
    )
    quiet = Feed(
        "/quiet.xml",
        "Quiet",
        [Item(f"q{i}", f"Note {i}", ["Text of the note."], hours_ago=i * 72) for i in range(5)],
    )
    async with WebhookReceiver() as hook:
        cfg = make_config(
            tmp_path,
            [(room.add(busy), "Busy"), (room.add(quiet), "Quiet")],
            hook.url,
            interval="auto",
        )
        await once(cfg)
        st = await states(cfg)
        assert st["Busy"].items_per_day is not None and st["Busy"].items_per_day > 50
        assert st["Quiet"].items_per_day is not None and st["Quiet"].items_per_day < 1
        busy_gap = (st["Busy"].next_poll - st["Busy"].last_poll).total_seconds()
        quiet_gap = (st["Quiet"].next_poll - st["Quiet"].last_poll).total_seconds()
        assert 270 <= busy_gap <= 330  # min_interval (5m) bounds a busy feed
        assert quiet_gap > 6 * 3600  # a quiet feed is polled far less often
        assert st["Busy"].interval is not None  # learned state is stored, so a restart keeps it
        stj = await status_json(cfg, code=0)
        assert stj["Busy"]["items_per_day"] > 50


async def test_items_without_links_or_guids_are_stored_once(
    tmp_path: Path, server: HostileServer
) -> None:
    def body(extra: str) -> bytes:
        return (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Bare</title>'
            "<item><title>Wildfire alert one</title><description>wildfire in the hills</description></item>"
            "<item><description>A wildfire note with no title, no link, no guid</description></item>"
            f"{extra}</channel></rss>"
        ).encode()

    current = {"body": body("")}

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=current["body"], content_type="application/rss+xml")

    server.route("/bare.xml", handler)
    async with WebhookReceiver() as hook:
        cfg = make_config(tmp_path, [(server.url("/bare.xml"), "Bare")], hook.url)
        d = await once(cfg)
        assert d.stats.new_articles == 2 and len(hook.requests) == 2
        current["body"] = body(
            "<item><title>Wildfire three</title><description>x</description></item>"
        )
        d = await once(cfg)
        assert d.stats.new_articles == 1 and len(hook.requests) == 3


async def test_future_and_unparseable_dates(tmp_path: Path, server: HostileServer) -> None:
    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Dates</title>'
        f"<item><title>Wildfire future</title><link>http://d.example/1</link><pubDate>{future}</pubDate></item>"
        "<item><title>Wildfire garbled</title><link>http://d.example/2</link><pubDate>yesterday-ish</pubDate></item>"
        "</channel></rss>"
    ).encode()
    server.feed("/dates.xml", body)
    async with WebhookReceiver() as hook:
        cfg = make_config(tmp_path, [(server.url("/dates.xml"), "Dates")], hook.url)
        d = await once(cfg)
        assert d.stats.new_articles == 2 and d.stats.errors == 0
        # Neither date can make a story "too old": both alert, and neither claims a bogus time.
        assert len(hook.requests) == 2
        for r in hook.requests:
            assert r.json()["article"]["published"] is None


@pytest.mark.skipif(os.environ.get("FEEDWATCH_SLOW_TESTS") == "0", reason="slow tests disabled")
async def test_enormous_feed(tmp_path: Path, server: HostileServer) -> None:
    items = "".join(
        f"<item><title>Story {i}</title><link>http://big.example/{i}</link><guid>g{i}</guid>"
        f"<description>Routine item number {i}{' about a wildfire' if i % 1000 == 7 else ''}.</description></item>"
        for i in range(10_000)
    )
    server.feed(
        "/big.xml",
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>{items}</channel></rss>'.encode(),
    )
    async with WebhookReceiver() as hook:
        cfg = make_config(tmp_path, [(server.url("/big.xml"), "Big")], hook.url)
        cfg = cfg.model_copy(
            update={"fetch": cfg.fetch.model_copy(update={"max_bytes": 8 * 1024 * 1024})}
        )
        d = await once(cfg)
        assert d.stats.new_articles == 10_000 and d.stats.errors == 0
        assert len(hook.requests) == 10
        d = await once(cfg)
        assert d.stats.new_articles == 0 and len(hook.requests) == 10


async def test_a_storage_failure_mid_poll_backs_off_and_loses_nothing(
    tmp_path: Path, server: HostileServer
) -> None:
    """Fault injection on a real SQLite database: the first write of new articles fails."""
    from storage.base import StorageError
    from storage.sqlite import SQLiteStorage

    class DiskFullOnce(SQLiteStorage):
        failed = False

        async def add_articles(self, articles: list[Any]) -> list[int | None]:
            if not DiskFullOnce.failed:
                DiskFullOnce.failed = True
                raise StorageError("database or disk is full (injected)")
            return await super().add_articles(articles)

    room = Newsroom(server)
    feed = room.add(Feed("/f.xml", "F", [FIRE]))
    async with WebhookReceiver() as hook:
        cfg = make_config(tmp_path, [(feed, "F")], hook.url)
        async with Daemon(cfg, storage=DiskFullOnce(cfg.storage.sqlite_path)) as d:
            report = await d.run_once()
        # Storage failing is the daemon's failure, not the feed's: nothing is held against it.
        assert report.unrecorded == 1 and report.attention and not hook.requests
        assert d.stats.errors == 0
        st = (await states(cfg))["F"]
        assert st.error_count == 0 and st.last_error is None
        assert st.next_poll is None  # still due: nothing of that poll was recorded
        # The feed's ETag was not stored with the failed poll, so the next pass sees the item again.
        assert st.etag is None
        d2 = await once(cfg)
        assert d2.stats.new_articles == 1 and len(hook.requests) == 1


async def test_links_to_pdfs_and_images_fall_back_to_the_summary(
    tmp_path: Path, server: HostileServer
) -> None:
    async def pdf(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"%PDF-1.7 binary wildfire", content_type="application/pdf")

    server.route("/report.pdf", pdf)
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Docs</title>'
        f"<item><title>Annual report</title><link>{server.url('/report.pdf')}</link>"
        "<description>The agency's wildfire report for the year.</description></item>"
        "</channel></rss>"
    ).encode()
    server.feed("/docs.xml", body)
    async with WebhookReceiver() as hook:
        cfg = make_config(tmp_path, [(server.url("/docs.xml"), "Docs")], hook.url)
        cfg = cfg.model_copy(update={"defaults": cfg.defaults.model_copy(update={"extract": True})})
        d = await once(cfg)
        assert d.stats.new_articles == 1 and len(hook.requests) == 1
        s = open_storage(cfg.storage.url)
        await s.open()
        try:
            (art,) = await s.articles_since(datetime.now(UTC) - timedelta(hours=1))
        finally:
            await s.close()
        assert art.extract_error == "the link is not a web page (application/pdf)"
        assert "%PDF" not in art.body


async def test_private_feed_password_never_shown(tmp_path: Path, server: HostileServer) -> None:
    url = server.url("/status/401").replace("http://", "http://reader:s3cret-feed-pw@")
    async with WebhookReceiver() as hook:
        cfg = make_config(tmp_path, [(url, "Private")], hook.url)
        res = await cli("run", "--once", "--config", str(cfg.path))
        assert res.returncode == 3  # the feed failed: the run needs attention
        assert "s3cret-feed-pw" not in res.stdout + res.stderr
        assert "401" in res.stderr
        for args in (("status",), ("status", "--json")):
            out = await cli(*args, "--config", str(cfg.path))
            assert out.returncode == 3 and "Private" in out.stdout
            assert "s3cret-feed-pw" not in out.stdout + out.stderr
        chk = await cli("check", "--config", str(cfg.path))
        assert chk.returncode == 0 and "***@127.0.0.1" in chk.stdout
        assert "s3cret-feed-pw" not in chk.stdout + chk.stderr
