"""Hardening: issue 9's four "Done when" checks, tried as a new user would.

    python bench/hardening.py                # all four checks, about 3-4 minutes
    python bench/hardening.py --only 2,3     # some of them

Everything runs on 127.0.0.1: real ``feedwatch`` processes (``python -m monitor ...`` from this
checkout, each in its own process group, with a config written to a temporary directory), and
loopback aiohttp servers this script starts in its own process (feeds, article pages, a webhook
receiver that records every request with its arrival time).

1. Pathological article pages (one element with 60,000 attributes each: lxml's time grows
   quadratically with them) and a page of 10,000 short links, in a hostile feed beside a healthy
   one, with ``extraction.timeout`` 10s and two workers. ``run --once``: process start to the
   healthy feed's alert at the receiver, against baseline runs of the same config without the
   hostile feed (before and after), in four orderings: as it comes; the healthy feed answering
   2 s late (the traps reach the pool first), with the traps on its host, on another host name
   (``localhost``), and six traps of the one feed on two other names (``localhost`` and this
   machine's name, used only when they resolve to 127.0.0.1 alone). Then the daemon ``run``,
   SIGTERM while two workers are on traps: seconds to exit and the exit code. The traps keep
   their summary and the reason (database, logs, ``status``).
2. A YAML alias bomb (9 levels x 9 aliases) and a 1,000-level nested list: ``check`` wall time,
   exit code, first error line and the child's peak RSS (``wait4``'s ``ru_maxrss``), beside
   ``python -c pass`` and ``check`` of a small valid config.
3. Credentials in a feed URL (the server requires them) and a random ``${FW_SECRET}``: misplaced
   in ``fetch.timeout`` and an email ``to`` for one ``check``, then as the webhook secret for
   ``check``, ``run --once``, ``status [--json]``, ``alerts [--json]``. Every stdout/stderr, the
   webhook bodies and headers, and the SQLite file bytes (with -wal/-shm) are searched for each
   secret value (and the Authorization header's base64): counts only, never values.
4. A running daemon polls a 5-second feed (a new keyword item every 4 s); after ~15 s its
   storage cannot be written for 20 s (``RLIMIT_FSIZE`` 0 on its main process via
   ``prlimit(2)``: every write to a file fails with EFBIG, which SQLite reports as an I/O error,
   like a full disk; ``chmod`` cannot do it: root ignores modes, and an open descriptor keeps
   its write access anyway), then writes work again. The feed server's requests and the
   daemon's warning/error lines in the window, and recovery: polls after, every keyword item
   served reaches the receiver under one id.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import hashlib
import hmac
import json
import os
import resource
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage import open_storage  # noqa: E402
from tests.hostile_server import attribute_trap  # noqa: E402

KEYWORD = "evacuation order"
EXTRACTION_TIMEOUT = 10.0
LATE = 2.0  # seconds the healthy feed answers late in the second ordering
STOP_LIMIT = 10.0  # the contract: a clean shutdown within 10 s
RUN_LIMIT = 240.0  # seconds: any one feedwatch process is killed past this (a hang, reported)

_GROUPS: set[int] = set()  # process groups still to kill on exit


def _kill_groups() -> None:
    for pgid in list(_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        _GROUPS.discard(pgid)


atexit.register(_kill_groups)


# --------------------------------------------------------------------------- feedwatch processes


@dataclass
class Output:
    code: int | None  # None: killed after RUN_LIMIT
    seconds: float
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + "\n" + self.err


class Feedwatch:
    """``python -m monitor ARGS`` in its own process group; stdout/stderr lines are kept with
    their arrival time (monotonic), so the script can wait on a log event instead of sleeping."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self.t0 = 0.0
        self.proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self.changed = asyncio.Event()

    async def start(self) -> Feedwatch:
        self.t0 = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", *self.args, cwd=ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        _GROUPS.add(self.proc.pid)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout, self.out)),
            asyncio.create_task(self._read(self.proc.stderr, self.err)),
        ]
        return self

    async def _read(self, stream: asyncio.StreamReader, into: list[tuple[float, str]]) -> None:
        while line := await stream.readline():
            into.append((time.monotonic(), line.decode(errors="replace").rstrip("\n")))
            self.changed.set()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def events(self) -> list[tuple[float, dict[str, Any]]]:
        """The ``--log-json`` lines on stderr, parsed."""
        found = []
        for t, line in self.err:
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict) and "event" in obj:
                    found.append((t, obj))
        return found

    async def wait_for(self, test: Callable[[], bool], timeout: float) -> bool:
        """Until ``test()`` holds (checked on every output line and every 0.1 s), or timeout."""
        deadline = time.monotonic() + timeout
        while not test():
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc is not None and self.proc.returncode is not None):
                return test()
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.1))
        return True

    async def wait(self, timeout: float = RUN_LIMIT) -> Output:
        assert self.proc is not None
        try:
            code: int | None = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            code = None
            self.kill()
            await self.proc.wait()
        seconds = time.monotonic() - self.t0
        await asyncio.gather(*self._readers, return_exceptions=True)
        _GROUPS.discard(self.proc.pid)
        return Output(
            code,
            seconds,
            "\n".join(line for _, line in self.out),
            "\n".join(line for _, line in self.err),
        )

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)


async def feedwatch(*args: str, env: dict[str, str] | None = None) -> Output:
    return await (await Feedwatch(*args, env=env).start()).wait()


# --------------------------------------------------------------------------- loopback servers


@dataclass
class Hit:
    t: float
    path: str
    auth: str | None
    status: int = 0


@dataclass
class Delivery:
    t: float
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Loopback:
    """One aiohttp server on 127.0.0.1 (a free port) logging every request."""

    def __init__(self) -> None:
        self.app = web.Application(middlewares=[self._log])
        self.hits: list[Hit] = []
        self.deliveries: list[Delivery] = []
        self.delivered = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
        self.routes["/hook"] = self._hook
        self.app.router.add_route("*", "/{path:.*}", self._dispatch)  # routes added after start

    @web.middleware
    async def _log(self, request: web.Request, handler: Any) -> web.StreamResponse:
        hit = Hit(time.monotonic(), request.path, request.headers.get("Authorization"))
        self.hits.append(hit)
        resp: web.StreamResponse = await handler(request)
        hit.status = resp.status
        return resp

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404)
        return await handler(request)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.deliveries.append(Delivery(time.monotonic(), dict(request.headers), body))
        self.delivered.set()
        return web.Response(status=204)

    def serve(self, path: str, body: Callable[[], bytes] | bytes, ctype: str) -> None:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body() if callable(body) else body, content_type=ctype)

        self.routes[path] = handler

    def route(self, path: str, handler: Callable[[web.Request], Awaitable[web.Response]]) -> None:
        self.routes[path] = handler

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def __aenter__(self) -> Loopback:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def hits_to(self, path: str, start: float = 0.0, end: float = float("inf")) -> list[Hit]:
        return [h for h in self.hits if h.path == path and start <= h.t < end]

    async def wait_delivery(
        self, test: Callable[[Delivery], bool], timeout: float
    ) -> Delivery | None:
        deadline = time.monotonic() + timeout
        while True:
            for d in self.deliveries:
                if test(d):
                    return d
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.delivered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.delivered.wait(), min(left, 0.5))


def rss(title: str, items: list[tuple[str, str, str]]) -> bytes:
    """An RSS 2.0 feed of (title, link, summary) items, dated now (inside ``max_age``)."""
    now = format_datetime(datetime.now(UTC), usegmt=True)
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>{now}</pubDate><description>{s}</description></item>"
        for t, link, s in items
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>http://127.0.0.1/</link><description>{title}</description>{body}</channel></rss>"
    ).encode()


def article(title: str, text: str) -> bytes:
    paragraphs = "".join(
        f"<p>{text} Paragraph {i} adds a little more detail.</p>" for i in range(6)
    )
    return (
        f"<html><head><title>{title}</title></head><body><nav><a href='/'>Home</a></nav>"
        f"<article><h1>{title}</h1>{paragraphs}</article><footer>Footer</footer></body></html>"
    ).encode()


def link_maze(n: int = 10_000) -> bytes:
    """A link-dense page: 10,000 short links in one div."""
    links = " ".join(f'<a href="/l{i}">w{i}</a>' for i in range(n))
    return (
        "<html><body><article><h1>Evacuation order</h1><div>" + links + "</div>"
        "<p>An evacuation order was issued.</p></article></body></html>"
    ).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    rows: list[tuple[str, str, str, bool | None]] = field(default_factory=list)

    def figure(self, name: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append((name, value, target, met))
        mark = "" if met is None else ("  [met]" if met else "  [NOT MET]")
        tail = f"   (target {target})" if target else ""
        print(f"  {name}: {value}{tail}{mark}", flush=True)

    def missed(self) -> list[str]:
        return [name for name, _, _, met in self.rows if met is False]


def note(text: str) -> None:
    print(f"  - {text}", flush=True)


def cfg_write(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body).lstrip())
    return path


# --------------------------------------------------------------------------- 1. pathological pages


async def check_pathological(tmp: Path, rep: Report) -> None:
    print("\n## 1. Two pathological pages beside a healthy feed", flush=True)
    trap = attribute_trap()
    maze = link_maze()
    async with Loopback() as srv:
        healthy_link = srv.url("/news/valley.html")
        healthy = rss(
            "Healthy",
            [
                ("Evacuation order for the valley", healthy_link, "Residents were told to leave."),
                ("Council budget approved", srv.url("/news/budget.html"), "The budget passed."),
                ("Rail line reopens", srv.url("/news/rail.html"), "Trains run again."),
            ],
        )  # fmt: skip
        late = {"seconds": 0.0}

        async def healthy_feed(request: web.Request) -> web.Response:
            await asyncio.sleep(late["seconds"])  # the server's pace: the traps go first
            return web.Response(body=healthy, content_type="application/rss+xml")

        srv.route("/healthy.xml", healthy_feed)
        for slug, title, text in (
            ("valley", "Evacuation order for the valley", "Officials issued an evacuation order "
             "for the valley as the wildfire spread overnight."),
            ("budget", "Council budget approved", "The council approved its budget."),
            ("rail", "Rail line reopens", "The rail line reopened after repairs."),
        ):  # fmt: skip
            srv.serve(f"/news/{slug}.html", article(title, text), "text/html")
        trap_hosts = ["127.0.0.1", "127.0.0.1"]  # one attribute trap per entry, on that host

        async def hostile_feed(request: web.Request) -> web.Response:
            items = [
                (f"Trap {i}", srv.url(f"/trap/{i}.html", host), f"Trap {i}: an evacuation order.")
                for i, host in enumerate(trap_hosts, 1)
            ]
            items.append(
                ("Link maze", srv.url("/trap/maze.html"), "The maze: an evacuation order.")
            )
            return web.Response(body=rss("Hostile", items), content_type="application/rss+xml")

        srv.route("/hostile.xml", hostile_feed)
        for i in range(1, 7):
            srv.serve(f"/trap/{i}.html", trap, "text/html")
        srv.serve("/trap/maze.html", maze, "text/html")
        note(
            f"traps: 2 pages of one element with 60,000 attributes ({len(trap) // 1024} KB), "
            f"1 page of 10,000 links ({len(maze) // 1024} KB); extraction.timeout "
            f"{EXTRACTION_TIMEOUT:g}s, workers 2; the pool lets one host hold half the workers"
        )
        names = _loopback_names()
        note(
            "other host names for 127.0.0.1 (each its own share of the pool): "
            + (", ".join(names) or "none (those variants are skipped)")
        )

        def config(name: str, hostile: bool) -> Path:
            feeds = f'  - {{url: "{srv.url("/healthy.xml")}", name: Healthy}}\n'
            if hostile:
                feeds += f'  - {{url: "{srv.url("/hostile.xml")}", name: Hostile}}\n'
            return cfg_write(
                tmp / f"{name}.yaml",
                f"storage: {{url: {tmp / name}.db}}\n"
                "fetch: {allow_private_networks: true}\n"
                f"extraction: {{timeout: {EXTRACTION_TIMEOUT:g}s, workers: 2}}\n"
                "feeds:\n"
                + feeds
                + f'channels: {{hook: {{type: webhook, url: "{srv.url("/hook")}"}}}}\n'
                f'watchlists: [{{name: w, keywords: ["{KEYWORD}"], channels: [hook]}}]\n',
            )

        def healthy_alert(d: Delivery) -> bool:
            return bool(d.json()["article"]["url"] == healthy_link)

        async def once(name: str, hostile: bool) -> dict[str, Any]:
            srv.hits.clear()
            srv.deliveries.clear()
            cfg = config(name, hostile)
            proc = await Feedwatch("run", "--once", "--log-json", "--config", str(cfg)).start()
            got = await srv.wait_delivery(healthy_alert, RUN_LIMIT)
            out = await proc.wait()
            first = srv.hits_to("/healthy.xml")
            res = {
                "cfg": cfg,
                "alert": got.t - proc.t0 if got else None,
                "poll": got.t - first[0].t if got and first else None,
                "exit": out.code,
                "seconds": out.seconds,
                "alerts": len(srv.deliveries),
                "events": proc.events(),
            }
            alert = f"{res['alert']:.2f} s" if got else "never"
            note(
                f"{name}: healthy alert {alert} after process start (feed request to alert "
                f"{res['poll'] or 0:.2f} s); exit {out.code} after {out.seconds:.1f} s; "
                f"{res['alerts']} webhooks"
            )
            return res

        one = ["127.0.0.1", "127.0.0.1"]
        # The third field: whether the target applies. Traps on the healthy feed's own host, queued
        # before its page, hold that host's share of the pool (half of it): the healthy page
        # waits behind them by design (one site cannot take the pool from the other sites; its
        # own pages share one share). Reported, not judged.
        orderings = [
            (0.0, one, "as it comes, traps on the healthy feed's host", True),
            (LATE, one, f"healthy feed {LATE:g} s late, traps on its host (one site's share, by design)", False),
        ]  # fmt: skip
        if names:
            orderings.append(
                (LATE, [names[0]] * 2, f"healthy feed {LATE:g} s late, traps on {names[0]}", True)
            )
        if len(names) >= 2:
            orderings.append(
                (LATE, names[:2] * 3, f"healthy feed {LATE:g} s late, one feed's 6 traps on {names[0]} and {names[1]}", True)
            )  # fmt: skip
        hostile: dict[str, Any] = {}
        bases: list[float] = []
        polls: list[float] = []
        for seconds, hosts, label, judged in orderings:
            trap_hosts[:] = hosts
            if seconds != late["seconds"] or not bases:  # baselines before and after, per pace
                late["seconds"] = seconds
                tag = "" if not seconds else "-late"
                runs = [await once(f"baseline{tag}-1", hostile=False)]
                run = await once(f"hostile{tag}", hostile=True)
                runs.append(await once(f"baseline{tag}-2", hostile=False))
                bases = [b["alert"] for b in runs if b["alert"] is not None]
                polls = [b["poll"] for b in runs if b["poll"] is not None]
            else:
                run = await once(
                    f"hostile-late-{len(hosts)}-on-{'+'.join(sorted(set(hosts)))}", True
                )
            hostile = hostile or run
            name = f"1a healthy alert delay, hostile vs baseline, run --once ({label})"
            if bases and run["alert"] is not None:
                base, poll = statistics.mean(bases), statistics.mean(polls)
                delay = run["alert"] - base
                rep.figure(
                    name,
                    f"{delay:+.2f} s ({run['alert']:.2f} s vs {base:.2f} s)",
                    f"<= extraction timeout + a poll = {EXTRACTION_TIMEOUT:g} + {poll:.2f} s",
                    (delay <= EXTRACTION_TIMEOUT + poll) if judged else None,
                )
            else:
                rep.figure(name, "no alert", "delivered", False)
        rep.figure(
            "1b run --once with the hostile feed: exit code",
            f"{hostile['exit']} after {hostile['seconds']:.1f} s",
            "0",
            hostile["exit"] == 0,
        )
        kills = [e for _, e in hostile["events"] if e["event"].startswith("worker killed")]
        fallbacks = [e for _, e in hostile["events"] if e["event"] == "extract fallback"]
        note(
            f"hostile run log: {len(kills)} 'worker killed: task past its deadline' lines; "
            f"'extract fallback' reasons: "
            + ", ".join(
                f"{n} x {r!r}" for r, n in Counter(e.get("reason") for e in fallbacks).items()
            )
        )

        # The traps' articles: stored with the feed's summary and the reason.
        st = open_storage(str(tmp / "hostile.db"))
        await st.open()
        try:
            arts = {a.title: a for a in await st.articles_since(datetime(2000, 1, 1, tzinfo=UTC))}
        finally:
            await st.close()
        kept = 0
        for title, summary in (
            ("Trap 1", "Trap 1"),
            ("Trap 2", "Trap 2"),
            ("Link maze", "The maze"),
        ):
            a = arts.get(title)
            if a is None:
                note(f"{title}: not stored")
                continue
            kept += a.body.startswith(summary) if a.extract_error else 0
            note(
                f"{title}: stored; extract_error={a.extract_error!r}; body "
                + (
                    "is the feed's summary"
                    if a.body.startswith(summary)
                    else f"extracted ({len(a.body)} chars)"
                )
            )
        valley = arts.get("Evacuation order for the valley")
        note(
            "healthy article body extracted: "
            + ("yes" if valley and "wildfire spread" in valley.body else "NO")
        )
        rep.figure(
            "1c attribute traps stored with their summary and a reason",
            f"{kept} of 2",
            "2",
            kept >= 2,
        )
        status = await feedwatch("status", "--config", str(hostile["cfg"]))
        shown = "extraction took longer" in status.text
        rep.figure(
            "1c `status` names the reason (pages of the last 24 h that gave no text)",
            f"{'yes' if shown else 'no'} (exit {status.code})",
            "yes",
            shown,
        )

        # The daemon, SIGTERM while its workers are on the traps.
        srv.hits.clear()
        srv.deliveries.clear()
        late["seconds"] = LATE
        trap_hosts[:] = ["127.0.0.1", names[0] if names else "127.0.0.1"]
        cfg = config("daemon", hostile=True)
        proc = await Feedwatch("run", "--log-json", "--config", str(cfg)).start()

        def both_traps() -> bool:
            return bool(srv.hits_to("/trap/1.html") and srv.hits_to("/trap/2.html"))

        await proc.wait_for(both_traps, 90)
        await asyncio.sleep(2.0)  # both trap pages served; extraction under way
        busy = await busy_workers(proc.pid)
        healthy_first = any(healthy_alert(d) for d in srv.deliveries)
        t_term = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        out = await proc.wait(timeout=60)
        took = time.monotonic() - t_term
        stopped = [e for _, e in proc.events() if e["event"] == "daemon stopped"]
        note(
            f"daemon (trap hosts {', '.join(trap_hosts)}): both trap pages served; "
            f"{busy} worker(s) busy at SIGTERM; the "
            f"healthy alert had {'already' if healthy_first else 'NOT yet'} been delivered; "
            f"'daemon stopped' logged {stopped[0].get('seconds') if stopped else '-'} s after "
            "'shutting down' (in-flight polls get a grace period)"
        )
        rep.figure(
            "1d SIGTERM to `run` with busy workers: seconds to exit, exit code",
            f"{took:.2f} s, exit {out.code}",
            f"<= {STOP_LIMIT:g} s, 0",
            out.code == 0 and took <= STOP_LIMIT,
        )


def _loopback_names() -> list[str]:
    """Host names that resolve to 127.0.0.1 alone (``localhost``, this machine's name): more
    hosts for the pool's per-host share, with nothing sent outside 127.0.0.1."""
    found = []
    for name in dict.fromkeys(["localhost", socket.gethostname()]):
        try:
            addrs = {a[4][0] for a in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
        except OSError:
            continue
        if addrs == {"127.0.0.1"}:
            found.append(name)
    return found


async def busy_workers(pid: int) -> int:
    """Child processes of ``pid`` that used over 0.1 s of CPU in the next second (the
    machine is shared: a busy worker may get well under a core)."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
        before = {k.pid: sum(k.cpu_times()[:2]) for k in kids}
    except psutil.Error:
        return 0
    await asyncio.sleep(1.0)
    busy = 0
    for k in kids:
        with contextlib.suppress(psutil.Error):
            busy += sum(k.cpu_times()[:2]) - before[k.pid] > 0.1
    return busy


# --------------------------------------------------------------------------- 2. YAML bombs


# Runs the command under test from a small Python (about 10 MB): on exec Linux keeps the
# pre-exec image's peak in ru_maxrss, so spawning straight from this script (40+ MB) would
# report its own size. The launcher forks, execs, reaps with wait4 and prints the figures.
LAUNCHER = """
import os, sys, time
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.monotonic() - t0, os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def measure(argv: list[str], timeout: float = 60) -> tuple[float, int | None, str, float]:
    """(wall seconds, exit code, first stderr line, peak RSS MB of the command from ``wait4``).
    Blocking: run it in a thread."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as res:
        launcher = [sys.executable, "-S", "-c", LAUNCHER, *argv]
        pid = os.posix_spawn(
            launcher[0], launcher, {**os.environ}, setsid=True,
            file_actions=[(os.POSIX_SPAWN_DUP2, err.fileno(), 2),
                          (os.POSIX_SPAWN_DUP2, res.fileno(), 1)],
        )  # fmt: skip
        _GROUPS.add(pid)
        t0 = time.monotonic()
        while not os.waitpid(pid, os.WNOHANG)[0]:
            if time.monotonic() - t0 > timeout:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.005)
        _GROUPS.discard(pid)
        res.seek(0)
        err.seek(0)
        figures = res.read().decode().split()
        lines = [ln for ln in err.read().decode(errors="replace").splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    if len(figures) != 3:  # killed at the timeout
        return time.monotonic() - t0, None, first, float("nan")
    return float(figures[0]), int(figures[1]), first, int(figures[2]) / 1024


async def check_yaml(tmp: Path, rep: Report) -> None:
    print("\n## 2. YAML alias bomb and deep nesting: `feedwatch check`", flush=True)
    lines = ['a0: &a0 ["lol"]'] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)
    ]
    bomb = cfg_write(tmp / "bomb.yaml", "\n".join(lines) + "\nfeeds: *a9\n")
    deep = cfg_write(tmp / "deep.yaml", "feeds: " + "[" * 1000 + "]" * 1000 + "\n")
    valid = cfg_write(tmp / "valid.yaml", f"storage: {{url: {tmp / 'never.db'}}}\nfeeds: []\n")
    note(f"bomb.yaml: {bomb.stat().st_size} bytes, 9**9 = {9**9:,} values once expanded")
    py = sys.executable
    wall, _, _, mb = await asyncio.to_thread(measure, [py, "-c", "pass"])
    note(f"context: `python -c pass` {wall:.3f} s, {mb:.0f} MB")
    wall, code, _, mb = await asyncio.to_thread(
        measure, [py, "-m", "monitor", "check", "--config", str(valid)]
    )
    note(f"context: `check` of a small valid config: {wall:.3f} s, exit {code}, {mb:.0f} MB")
    for name, path in (("alias bomb", bomb), ("1,000-level list", deep)):
        wall, code, first, mb = await asyncio.to_thread(
            measure, [py, "-m", "monitor", "check", "--config", str(path)]
        )
        note(f"{name}: first error line: {first}")
        rep.figure(f"2 {name}: exit code", str(code), "2", code == 2)
        rep.figure(f"2 {name}: wall time", f"{wall:.3f} s", "< 1 s", wall < 1.0)
        rep.figure(f"2 {name}: peak RSS of the child", f"{mb:.0f} MB", "< 100 MB", mb < 100)


# --------------------------------------------------------------------------- 3. secrets


async def check_secrets(tmp: Path, rep: Report) -> None:
    print("\n## 3. No secret anywhere", flush=True)
    feed_pw = "S3cretFeedPw"
    basic = base64.b64encode(f"user:{feed_pw}".encode()).decode()
    key = secrets.token_bytes(24)
    fw_secret = "whsec_" + base64.b64encode(key).decode()
    env = {"FW_SECRET": fw_secret}
    async with Loopback() as srv:
        private = rss(
            "Private",
            [
                ("Evacuation order issued", "/news/private-1.html", "An evacuation order was issued."),
                ("Evacuation order lifted", srv.url("/news/private-2.html"), "The evacuation order was lifted."),
            ],
        )  # fmt: skip

        async def feed(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Basic {basic}":
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})
            return web.Response(body=private, content_type="application/rss+xml")

        srv.route("/private.xml", feed)
        srv.serve("/news/private-1.html", article("Evacuation order issued", "An evacuation "
                  "order was issued for the coast."), "text/html")  # fmt: skip
        srv.serve("/news/private-2.html", article("Evacuation order lifted", "The evacuation "
                  "order was lifted this morning."), "text/html")  # fmt: skip
        feed_url = srv.url("/private.xml").replace("http://", f"http://user:{feed_pw}@")
        good = cfg_write(
            tmp / "secrets.yaml",
            f"""
            storage: {{url: {tmp / "secrets.db"}}}
            fetch: {{allow_private_networks: true}}
            feeds: [{{url: "{feed_url}", name: Private}}]
            channels: {{hook: {{type: webhook, url: "{srv.url("/hook")}", secret: "${{FW_SECRET}}"}}}}
            watchlists: [{{name: w, keywords: ["{KEYWORD}"], channels: [hook]}}]
            """,
        )
        bad = cfg_write(
            tmp / "misplaced.yaml",
            f"""
            storage: {{url: {tmp / "misplaced.db"}}}
            fetch: {{timeout: "${{FW_SECRET}}", allow_private_networks: true}}
            feeds: [{{url: "{feed_url}", name: Private}}]
            channels:
              mail: {{type: email, host: 127.0.0.1, port: 25, from: a@example.org, to: ["${{FW_SECRET}}"]}}
            watchlists: [{{name: w, keywords: ["{KEYWORD}"], channels: [mail]}}]
            """,
        )
        values = {
            "feed password": feed_pw,
            "Authorization base64": basic,
            "${FW_SECRET}": fw_secret,
            "${FW_SECRET} key part": fw_secret.removeprefix("whsec_"),
        }
        texts: dict[str, str] = {}
        misplaced = await feedwatch("check", "--config", str(bad), env=env)
        texts["check (misplaced ${VAR})"] = misplaced.text
        errors = [ln for ln in misplaced.err.splitlines() if "fetch.timeout" in ln or ".to" in ln]
        note(f"misplaced `check`: exit {misplaced.code} (target 2); its lines on those keys:")
        for ln in errors[:3]:
            shown = (
                ln if not any(v in ln for v in values.values()) else "[withheld: holds a secret]"
            )
            print(f"      {shown[:160]}")
        codes = {}
        for args in (
            ("check",),
            ("run", "--once", "--log-level", "debug"),
            ("status",),
            ("status", "--json"),
            ("alerts",),
            ("alerts", "--json"),
        ):
            out = await feedwatch(*args, "--config", str(good), env=env)
            codes[" ".join(args)] = out.code
            texts[" ".join(args)] = out.text
        note("exit codes: " + ", ".join(f"{k}: {v}" for k, v in codes.items()))
        texts["webhook bodies"] = "\n".join(d.body.decode(errors="replace") for d in srv.deliveries)
        texts["webhook headers"] = "\n".join(json.dumps(d.headers) for d in srv.deliveries)
        db = _database_bytes(tmp / "secrets.db")
        note(f"database bytes searched: {len(db):,} (db, -wal, -shm)")
        total = 0
        for where, text in [*texts.items(), ("database bytes", db.decode("latin-1"))]:
            counts = {label: text.count(v) for label, v in values.items()}
            n = sum(counts.values())
            total += n
            detail = ", ".join(f"{label} {c}" for label, c in counts.items())
            note(f"{where}: {n} ({detail})")
        note(
            "controls (the search finds what is there): the config file holds the feed password "
            f"{good.read_text().count(feed_pw)} time(s); the database bytes hold the article path "
            f"'/news/private-1.html' {db.count(b'/news/private-1.html')} time(s)"
        )
        rep.figure(
            "3a secret values found in all outputs, payloads and the database",
            str(total),
            "0",
            total == 0,
        )
        feed_hits = srv.hits_to("/private.xml")
        authed = [h for h in feed_hits if h.auth == f"Basic {basic}" and h.status == 200]
        pages = [h for h in srv.hits if h.path.startswith("/news/")]
        leaked_auth = [h for h in pages if h.auth]
        valid = sum(_signature_ok(d, key) for d in srv.deliveries)
        note(
            f"feed requests: {len(feed_hits)}, answered 200 with the Authorization header: "
            f"{len(authed)}; article page requests: {len(pages)}, with an Authorization header: "
            f"{len(leaked_auth)}; webhooks: {len(srv.deliveries)}, signature valid: {valid}"
        )
        rep.figure(
            "3b feed polled with auth, alerts delivered and signed, no auth sent to pages",
            f"{len(authed)} authed polls, {len(srv.deliveries)} alerts ({valid} signed), "
            f"{len(leaked_auth)} page requests with auth",
            ">= 1, 2 (2), 0",
            bool(authed) and len(srv.deliveries) == 2 == valid and not leaked_auth,
        )
        rep.figure(
            "3c misplaced ${VAR}: check exit code", str(misplaced.code), "2", misplaced.code == 2
        )


def _database_bytes(path: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in (Path(f"{path}{x}") for x in ("", "-wal", "-shm")) if p.exists()
    )


def _signature_ok(d: Delivery, key: bytes) -> bool:
    msg_id, ts = d.headers.get("webhook-id", ""), d.headers.get("webhook-timestamp", "")
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + d.body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    return expected in d.headers.get("webhook-signature", "").split()


# --------------------------------------------------------------------------- 4. storage fault


async def check_storage_fault(tmp: Path, rep: Report, outage: float = 20.0) -> None:
    print("\n## 4. Storage unwritable for 20 s under a running daemon", flush=True)
    interval = 5.0
    t_start = time.monotonic()
    items: list[tuple[str, str, str]] = []
    frozen = False

    async with Loopback() as srv:

        def body() -> bytes:
            if not frozen:  # a new keyword item every 4 s (at most 60)
                while len(items) < min(60, 1 + int((time.monotonic() - t_start) / 4)):
                    k = len(items)
                    items.append(
                        (
                            f"Evacuation order {k}",
                            srv.url(f"/news/{k}.html"),
                            f"An evacuation order, number {k}.",
                        )
                    )
            return rss("Fast", list(reversed(items)))

        served: set[str] = set()

        async def feed(request: web.Request) -> web.Response:
            data = body()
            served.update(link for _, link, _ in items)
            return web.Response(body=data, content_type="application/rss+xml")

        srv.route("/fast.xml", feed)
        port = free_port()
        cfg = cfg_write(
            tmp / "fault.yaml",
            f"""
            storage: {{url: {tmp / "fault.db"}}}
            fetch: {{allow_private_networks: true}}
            defaults: {{interval: {interval:g}s, extract: false}}
            server: {{listen: "127.0.0.1:{port}"}}
            feeds: [{{url: "{srv.url("/fast.xml")}", name: Fast}}]
            channels: {{hook: {{type: webhook, url: "{srv.url("/hook")}"}}}}
            watchlists: [{{name: w, keywords: ["{KEYWORD}"], channels: [hook]}}]
            """,
        )
        note(
            f"feed interval {interval:g}s (`defaults.interval`; any interval of 1s or more is "
            "allowed); extraction off; writes made to fail with RLIMIT_FSIZE=0 (prlimit) on the "
            f"daemon's main process (running as uid {os.geteuid()})"
        )
        proc = await Feedwatch("run", "--log-json", "--config", str(cfg)).start()
        try:
            ok = await proc.wait_for(lambda: len(srv.hits_to("/fast.xml")) >= 3, 60)
            if not ok:
                rep.figure("4 daemon polled normally before the fault", "no", "3 polls", False)
                return
            before = len(srv.hits_to("/fast.xml"))
            t_break = time.monotonic()
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
            await asyncio.sleep(outage / 2)
            status = await feedwatch("status", "--config", str(cfg))
            await asyncio.sleep(max(0.0, t_break + outage - time.monotonic()))
            resource.prlimit(
                proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            )
            t_fix = time.monotonic()
            during = srv.hits_to("/fast.xml", t_break, t_fix)
            lines = [(t, e) for t, e in proc.events() if t_break <= t < t_fix]
            errs = [e for _, e in lines if e.get("level") in ("warning", "error", "critical")]
            unhealthy = "unhealthy" in status.text.lower()
            note(
                f"{before} polls before the fault; `status` during it: exit {status.code}, says "
                f"unhealthy: {'yes' if unhealthy else 'no'}"
            )
            rep.figure(
                f"4a feed requests during the {outage:g} s fault",
                str(len(during)),
                f"a handful (~{outage / interval:.0f} by the interval; <= 10)",
                len(during) <= 10,
            )
            events = Counter(e["event"] for e in errs)
            rep.figure(
                "4b daemon warning/error lines during the fault",
                f"{len(errs)} ({', '.join(f'{n} x {ev!r}' for ev, n in events.items()) or 'none'})",
                "one per change of state (<= 5), not one per poll",
                len(errs) <= 5,
            )
            resumed = await proc.wait_for(lambda: len(srv.hits_to("/fast.xml", t_fix)) >= 3, 60)
            after = srv.hits_to("/fast.xml", t_fix)
            back = [
                e
                for t, e in proc.events()
                if t >= t_fix and e["event"].startswith("storage answers")
            ]
            first_after = f"{after[0].t - t_fix:.1f} s" if after else "never"
            frozen = True
            expected = set(served)

            def all_in() -> bool:
                return expected <= {d.json()["article"]["url"] for d in srv.deliveries}

            await proc.wait_for(all_in, 90)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            out = await proc.wait(timeout=30)
        ids_by_url: dict[str, set[str]] = {}
        per_id = Counter()
        for d in srv.deliveries:
            ids_by_url.setdefault(d.json()["article"]["url"], set()).add(
                d.headers.get("webhook-id", "")
            )
            per_id[d.headers.get("webhook-id", "")] += 1
        lost = len(expected - set(ids_by_url))
        two_ids = sum(len(v) > 1 for v in ids_by_url.values())
        resends = sum(n - 1 for n in per_id.values())
        times = [f"{h.t - t_break:+.1f}" for h in srv.hits_to("/fast.xml")]
        note(f"feed requests, seconds from the start of the fault: {' '.join(times)}")
        note(
            f"after the fault: first poll {first_after} later, {len(after)} polls, "
            f"'storage answers again' logged: {len(back)}; daemon exit {out.code} on SIGTERM"
        )
        rep.figure(
            "4c recovered: polls after the fault",
            str(len(after)),
            ">= 3",
            resumed and len(after) >= 3,
        )
        rep.figure(
            "4d alerts: keyword items served / lost / under two ids (resends)",
            f"{len(expected)} / {lost} / {two_ids} ({resends})",
            "lost 0, two ids 0",
            lost == 0 and two_ids == 0 and bool(expected),
        )


# --------------------------------------------------------------------------- main


CHECKS = {1: check_pathological, 2: check_yaml, 3: check_secrets, 4: check_storage_fault}


async def main(args: argparse.Namespace) -> int:
    only = (
        sorted({int(x) for x in args.only.split(",") if x.strip()}) if args.only else list(CHECKS)
    )
    if any(n not in CHECKS for n in only):
        print(f"--only takes numbers among {sorted(CHECKS)}", file=sys.stderr)
        return 2
    load = os.getloadavg()
    print(
        f"feedwatch hardening bench: checks {','.join(map(str, only))}; Python "
        f"{sys.version.split()[0]}; {os.cpu_count()} cores; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    rep = Report()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fw-harden-") as tmp:
        try:
            for n in only:
                await CHECKS[n](Path(tmp), rep)
        finally:
            _kill_groups()
    load = os.getloadavg()
    missed = rep.missed()
    print(
        f"\n{time.monotonic() - t0:.0f} s; load average at the end {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}",
        flush=True,
    )
    print("ALL TARGETS MET" if not missed else "NOT MET: " + "; ".join(missed), flush=True)
    return 0 if not missed else 1


def cli() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma-separated check numbers (1-4), e.g. 1,3")
    args = p.parse_args()
    try:
        return asyncio.run(main(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _kill_groups()
        print("\ninterrupted; processes and temporary files cleaned up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(cli())
