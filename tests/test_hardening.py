"""The hostile-input audit, kept as tests: pathological pages, amplification, storage faults,
secrets in every output, terminal escapes. Each case runs beside a healthy feed on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.clock import FakeClock
from monitor.daemon import Daemon
from monitor.settings import Config, load_config
from storage import open_storage
from storage.base import FeedUpdate, StorageError
from storage.sqlite import SQLiteStorage
from tests.harness import DaemonProcess, feedwatch
from tests.hostile_server import HostileServer, attribute_trap
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import SlackReceiver, SmtpReceiver, WebhookReceiver

FIRE = Item(
    "valley-fire",
    "Evacuation order for the valley",
    ["Officials issued an evacuation order for the valley as the wildfire spread overnight."],
    summary="Residents were told to leave.",
)


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as srv:
        yield srv


def write(tmp_path: Path, body: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "feedwatch.yaml"
    path.write_text(textwrap.dedent(body))
    return load_config(path, env=env or {})


async def test_pathological_pages_never_hold_the_pool_and_keep_their_summary(
    tmp_path: Path, server: HostileServer
) -> None:
    """Two pages built to keep lxml busy for minutes, beside a healthy feed: the workers that
    take them are killed at the extraction deadline, the articles keep the feed's summary with
    the reason, and the healthy feed's alert is delivered in the same pass."""
    page = attribute_trap()

    async def slow(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html")

    server.route("/trap/1.html", slow)
    server.route("/trap/2.html", slow)
    traps = [
        Item("t1", "Evacuation order one", [], summary="Trap one: evacuation order.",
             link=server.url("/trap/1.html")),
        Item("t2", "Evacuation order two", [], summary="Trap two: evacuation order.",
             link=server.url("/trap/2.html")),
    ]  # fmt: skip
    room = Newsroom(server)
    healthy = room.add(Feed("/healthy.xml", "Healthy", [FIRE]))
    hostile = room.add(Feed("/hostile.xml", "Hostile", traps))
    async with WebhookReceiver() as hook:
        cfg = write(
            tmp_path,
            f"""
            storage: {{url: {tmp_path / "fw.db"}}}
            fetch: {{allow_private_networks: true}}
            extraction: {{timeout: 2s, workers: 2}}
            feeds:
              - {{url: "{healthy}", name: Healthy}}
              - {{url: "{hostile}", name: Hostile}}
            channels: {{hook: {{type: webhook, url: "{hook.url}"}}}}
            watchlists: [{{name: w, keywords: ["evacuation order"], channels: [hook]}}]
            """,
        )
        async with Daemon(cfg) as daemon:
            report = await daemon.run_once()
        assert daemon.pool.kills == 2  # each trap's worker was stopped and replaced
        assert report.failed_feeds == [] and len(hook.requests) == 3
    storage = open_storage(cfg.storage.url)
    await storage.open()
    try:
        arts = {a.title: a for a in await storage.articles_since(datetime(2000, 1, 1, tzinfo=UTC))}
    finally:
        await storage.close()
    assert "wildfire spread" in arts["Evacuation order for the valley"].body
    for title, summary in (
        ("Evacuation order one", "Trap one"),
        ("Evacuation order two", "Trap two"),
    ):
        assert arts[title].extract_error == "extraction took longer than 2s"
        assert arts[title].body.startswith(summary)
    # ... and `status` says so, per feed.
    _code, out, _err = await feedwatch(
        "status", "--json", "--config", str(tmp_path / "feedwatch.yaml")
    )
    feeds = {f["name"]: f for f in json.loads(out)["feeds"]}
    assert feeds["Hostile"]["pages_not_extracted_24h"] == 2
    assert feeds["Hostile"]["last_extract_error"] == "extraction took longer than 2s"
    assert feeds["Healthy"]["pages_not_extracted_24h"] == 0


async def test_a_feed_of_thousands_of_undated_items_costs_a_bounded_number_of_pages(
    tmp_path: Path, server: HostileServer
) -> None:
    n = 2000
    items = "".join(
        f"<item><title>Story {i}</title><link>{server.url(f'/p/{i}.html')}</link>"
        f"<description>Evacuation order number {i}.</description></item>"
        for i in range(n)
    )
    huge_title = "Evacuation order " + "x" * 1_000_000
    items += f"<item><title>{huge_title}</title><link>{server.url('/p/huge.html')}</link></item>"
    server.feed(
        "/many.xml",
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Many</title>{items}'
        "</channel></rss>".encode(),
    )
    async with WebhookReceiver() as hook:
        cfg = write(
            tmp_path,
            f"""
            storage: {{url: {tmp_path / "fw.db"}}}
            fetch: {{allow_private_networks: true, max_bytes: 20MB}}
            defaults: {{max_pages_per_poll: 25}}
            feeds: [{{url: "{server.url("/many.xml")}", name: Many}}]
            channels: {{hook: {{type: webhook, url: "{hook.url}"}}}}
            watchlists: [{{name: w, keywords: ["evacuation order"], channels: [hook, ]}}]
            """,
        )
        async with Daemon(cfg) as daemon:
            await daemon.run_once()
        (result,) = daemon.stats.results
    pages = sum(n for path, n in server.hits.items() if path.startswith("/p/"))
    assert pages == 25  # the cap, not 2,001 page fetches in one poll
    assert result.new == n + 1 and result.pages_capped == n + 1 - 25
    assert len(hook.requests) == n + 1
    big = [
        r.json()
        for r in hook.requests
        if r.json()["article"]["title"].startswith("Evacuation order x")
    ]
    assert len(big[0]["article"]["title"]) == 500  # titles are capped where they are stored


class SwitchableStorage(SQLiteStorage):
    """A real SQLite database whose writes can be made to fail, like a disk turned read-only."""

    broken = False

    async def update_feed(self, feed_id: int, update: FeedUpdate) -> None:
        self._check()
        await super().update_feed(feed_id, update)

    async def update_feeds(self, updates: list[tuple[int, FeedUpdate]]) -> None:
        self._check()
        await super().update_feeds(updates)

    async def add_articles(self, articles: list[Any]) -> list[int | None]:
        self._check()
        return await super().add_articles(articles)

    def _check(self) -> None:
        if self.broken:
            raise StorageError("attempt to write a readonly database (injected)")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def settle(daemon: Daemon, clock: FakeClock, seconds: float = 0) -> None:
    """Move the clock, then wait until the dispatcher has run a round since, no poll is in
    flight, and it waits again (nothing else can happen until the clock moves)."""
    before = daemon.rounds if seconds else 0
    clock.advance(seconds)
    try:
        async with asyncio.timeout(30):
            while (  # noqa: ASYNC110 - the daemon's own state, no event to wait on
                daemon.rounds <= before or daemon._inflight or not daemon.waiting
            ):
                await asyncio.sleep(0)
    except TimeoutError:
        raise AssertionError(
            f"the daemon did not settle: rounds={daemon.rounds} (before {before}) "
            f"in_flight={len(daemon._inflight)} waiting={daemon.waiting}"
        ) from None


async def test_a_read_only_database_pauses_polling_instead_of_hammering_the_feed(
    tmp_path: Path, server: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    Newsroom(server).add(Feed("/fast.xml", "Fast", [FIRE], etag=None))
    cfg = write(
        tmp_path,
        f"""
        storage: {{url: {tmp_path / "fw.db"}}}
        fetch: {{allow_private_networks: true}}
        defaults: {{interval: 5s, extract: false}}
        server: {{listen: "127.0.0.1:{free_port()}"}}
        feeds: [{{url: "{server.url("/fast.xml")}", name: Fast}}]
        """,
    )
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    storage = SwitchableStorage(tmp_path / "fw.db")
    stop = asyncio.Event()
    async with Daemon(cfg, storage=storage, clock=clock) as daemon:
        run = asyncio.create_task(daemon.run(stop))
        await settle(daemon, clock)
        assert server.hits["/fast.xml"] == 1
        storage.broken = True
        for _ in range(20):  # 20 seconds of a read-only database, one second at a time
            await settle(daemon, clock, 1)
        during = server.hits["/fast.xml"] - 1
        # `status` shows it: the daemon's own health says storage is failing.
        code, out, err = await feedwatch("status", "--config", str(cfg.path))
        assert code == 3 and "daemon unhealthy: writes failing since" in err, (out, err)
        assert "UNHEALTHY" in out
        storage.broken = False
        for _ in range(70):  # the next trial poll succeeds, then the feed's own interval rules
            await settle(daemon, clock, 1)
        stop.set()
        await asyncio.wait_for(run, 30)
    # At 5 s intervals 20 s would be 4 polls; without the pause each failed poll was retried at
    # once (hundreds). Trial polls back off 1, 2, 4, 8 s: a handful.
    assert 2 <= during <= 6, during
    paused = [r for r in caplog.records if r.getMessage().startswith("storage failing")]
    resumed = [r for r in caplog.records if r.getMessage().startswith("storage answers again")]
    assert len(paused) == 1 and len(resumed) == 1  # one line per change of state
    states = {s.key: s for s in await _states(cfg)}
    assert all(s.error_count == 0 for s in states.values())  # not held against the feed
    assert server.hits["/fast.xml"] - 1 - during >= 10  # polling resumed on its interval


async def _states(cfg: Config) -> list[Any]:
    st = open_storage(cfg.storage.url)
    await st.open()
    try:
        return await st.list_feeds()
    finally:
        await st.close()


async def test_no_secret_appears_in_any_output_or_stored_byte(
    tmp_path: Path, server: HostileServer
) -> None:
    """Credentials in a feed URL, secrets from ${VAR} in channels and in a feed's name: none
    shows in logs, `status`, `alerts`, `check`, the database, or what receivers get."""
    feed_pw, name_secret, smtp_pw = "feed-Pw-7Hq2", "Desk-Secret-91xq", "smtp-pw-x81"
    relative = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Private</title>'
        b"<item><title>Evacuation order issued</title><link>/news/private-1.html</link>"
        b"<description>An evacuation order was issued.</description></item></channel></rss>"
    )

    async def private_feed(request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "") == "":
            return web.Response(status=401)
        return web.Response(body=relative, content_type="application/rss+xml")

    server.route("/private.xml", private_feed)
    Newsroom(server)._page(Item("private-1", "Evacuation order issued", ["An evacuation order."]))
    feed_url = server.url("/private.xml").replace("http://", f"http://reader:{feed_pw}@")
    env = {"NAME": name_secret, "SMTP_PASSWORD": smtp_pw}
    async with WebhookReceiver() as hook, SlackReceiver() as slack:
        async with SmtpReceiver(security="none", username="u", password=smtp_pw) as smtp:
            (tmp_path / "feedwatch.yaml").write_text(
                textwrap.dedent(
                    f"""
                    storage: {{url: {tmp_path / "fw.db"}}}
                    fetch: {{allow_private_networks: true}}
                    feeds: [{{url: "{feed_url}", name: "Desk ${{NAME}}"}}]
                    channels:
                      hook: {{type: webhook, url: "{hook.url}", secret: whsec_c2VjcmV0LWtleS0xMjM0NTY3OA==}}
                      chat: {{type: slack, webhook_url: "{slack.url}"}}
                      mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, security: none,
                              username: u, password: "${{SMTP_PASSWORD}}", from: a@example.org,
                              to: [desk@example.org]}}
                    watchlists: [{{name: w, keywords: ["evacuation order"], channels: [hook, chat, mail]}}]
                    """
                )
            )
            cfg_path = str(tmp_path / "feedwatch.yaml")
            outputs: list[str] = []
            for args in (
                ("run", "--once", "--log-level", "debug"),
                ("status",),
                ("status", "--json"),
                ("alerts",),
                ("alerts", "--json"),
                ("check",),
            ):
                code, out, err = await feedwatch(*args, "--config", cfg_path, env=env)
                assert code == 0, (args, err)
                outputs += [out, err]
            mails = await smtp.wait_for(1)
    assert len(hook.requests) == 1 and len(slack.messages) == 1
    outputs += [r.body.decode() + json.dumps(dict(r.headers)) for r in hook.requests]
    outputs += [r.text() for r in slack.requests]
    outputs += [m.message.as_string() for m in mails]
    with sqlite3.connect(tmp_path / "fw.db") as db:
        outputs.append("\n".join(db.iterdump()))
    everything = "\n".join(outputs)
    for secret in (feed_pw, name_secret, smtp_pw, "c2VjcmV0LWtleS0xMjM0NTY3OA=="):
        assert secret not in everything, secret
    payload = hook.requests[0].json()
    assert payload["article"]["url"] == server.url("/news/private-1.html")  # no userinfo
    assert payload["article"]["feed"] == "Desk ***"


async def test_terminal_escapes_never_reach_a_terminal(
    tmp_path: Path, server: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    nasty = "Evacuation order \x1b[2J\x1b]0;pwned\x07 \u202egnp.exe\x9b31m end"
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Esc\x1b[31ml</title>'
        f"<item><title>{nasty}</title><link>{server.url('/x.html')}</link>"
        "<description>An evacuation order.</description></item></channel></rss>"
    ).encode()
    server.feed("/esc.xml", body)
    (tmp_path / "feedwatch.yaml").write_text(
        textwrap.dedent(
            f"""
            storage: {{url: {tmp_path / "fw.db"}}}
            fetch: {{allow_private_networks: true}}
            defaults: {{extract: false}}
            feeds: [{{url: "{server.url("/esc.xml")}"}}]
            channels: {{term: {{type: console}}}}
            watchlists: [{{name: w, keywords: ["evacuation order"], channels: [term]}}]
            """
        )
    )
    cfg = str(tmp_path / "feedwatch.yaml")
    texts = []
    for args in (("run", "--once"), ("alerts",), ("status",)):
        _code, out, err = await feedwatch(*args, "--config", cfg)
        texts += [out, err]
    joined = "\n".join(texts)
    assert "Evacuation order" in joined and "end" in joined
    for bad in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert bad not in joined, repr(bad)


async def test_startup_errors_exit_with_their_code_instead_of_hanging(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "feedwatch.yaml").write_text(
            f"storage: {{url: {tmp_path / 'fw.db'}}}\nserver: {{listen: '127.0.0.1:{port}'}}\n"
        )
        code, _out, err = await feedwatch(
            "run", "--once", "--config", str(tmp_path / "feedwatch.yaml")
        )
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err
    (tmp_path / "db-dir").mkdir()
    (tmp_path / "bad.yaml").write_text(f"storage: {{url: {tmp_path / 'db-dir'}}}\n")
    code, _out, err = await feedwatch("run", "--once", "--config", str(tmp_path / "bad.yaml"))
    assert code == 2 and "is a directory, not a database file" in err


async def test_a_hostile_config_sent_by_sighup_is_refused_without_growing(tmp_path: Path) -> None:
    path = tmp_path / "feedwatch.yaml"
    path.write_text(f"storage: {{url: {tmp_path / 'fw.db'}}}\nfeeds: []\n")
    async with DaemonProcess("run", "--config", str(path)) as proc:
        await proc.wait_for_log("daemon started")
        assert proc.proc is not None
        before = _rss_kb(proc.proc.pid)
        lines = ['a0: &a0 ["lol"]'] + [
            f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)
        ]
        path.write_text("\n".join(lines) + "\nfeeds: *a9\n")
        proc.send_signal(1)  # SIGHUP
        (line,) = await proc.wait_for_log("reload refused")
        assert "expands to more than" in line
        grown = _rss_kb(proc.proc.pid) - before
        proc.send_signal(15)
        assert await proc.wait(30) == 0
    assert grown < 20_000, f"grew by {grown} kB"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
