"""Delivery end to end: the real daemon (in a subprocess where a crash matters) against loopback
feeds and receivers, SIGKILL included.

The receiver below keeps a ledger: every request with its webhook-id, and every 2xx it actually
returned. "Exactly once" means: each alert id has exactly one 2xx, and no request for an id ever
arrives after its 2xx.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import web

from monitor.clock import FakeClock
from monitor.daemon import Daemon
from monitor.settings import load_config
from storage import open_storage
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import SlackReceiver, SmtpReceiver, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"crash-test signing key, 32 bytes").decode()
N = 6


def stories(n: int, prefix: str = "valley") -> list[Item]:
    return [
        Item(
            f"{prefix}-{i}",
            f"Evacuation order for {prefix} {i}",
            [f"Officials issued an evacuation order for {prefix} {i} as the fire spread."],
            summary=f"Residents of {prefix} {i} were told to leave.",
        )
        for i in range(n)
    ]


class Ledger:
    """A webhook receiver whose behaviour the test switches: fail (503), ok, or hang first tries."""

    def __init__(self, mode: Literal["fail", "ok", "hang_first"] = "fail", port: int = 0) -> None:
        self.mode = mode
        self.port = port
        self.requests: list[tuple[str, float]] = []
        self.ok: list[tuple[str, float]] = []
        self._seq = 0.0
        self.release = asyncio.Event()
        self.changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> set[str]:
        return {i for i, _ in self.requests}

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        msg_id = request.headers.get("webhook-id", "")
        seen = msg_id in self.ids()
        await self._note(self.requests, msg_id)
        if self.mode == "fail":
            return web.Response(status=503, text="down for maintenance")
        if self.mode == "hang_first" and not seen:
            await self.release.wait()  # the client is long gone by then
            return web.Response(status=503)
        await self._note(self.ok, msg_id)
        return web.Response(status=200)

    async def _note(self, ledger: list[tuple[str, float]], msg_id: str) -> None:
        """Record in arrival order (the sequence number orders requests and 2xx answers)."""
        async with self.changed:
            self._seq += 1
            ledger.append((msg_id, self._seq))
            self.changed.notify_all()

    def assert_exactly_once(self, expected: int) -> None:
        counts = Counter(i for i, _ in self.ok)
        assert len(counts) == expected, counts
        assert all(c == 1 for c in counts.values()), counts
        first_ok = {i: t for i, t in self.ok}
        late = [(i, t) for i, t in self.requests if t > first_ok.get(i, float("inf"))]
        assert not late, f"requests after a 2xx: {late}"

    async def wait(self, cond: Any, limit: float) -> None:
        """Wait until ``cond()`` holds after some request (bounded: a hang fails the test)."""
        async with asyncio.timeout(limit), self.changed:
            await self.changed.wait_for(cond)

    async def __aenter__(self) -> Ledger:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


def write_config(tmp_path: Path, feed_url: str, channels: str, wl_channels: str, **kw: Any) -> Path:
    text = textwrap.dedent(
        f"""
        storage:
          url: {tmp_path / "fw.db"}
        fetch:
          allow_private_networks: true
          timeout: 10s
        defaults:
          extract: false
          interval: 15m
        delivery:
          drain_seconds: {kw.get("drain", 5)}
          first_retry: 0.2s
          max_backoff: {kw.get("max_backoff", "1s")}
        feeds:
          - url: {feed_url}
            name: Valley News
        channels:
        """
    )
    text += textwrap.indent(textwrap.dedent(channels).strip("\n"), "  ") + "\n"
    text += textwrap.dedent(
        f"""
        watchlists:
          - name: evacuations
            keywords: ["evacuation order"]
            channels: [{wl_channels}]
        """
    )
    path = tmp_path / "feedwatch.yaml"
    path.write_text(text)
    return path


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONUNBUFFERED"] = "1"
    return e


async def start_daemon(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", "run", *args, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env(),
        start_new_session=True,  # its own process group: SIGKILL takes its pool workers too
    )  # fmt: skip


_SEEN: dict[int, str] = {}  # log text read so far, per process id


async def wait_log(
    proc: asyncio.subprocess.Process, text: str, count: int, limit: float = 60
) -> str:
    """Read the daemon's log until ``text`` has appeared ``count`` times (bounded)."""
    assert proc.stderr is not None
    seen = _SEEN.get(proc.pid, "")
    async with asyncio.timeout(limit):
        while seen.count(text) < count:
            line = await proc.stderr.readline()
            if not line:
                raise AssertionError(f"the daemon ended before logging {text!r}:\n{seen[-2000:]}")
            seen += line.decode()
    _SEEN[proc.pid] = seen
    return seen


async def finish(proc: asyncio.subprocess.Process, limit: float = 60) -> tuple[int, str]:
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), limit)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def kill(proc: asyncio.subprocess.Process) -> str:
    # The whole process group, as a crash or an OOM kill of the service would: the daemon and its
    # extraction workers, which would otherwise hold the log pipe open.
    os.killpg(proc.pid, signal.SIGKILL)
    _out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == -signal.SIGKILL
    return err.decode()


async def states(db: Path) -> Counter[str]:
    st = open_storage(str(db))
    await st.open()
    try:
        return Counter(d.state for a in await st.list_alerts() for d in a.deliveries)
    finally:
        await st.close()


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as srv:
        yield srv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- crash tests


async def test_sigkill_while_failing_then_every_alert_exactly_once(
    tmp_path: Path, server: HostileServer
) -> None:
    feed = Newsroom(server).add(Feed("/valley.xml", "Valley", stories(N)))
    async with Ledger("fail") as rx:
        hook = f'hook: {{type: webhook, url: "{rx.url}", secret: "{SECRET}"}}'
        cfg = write_config(tmp_path, feed, hook, "hook")
        logs = ""
        proc = await start_daemon(cfg)
        try:
            # Every alert tried and refused at least twice (retries under way), then SIGKILL.
            await rx.wait(lambda: len(rx.ids()) == N and len(rx.requests) >= 2 * N, 30)
        finally:
            logs += await kill(proc)
        assert rx.ok == []
        before = await states(tmp_path / "fw.db")
        assert before["delivered"] == 0 and sum(before.values()) == N, before

        # A second daemon while the receiver still fails, killed again mid-retries.
        proc = await start_daemon(cfg)
        try:
            tried = len(rx.requests)
            await rx.wait(lambda: len(rx.requests) >= tried + N, 30)
        finally:
            logs += await kill(proc)

        rx.mode = "ok"
        proc = await start_daemon(cfg)
        try:
            await rx.wait(lambda: len({i for i, _ in rx.ok}) == N, 30)
            # Every 2xx is committed as delivered (logged after the commit): from then on no
            # row can be claimed again, so whatever else arrives later is a wrongful resend.
            await wait_log(proc, "alert delivered", N)
            proc.send_signal(signal.SIGTERM)
            code, err = await finish(proc, 30)
            err = _SEEN.pop(proc.pid, "") + err
        finally:
            if proc.returncode is None:
                proc.kill()
        logs += err
    assert code == 0, err[-2000:]
    rx.assert_exactly_once(N)
    assert (await states(tmp_path / "fw.db")) == Counter(delivered=N)
    assert SECRET not in logs and SECRET.split("_", 1)[1] not in logs


async def test_sigkill_mid_send_is_resent_by_the_next_process(
    tmp_path: Path, server: HostileServer
) -> None:
    n = 3  # within the channel's concurrency: all three are in flight at once
    feed = Newsroom(server).add(Feed("/valley.xml", "Valley", stories(n)))
    async with Ledger("hang_first") as rx:
        hook = f'hook: {{type: webhook, url: "{rx.url}", secret: "{SECRET}", timeout: 60s}}'
        cfg = write_config(tmp_path, feed, hook, "hook")
        proc = await start_daemon(cfg)
        try:
            await rx.wait(lambda: len(rx.ids()) == n, 30)  # every send is hanging now
        finally:
            await kill(proc)
        assert (await states(tmp_path / "fw.db")) == Counter(in_flight=n)

        # The lease (60 s timeout + margin) outlasts the run's drain (5 s): only taking the rows
        # back at start (their owner is dead) lets this run send them again.
        code, err = await finish(await start_daemon(cfg, "--once"), 60)
    assert code == 0, err[-2000:]
    assert "storage took back the leases of a stopped process deliveries=3" in err
    sent = Counter(i for i, _ in rx.requests)
    assert len(sent) == n and all(c == 2 for c in sent.values()), sent  # at least once: twice
    rx.assert_exactly_once(n)
    assert (await states(tmp_path / "fw.db")) == Counter(delivered=n)


# --------------------------------------------------------------------------- isolation


async def test_refusing_channel_does_not_hold_up_a_healthy_one_and_a_later_run_delivers(
    tmp_path: Path, server: HostileServer
) -> None:
    feed = Newsroom(server).add(Feed("/valley.xml", "Valley", stories(4)))
    port = free_port()
    async with Ledger("ok") as good:
        channels = f"""
        good: {{type: webhook, url: "{good.url}"}}
        later: {{type: webhook, url: "http://127.0.0.1:{port}/hook"}}
        """
        cfg = write_config(tmp_path, feed, channels, "good, later", drain=3)
        code, err = await finish(await start_daemon(cfg, "--once"))
        # Exits after the drain deadline with the refused channel's alerts still queued.
        assert code == 3, err[-2000:]
        assert "4 deliveries still queued for the next run" in err.splitlines()[-1]
        good.assert_exactly_once(4)
        assert (await states(tmp_path / "fw.db")) == Counter(delivered=4, pending=4)
        assert "cannot connect" in err

        async with Ledger("ok", port=port) as recovered:
            code, err = await finish(await start_daemon(cfg, "--once"))
            assert code == 0, err[-2000:]
            recovered.assert_exactly_once(4)
        good.assert_exactly_once(4)  # nothing sent twice to the healthy channel
    assert (await states(tmp_path / "fw.db")) == Counter(delivered=8)


# --------------------------------------------------------------------------- slack and email


async def test_slack_message_is_escaped_end_to_end(tmp_path: Path, server: HostileServer) -> None:
    hostile = Item(
        "ping",
        "Evacuation order <!channel> & <https://evil.example|click here> *now*",
        ["Officials issued an evacuation order. <!here> <@U123> visit <https://evil.example|x>."],
        summary="<!everyone> evacuation order",
    )
    feed = Newsroom(server).add(Feed("/valley.xml", "Valley", [hostile]))
    async with SlackReceiver() as slack:
        cfg = write_config(
            tmp_path, feed, f'newsroom: {{type: slack, webhook_url: "{slack.url}"}}', "newsroom"
        )
        code, err = await finish(await start_daemon(cfg, "--once"))
        assert code == 0, err[-2000:]
    assert len(slack.messages) == 1
    raw = slack.requests[0].text()
    for forbidden in ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<https://evil.example|"):
        assert forbidden not in raw, forbidden
    assert "&lt;!channel&gt;" in raw and "&amp;" in raw
    assert "/services/T0/B0/secret" not in err  # the webhook URL is a secret


async def test_email_through_the_daemon(tmp_path: Path, server: HostileServer) -> None:
    feed = Newsroom(server).add(Feed("/valley.xml", "Valley", stories(2)))
    async with SmtpReceiver(security="none") as smtp:
        channels = f"""
        editors: {{type: email, host: 127.0.0.1, port: {smtp.port}, security: none,
                   from: alerts@example.org, to: [desk@example.org, night@example.org]}}
        """
        cfg = write_config(tmp_path, feed, channels, "editors")
        code, err = await finish(await start_daemon(cfg, "--once"))
        assert code == 0, err[-2000:]
        mails = await smtp.wait_for(2)
    subjects = sorted(str(m.message["Subject"]) for m in mails)
    assert all("evacuations" in s for s in subjects), subjects
    assert any("Evacuation order for valley 0" in s for s in subjects), subjects
    msg = mails[0].message
    assert msg.get_content_type() == "multipart/alternative"
    assert {p.get_content_type() for p in msg.iter_parts()} == {"text/plain", "text/html"}
    assert (await states(tmp_path / "fw.db")) == Counter(delivered=2)


# --------------------------------------------------------------------------- digests


async def test_digest_channel_beside_an_immediate_one(
    tmp_path: Path, server: HostileServer
) -> None:
    """The digest waits for its period's end on the injected clock; the immediate channel
    delivers at once. Time moves only when the test moves it: no race with the machine."""
    feed = Newsroom(server).add(Feed("/valley.xml", "Valley", stories(5)))
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, 20, tzinfo=UTC))
    async with WebhookReceiver() as now_rx, WebhookReceiver() as digest_rx:
        channels = f"""
        now: {{type: webhook, url: "{now_rx.url}"}}
        daily: {{type: webhook, url: "{digest_rx.url}", digest: 1m}}
        """
        cfg = load_config(write_config(tmp_path, feed, channels, "now, daily", drain="2m"), env={})
        async with Daemon(cfg, clock=clock) as daemon:
            run = asyncio.create_task(daemon.run_once())
            await now_rx.wait_for(5, timeout=60)  # a bound against hangs, not a timing
            assert digest_rx.requests == []  # the period (until 09:01:00) has not ended
            clock.set(datetime(2026, 3, 2, 9, 1, 0, tzinfo=UTC))
            (req,) = await digest_rx.wait_for(1, timeout=60)
            report = await asyncio.wait_for(run, 60)
    assert not report.attention, report.summary()
    assert len(now_rx.requests) == 5 and all(r.json()["type"] == "match" for r in now_rx.requests)
    body = req.json()
    assert body["type"] == "digest" and len(body["alerts"]) == 5
    assert {a["id"] for a in body["alerts"]} == {r.json()["id"] for r in now_rx.requests}
