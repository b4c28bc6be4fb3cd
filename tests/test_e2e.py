"""The whole pipeline against real loopback servers and a real SQLite file.

feeds (HostileServer) -> fetch -> parse -> extract (process pool) -> store -> match -> outbox ->
webhook (WebhookReceiver), verified with an independent Standard Webhooks implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.daemon import Daemon
from monitor.settings import Config, load_config
from storage import open_storage
from tests.harness import DaemonProcess, feedwatch
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import ReceivedRequest, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"an independent test key, 32 byte").decode()


def verify_standard_webhook(
    secret: str, req: ReceivedRequest, tolerance: float = 300
) -> dict[str, Any]:
    """Standard Webhooks verification written from the spec, independent of feedwatch's code."""
    msg_id = req.headers["webhook-id"]
    ts = req.headers["webhook-timestamp"]
    assert abs(time.time() - int(ts)) < tolerance, "timestamp outside tolerance"
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = msg_id.encode() + b"." + ts.encode() + b"." + req.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [
        part.split(",", 1)[1]
        for part in req.headers["webhook-signature"].split(" ")
        if part.startswith("v1,")
    ]
    assert any(hmac.compare_digest(expected, g) for g in given), "signature does not verify"
    payload = req.json()
    assert payload["id"] == msg_id
    return payload


WILDFIRE = Item(
    "hill-villages",
    "Villages evacuated as flames spread",
    [
        "Civil protection officials issued an evacuation order for three hill villages on Tuesday night "
        "as wildfires driven by dry winds moved down the valley.",
        "About 1,200 residents were taken by bus to a sports hall in the market town.",
    ],
    summary="Residents of three villages were told to leave overnight.",
)
CHROME_ONLY = Item(
    "cycle-lanes",
    "Council approves new cycle lanes",
    [
        "The city council approved protected cycle lanes along the main avenue after two years of "
        "consultations and a petition signed by 6,000 residents.",
        "Shop owners had asked for delivery bays, and the final plan includes one on each block.",
    ],
    summary="Councillors voted 7-4 for the plan.",
)
DRILL = Item(
    "school-drill",
    "Fire brigade runs drill at primary school",
    [
        "The fire brigade ran a planned drill at the primary school on Friday, timing how long 340 pupils "
        "took to leave after a simulated evacuation order.",
        "Teachers said the exercise went well and will be repeated in the spring term.",
    ],
)
ARCTIC = Item(
    "arctic-smoke",
    "Smoke reaches the Arctic",
    [
        "Smoke plumes from boreal wildfires in Canada and Siberia were detected over Svalbard, "
        "according to satellite images analysed by atmospheric scientists this week.",
        "Black carbon settling on snow darkens the surface and speeds up melting.",
    ],
    guid="urn:arctic",
)
OLD = Item(
    "old-heatwave",
    "Heatwave raises wildfire risk",
    ["Meteorologists warned of a high wildfire risk across the south for a fifth day of heat."],
    hours_ago=240,
)


def config_text(db: Path, feeds: list[tuple[str, str | None]], hook: str, **extra: Any) -> str:
    feed_lines = "\n".join(
        f"  - url: {url}" + (f"\n    name: {name}" if name else "") for url, name in feeds
    )
    watch = extra.get(
        "watchlist",
        """
  - name: wildfire-evacuations
    keywords: [wildfire*, "evacuation order"]
    exclude: [drill*]
    channels: [hook]
""",
    )
    return textwrap.dedent(
        f"""
storage:
  url: {db}
fetch:
  allow_private_networks: true
  timeout: 10s
extraction:
  workers: 2
defaults:
  interval: 15m
delivery:
  drain_seconds: {extra.get("drain", 5)}
  first_retry: 0.2s
feeds:
{feed_lines}
channels:
  hook: {{type: webhook, url: "{hook}", secret: "{SECRET}"}}
watchlists:
{watch}
"""
    )


def write_config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "feedwatch.yaml"
    path.write_text(text)
    return load_config(path, env={})


async def run_once(cfg: Config) -> Daemon:
    async with Daemon(cfg) as daemon:
        await daemon.run_once()
    return daemon


@pytest.fixture
async def server() -> Any:
    async with HostileServer() as srv:
        yield srv


async def test_once_alerts_exactly_the_matching_articles(
    tmp_path: Path, server: HostileServer
) -> None:
    room = Newsroom(server)
    world = room.add(Feed("/world.xml", "Test Gazette World", [WILDFIRE, CHROME_ONLY, DRILL, OLD]))
    # The same wildfire story again in a second feed, under a tracking-parameter URL.
    syndicated = Item(
        "hill-villages",
        "Syndicated: villages evacuated",
        [],
        link=room.page_url("hill-villages") + "?utm_source=rss&utm_medium=feed&fbclid=abc#top",
    )
    science = room.add(Feed("/science.atom", "Test Science", [ARCTIC, syndicated], atom=True))
    async with WebhookReceiver() as hook:
        cfg = write_config(
            tmp_path, config_text(tmp_path / "fw.db", [(world, "World"), (science, None)], hook.url)
        )
        daemon = await run_once(cfg)
        assert daemon.stats.errors == 0
        payloads = [verify_standard_webhook(SECRET, r) for r in hook.requests]
        titles = sorted(p["article"]["title"] for p in payloads)
        # Wildfire story once (not again via the syndicated copy), the Arctic story; nothing from the
        # cycle-lane page (its chrome mentions wildfires), the drill (excluded), or the old story.
        assert len(payloads) == 2, titles
        assert any(
            t in ("Villages evacuated as flames spread", "Syndicated: villages evacuated")
            for t in titles
        )
        assert "Smoke reaches the Arctic" in titles
        arctic = next(p for p in payloads if p["article"]["title"] == "Smoke reaches the Arctic")
        assert set(arctic) == {"type", "id", "watchlist", "article", "matches"}
        assert arctic["type"] == "match" and arctic["watchlist"] == "wildfire-evacuations"
        assert set(arctic["article"]) == {"url", "title", "published", "feed", "summary"}
        assert (
            arctic["article"]["feed"] == "Test Science"
        )  # the feed's own title when none is configured
        assert arctic["article"]["published"].endswith("Z")
        m = arctic["matches"][0]
        assert set(m) == {"kind", "term", "text", "snippet"}
        assert (
            m["kind"] == "keyword" and m["term"] == "wildfire*" and m["text"].lower() == "wildfires"
        )
        assert "boreal wildfires" in m["snippet"]

        # The old story is stored, but not alerted.
        storage = open_storage(cfg.storage.url)
        await storage.open()
        try:
            stored = await storage.articles_since(daemon_start(), limit=100)
            titles_stored = {a.title for a in stored}
            assert "Heatwave raises wildfire risk" in titles_stored
            assert "Council approves new cycle lanes" in titles_stored
            cycle = next(a for a in stored if a.title == "Council approves new cycle lanes")
            assert "protected cycle lanes" in cycle.body and "Most read" not in cycle.body
            assert "FEMA" not in cycle.body and "Wildfire" not in cycle.body
            assert len(stored) == 5  # 4 + Arctic; the syndicated copy is the same article
        finally:
            await storage.close()

        # A second run: conditional GETs answer 304, nothing is sent again.
        hits_before = dict(server.hits)
        daemon2 = await run_once(cfg)
        assert len(hook.requests) == 2
        assert daemon2.stats.new_articles == 0 and daemon2.stats.alerts == 0
        assert {r.status for r in daemon2.stats.results} == {"not_modified"}
        for path in ("/world.xml", "/science.atom"):
            assert server.hits[path] == hits_before[path] + 1
        conditional = [r for r in server.requests if r.path == "/world.xml"][-1]
        assert conditional.headers.get("If-None-Match") == '"v1"'
        # Pages are fetched once per new article, never again; the 10-day-old story's page is
        # not fetched at all (it can never alert).
        assert server.hits["/news/hill-villages.html"] == 1
        assert server.hits["/news/old-heatwave.html"] == 0


def daemon_start() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(hours=1)


async def test_broken_feed_beside_good_ones(tmp_path: Path, server: HostileServer) -> None:
    room = Newsroom(server)
    good = room.add(Feed("/good.xml", "Good", [WILDFIRE]))
    server.feed(
        "/junk.xml", b"<rss><channel><item><title>unterminated", content_type="application/rss+xml"
    )
    server.feed(
        "/html.xml",
        b"<html><head><link rel='alternate' type='application/rss+xml' href='/real.xml'></head><body>hi</body></html>",
        content_type="text/html",
    )
    feeds = [
        (good, "Good"),
        (server.url("/junk.xml"), "Junk"),
        (server.url("/status/500"), "Down"),
        (server.url("/html.xml"), "Page"),
    ]
    async with WebhookReceiver() as hook:
        cfg = write_config(tmp_path, config_text(tmp_path / "fw.db", feeds, hook.url))
        daemon = await run_once(cfg)
        assert len(hook.requests) == 1
        verify_standard_webhook(SECRET, hook.requests[0])
        by_name = {r.feed: r for r in daemon.stats.results}
        assert by_name["Good"].status == "ok"
        assert by_name["Down"].status == "error" and "500" in (by_name["Down"].error or "")
        assert by_name["Page"].status == "error" and "/real.xml" in (by_name["Page"].error or "")

    code, out, err = await feedwatch("status", "--json", "--config", str(cfg.path))
    assert code == 3, err  # two feeds failing: attention
    assert err == "feedwatch: 2 feeds failing\n"
    status = {f["name"]: f for f in json.loads(out)["feeds"]}
    assert set(status["Good"]) == {
        "name",
        "url",
        "http_status",
        "last_poll",
        "next_poll",
        "error_count",
        "last_error",
        "disabled",
        "disabled_reason",
        "items_per_day",
        "state",
        "last_polled_by",
        "pages_not_extracted_24h",
        "last_extract_error",
    }
    assert status["Good"]["error_count"] == 0 and status["Good"]["http_status"] == 200
    assert status["Down"]["error_count"] == 1 and status["Down"]["http_status"] == 500
    assert "500" in status["Down"]["last_error"]
    assert status["Page"]["error_count"] == 1 and "real.xml" in status["Page"]["last_error"]


async def test_extraction_failure_falls_back_to_summary(
    tmp_path: Path, server: HostileServer
) -> None:
    room = Newsroom(server)
    missing = Item(
        "missing",
        "Ministry statement",
        [],
        summary="A wildfire near the coast is under control.",
        page_status=404,
    )
    feed = room.add(Feed("/f.xml", "F", [missing]))
    async with WebhookReceiver() as hook:
        cfg = write_config(tmp_path, config_text(tmp_path / "fw.db", [(feed, "F")], hook.url))
        await run_once(cfg)
        assert len(hook.requests) == 1
        payload = verify_standard_webhook(SECRET, hook.requests[0])
        assert payload["matches"][0]["text"] == "wildfire"
    storage = open_storage(cfg.storage.url)
    await storage.open()
    try:
        (art,) = await storage.articles_since(daemon_start())
        assert art.extract_error is not None and "404" in art.extract_error
    finally:
        await storage.close()


async def test_require_and_feed_filter(tmp_path: Path, server: HostileServer) -> None:
    room = Newsroom(server)
    a = room.add(Feed("/a.xml", "A", [WILDFIRE, ARCTIC]))
    b = room.add(
        Feed(
            "/b.xml",
            "B",
            [
                Item(
                    "b1",
                    "Wildfire in the hills",
                    ["A wildfire burned in the hills near the capital."],
                )
            ],
        )
    )
    watch = """
  - name: svalbard
    keywords: [wildfire*]
    require: [Svalbard]
    feeds: [A]
    channels: [hook]
"""
    async with WebhookReceiver() as hook:
        cfg = write_config(
            tmp_path,
            config_text(tmp_path / "fw.db", [(a, "A"), (b, "B")], hook.url, watchlist=watch),
        )
        await run_once(cfg)
        payloads = [verify_standard_webhook(SECRET, r) for r in hook.requests]
        assert [p["article"]["title"] for p in payloads] == ["Smoke reaches the Arctic"]
        kinds = {m["kind"] for m in payloads[0]["matches"]}
        assert "keyword" in kinds


async def test_restart_alerts_nothing_twice_even_without_validators(
    tmp_path: Path, server: HostileServer
) -> None:
    room = Newsroom(server)
    feed = room.add(Feed("/n.xml", "N", [WILDFIRE, ARCTIC], etag=None))
    async with WebhookReceiver() as hook:
        cfg = write_config(tmp_path, config_text(tmp_path / "fw.db", [(feed, "N")], hook.url))
        await run_once(cfg)
        assert len(hook.requests) == 2
        # Same body, no ETag: detected as unchanged before parsing.
        d2 = await run_once(cfg)
        assert [r.status for r in d2.stats.results] == ["unchanged"]
        # A changed body with the same items plus one new: only the new one alerts.
        extra = Item(
            "new-fire",
            "New fire reported",
            ["A new wildfire was reported near the border on Sunday."],
        )
        room.add(Feed("/n.xml", "N", [extra, WILDFIRE, ARCTIC], etag=None))
        d3 = await run_once(cfg)
        assert d3.stats.new_articles == 1
        assert len(hook.requests) == 3
        assert (
            verify_standard_webhook(SECRET, hook.requests[2])["article"]["title"]
            == "New fire reported"
        )
        ids = [r.headers["webhook-id"] for r in hook.requests]
        assert len(set(ids)) == 3


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def test_cli_run_once_then_nothing_new(tmp_path: Path, server: HostileServer) -> None:
    room = Newsroom(server)
    feed = room.add(Feed("/w.xml", "W", [WILDFIRE, CHROME_ONLY]))
    async with WebhookReceiver() as hook:
        path = tmp_path / "feedwatch.yaml"
        path.write_text(config_text(tmp_path / "fw.db", [(feed, "W")], hook.url))
        for expected in (1, 1):
            code, out, err = await feedwatch("run", "--once", "--config", str(path))
            assert code == 0, err
            assert len(hook.requests) == expected
            assert SECRET not in err and SECRET not in out
        assert "feed polled" in err
        verify_standard_webhook(SECRET, hook.requests[0])


async def test_sigterm_stops_running_daemon_cleanly(tmp_path: Path, server: HostileServer) -> None:
    """SIGTERM while a feed hangs: the daemon stops on its own (exit 0), it is not killed. The
    shutdown's time budget (10 s) is the daemon's own, logged as `daemon stopped seconds=`."""
    room = Newsroom(server)
    feed = room.add(Feed("/w.xml", "W", [WILDFIRE]))
    # A second feed that hangs: shutdown must not wait for it forever.
    async with WebhookReceiver() as hook:
        path = tmp_path / "feedwatch.yaml"
        path.write_text(
            config_text(tmp_path / "fw.db", [(feed, "W"), (server.url("/hang"), "Hang")], hook.url)
        )
        async with DaemonProcess("run", "--config", str(path)) as proc:
            await hook.wait_for(1, timeout=60)
            await proc.wait_for_log("alert delivered")
            assert server.hits["/hang"] >= 1
            proc.send_signal(signal.SIGTERM)
            code = await proc.wait(timeout=30)
        assert code == 0, proc.log[-2000:]
        await proc.wait_for_log("daemon stopped")
        verify_standard_webhook(SECRET, hook.requests[0])


async def test_sighup_reloads_feeds_and_watchlists(tmp_path: Path, server: HostileServer) -> None:
    room = Newsroom(server)
    first = room.add(Feed("/first.xml", "First", [CHROME_ONLY]))
    second = room.add(Feed("/second.xml", "Second", [ARCTIC]))
    quiet_watch = """
  - name: cycling
    keywords: [velodrome]
    channels: [hook]
"""
    async with WebhookReceiver() as hook:
        path = tmp_path / "feedwatch.yaml"
        path.write_text(
            config_text(tmp_path / "fw.db", [(first, "First")], hook.url, watchlist=quiet_watch)
        )
        async with DaemonProcess("run", "--config", str(path)) as proc:
            await proc.wait_for_log("feed polled feed=First")
            # A broken edit is refused; the daemon keeps running on the old config.
            path.write_text("watchlists: [unclosed\n")
            proc.send_signal(signal.SIGHUP)
            await proc.wait_for_log("reload refused")
            # A good edit: a new feed and a watchlist that matches it, live.
            path.write_text(
                config_text(tmp_path / "fw.db", [(first, "First"), (second, "Second")], hook.url)
            )
            proc.send_signal(signal.SIGHUP)
            (req,) = await hook.wait_for(1, timeout=30)
            assert (
                verify_standard_webhook(SECRET, req)["article"]["title"]
                == "Smoke reaches the Arctic"
            )
            assert server.hits["/first.xml"] == 1  # not re-polled: not due
            proc.send_signal(signal.SIGTERM)
            code = await proc.wait(timeout=30)
        assert code == 0
        log = proc.log
        assert "reload refused; keeping the running config" in log and "YAML syntax error" in log
        assert "config reloaded changed=watchlists,feeds" in log
