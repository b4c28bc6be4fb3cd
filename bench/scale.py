"""Scale benchmark: real `feedwatch run` daemons on SQLite and on PostgreSQL, 1 to 3 of them.

    python bench/scale.py                        # 10,000 feeds, interval 120s (~50 minutes)
    python bench/scale.py --feeds 1000 --interval 20 --steady 2    # a quick run (~8 minutes)

Everything runs as separate processes on 127.0.0.1: the loopback feed server
(``bench/feedserver.py --roll``: every feed gains an item every ``--roll`` seconds, one item in
``--alert-every`` says "wildfire"; it logs every poll), a webhook receiver (counts 2xx per
``webhook-id``, can answer slowly or 503 first), a throwaway PostgreSQL cluster
(``tests/pg.py``, with ``pg_stat_statements``, ``fsync=on``) and the daemons themselves,
``python -m monitor run --config ...``, each in its own process group, all on one config file
(``server.listen`` comes from ``${FW_PORT}``, the password from ``${PGPASSWORD}``).

Each configuration (SQLite with 1 daemon; PostgreSQL with 1, 2, 3) starts on an empty database:
the first pass polls every feed (20 new items each), then ``--steady`` intervals follow, then
the server freezes (no new items) and the run ends once every alert reached the receiver. From
the server's poll log, the receiver's counts, the database and ``/proc``:

- passes/s of the first pass (first poll of the first feed to first poll of the last);
- polls per feed per interval: every gap between two polls of a feed must lie in
  [0.9, 1.1] x interval (the scheduler's jitter), give or take the dispatcher's tick;
- alerts: every keyword item served must reach the receiver under exactly one id, once
  (a second 2xx for the same id is an at-least-once resend: counted, allowed);
- statements per poll on PostgreSQL (``pg_stat_statements``, all daemons, BEGIN/COMMIT
  included; psycopg's pipelined ``executemany`` sends several in one round trip, so this is an
  upper bound on round trips);
- peak RSS (VmHWM) of each daemon and of its worker processes; CPU seconds per poll of the
  daemons and of the PostgreSQL server.

Then two kill tests, each with 3 daemons on PostgreSQL: SIGKILL one daemon's process group
half-way through the first pass; and, with a slow receiver that answers 503 to the first try of
one alert in five, a quarter of the way through the first pass's delivery burst. Checked: no
alert lost, none delivered under two ids, every feed polled again within one interval (x1.1
jitter) plus the daemon TTL (``DAEMON_TTL``: the dead daemon's leases are taken over then).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.daemon import DAEMON_TTL  # noqa: E402

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
KEYWORD = "wildfire"
ITEMS_PER_FEED = 20
JITTER = 0.1  # monitor/schedule.py: +-10 %
SLACK = 3.0  # seconds: dispatcher tick, fetch time, sampling
MARK = "/* bench */"  # the benchmark's own queries, left out of the statement counts


# --------------------------------------------------------------------------- small helpers


def http_json(url: str, timeout: float = 30) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def http_text(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system + t.children_user + t.children_system
    except psutil.Error:
        return 0.0


# --------------------------------------------------------------------------- receiver process


def _receiver_main(port_q: Any) -> None:
    """A separate process: counts 2xx per webhook-id and the article URL of each id.

    ``/_mode?delay=S&fail=F``: wait S seconds per request; answer 503 to the first try of a
    fraction F of the ids (chosen by a hash of the id, so it is the same for every daemon).
    """
    import hashlib

    from aiohttp import web

    st: dict[str, Any] = {"delay": 0.0, "fail": 0.0}

    def reset() -> None:
        st.update(ok=Counter(), url={}, tried=set(), requests=0, s503=0, inflight=0)

    reset()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        st["requests"] += 1
        st["inflight"] += 1
        try:
            if st["delay"]:
                await asyncio.sleep(st["delay"])
            wid = request.headers.get("webhook-id", "")
            first = wid not in st["tried"]
            st["tried"].add(wid)
            if first and st["fail"]:
                h = int.from_bytes(hashlib.sha256(wid.encode()).digest()[:4], "big")
                if h / 2**32 < st["fail"]:
                    st["s503"] += 1
                    return web.Response(status=503, text="busy")
            st["ok"][wid] += 1
            if wid not in st["url"]:
                st["url"][wid] = json.loads(body)["article"]["url"]
            return web.Response(status=200)
        finally:
            st["inflight"] -= 1

    async def mode(request: web.Request) -> web.Response:
        st["delay"] = float(request.query.get("delay", "0"))
        st["fail"] = float(request.query.get("fail", "0"))
        reset()
        return web.json_response({})

    async def stats(request: web.Request) -> web.Response:
        out = {"requests": st["requests"], "s503": st["s503"], "inflight": st["inflight"]}
        out["unique"] = len(st["ok"])
        if request.query.get("full"):
            out["ok"] = dict(st["ok"])
            out["url"] = st["url"]
        return web.json_response(out)

    async def main() -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/hook", hook)
        app.router.add_get("/_mode", mode)
        app.router.add_get("/_stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        assert site._server is not None
        port_q.put(site._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        await asyncio.Event().wait()

    asyncio.run(main())


# --------------------------------------------------------------------------- PostgreSQL


class Pg:
    """The throwaway cluster of tests/pg.py, with pg_stat_statements, durable (fsync on)."""

    def __init__(self, sync_commit: bool) -> None:
        from tests.pg import TempCluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL binaries (Debian: apt-get install postgresql)")
        self.cluster = TempCluster(bindir)
        self.url = self.cluster.start()
        try:
            self._configure(sync_commit)
        except BaseException:
            self.cluster.stop()  # never leave a server behind
            raise

    def _configure(self, sync_commit: bool) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            conn.execute("ALTER SYSTEM SET fsync = on")
            conn.execute("ALTER SYSTEM SET full_page_writes = on")
            conn.execute(f"ALTER SYSTEM SET synchronous_commit = {'on' if sync_commit else 'off'}")
        # pg_ctl restart keeps the command-line options (port, listen address) of the start.
        self.cluster._run(
            "pg_ctl", "restart", "-D", str(self.cluster.data), "-w", "-t", "60", "-m", "fast",
            "-l", str(self.cluster.root / "log"),
        )  # fmt: skip
        self.version = self.query_one("SELECT current_setting('server_version')")

    def db_url(self, name: str) -> str:
        return urlunsplit(urlsplit(self.url)._replace(path=f"/{name}"))

    def query_one(self, sql: str, db: str | None = None) -> Any:
        import psycopg

        with psycopg.connect(self.db_url(db) if db else self.url, autocommit=True) as conn:
            row = conn.execute(f"{MARK} {sql}").fetchone()
            return row[0] if row else None

    def create_db(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        with psycopg.connect(self.db_url(name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def statements(self, db: str) -> int:
        """Statements executed in ``db`` by everyone but this benchmark."""
        n = self.query_one(
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
            f"JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '{db}' "
            "AND s.query NOT LIKE '%/* bench */%'",
            db,
        )
        return int(n)

    def top_statements(self, db: str, n: int = 8) -> list[tuple[int, int, float, str]]:
        """The most frequent statements in ``db``: (calls, rows, total ms, text)."""
        import psycopg

        with psycopg.connect(self.db_url(db), autocommit=True) as conn:
            rows = conn.execute(
                f"{MARK} SELECT s.calls, s.rows, s.total_exec_time, s.query "
                "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                "WHERE d.datname = %s AND s.query NOT LIKE '%%/* bench */%%' "
                "ORDER BY s.calls DESC LIMIT %s",
                (db, n),
            ).fetchall()
        return [(int(c), int(r), float(t), " ".join(str(q).split())[:90]) for c, r, t, q in rows]

    def server_cpu(self) -> float:
        pid = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        return sum(cpu_seconds(p) for p in tree(pid))

    def stop(self) -> None:
        self.cluster.stop()


# --------------------------------------------------------------------------- one run


@dataclass
class Daemon:
    n: int
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    killed_at: float | None = None
    hwm_main: float = 0.0
    hwm_workers: dict[int, float] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)  # pid: last seen cumulative CPU
    polls_metric: float | None = None
    exit_code: int | None = None

    def sample(self) -> None:
        if self.killed_at is not None:
            return
        for i, p in enumerate(tree(self.proc.pid)):
            hwm = vm_hwm_mb(p.pid)
            if i == 0:
                self.hwm_main = max(self.hwm_main, hwm)
            else:
                self.hwm_workers[p.pid] = max(self.hwm_workers.get(p.pid, 0.0), hwm)
            self.cpu[p.pid] = max(self.cpu.get(p.pid, 0.0), cpu_seconds(p))

    def cpu_total(self) -> float:
        return sum(self.cpu.values())

    def scrape_polls(self) -> float | None:
        try:
            text = http_text(f"http://127.0.0.1:{self.port}/metrics")
        except OSError:
            return None
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("feedwatch_polls_total{")
        )


@dataclass
class Outcome:
    name: str
    backend: str
    daemons: int
    kill: str | None = None
    feeds: int = 0
    first_pass_s: float = 0.0
    steady_polls: int = 0
    polls: int = 0
    gaps: list[float] = field(default_factory=list)
    early: int = 0  # gaps under (1 - jitter) x interval: a feed polled twice in one interval
    late: int = 0  # gaps over (1 + jitter) x interval (+ the TTL after a kill)
    early_after_kill: int = 0  # of those early ones: the killed daemon's unrecorded polls
    taken_over: int = 0  # feeds whose poll across the kill came off schedule (the dead one's)
    max_gap_ratio: float = 0.0
    expected_alerts: int = 0
    delivered: int = 0
    lost: int = 0
    unexpected: int = 0
    two_ids: int = 0
    resends: int = 0
    queued_left: int = 0
    statements_first: float | None = None
    statements_steady: float | None = None
    cpu_first: float = 0.0  # daemon CPU seconds per poll
    cpu_steady: float = 0.0
    pg_cpu_first: float | None = None
    pg_cpu_steady: float | None = None
    rss_main: list[float] = field(default_factory=list)
    rss_workers: list[float] = field(default_factory=list)
    worker_pids: list[int] = field(default_factory=list)  # worker processes seen (recycled)
    polls_per_daemon: list[float | None] = field(default_factory=list)
    exit_codes: list[int | None] = field(default_factory=list)
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    recovery_s: float | None = None  # kill -> the last of those feeds polled again

    @property
    def passes_per_s(self) -> float:
        return 1.0 / self.first_pass_s if self.first_pass_s else 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.two_ids or self.unexpected or self.late or self.queued_left
            or (self.early - self.early_after_kill)
        )  # fmt: skip


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.fs_port = 0
        self.rx_port = 0
        self.pg: Pg | None = None
        self.fs: subprocess.Popen[str] | None = None
        self.rx: Any = None
        self.runs = 0

    # -- servers
    def start_servers(self) -> None:
        a = self.args
        self.fs = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "feedserver.py"), "--port", "0",
             "--roll", str(a.roll), "--alert-every", str(a.alert_every), "--keyword", KEYWORD,
             "--hits"],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        assert self.fs.stdout is not None
        line = self.fs.stdout.readline()
        if not line.startswith("listening"):
            raise SystemExit(f"feed server did not start: {line!r}")
        self.fs_port = int(line.split()[1])
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        self.rx = ctx.Process(target=_receiver_main, args=(q,), daemon=True)
        self.rx.start()
        self.rx_port = q.get(timeout=60)
        self.pg = Pg(a.pg_sync_commit)

    def stop_servers(self) -> None:
        if self.fs is not None:
            self.fs.terminate()
            try:
                self.fs.wait(10)
            except subprocess.TimeoutExpired:
                self.fs.kill()
        if self.rx is not None:
            self.rx.terminate()
            self.rx.join(10)
        if self.pg is not None:
            self.pg.stop()

    def fs_get(self, path: str) -> Any:
        return http_json(f"http://127.0.0.1:{self.fs_port}{path}", timeout=60)

    def rx_get(self, path: str) -> Any:
        return http_json(f"http://127.0.0.1:{self.rx_port}{path}", timeout=60)

    # -- config
    def write_config(self, storage_url: str) -> Path:
        a = self.args
        base = f"http://127.0.0.1:{self.fs_port}/feed"
        feeds = "".join(f"  - {{url: '{base}/{i}.xml'}}\n" for i in range(a.feeds))
        cfg = self.tmp / f"run{self.runs}.yaml"
        cfg.write_text(
            f"storage: {{url: '{storage_url}'}}\n"
            f"fetch: {{concurrency: {a.concurrency}, per_host: {a.concurrency}, timeout: 60s,"
            " allow_private_networks: true}\n"
            f"defaults: {{interval: {a.interval:g}s, extract: false}}\n"
            "delivery: {first_retry: 1s, max_backoff: 5s}\n"
            "server: {listen: '127.0.0.1:${FW_PORT}'}\n"
            f"channels: {{hook: {{type: webhook, url: 'http://127.0.0.1:{self.rx_port}/hook',"
            f" secret: '{SECRET}', concurrency: {a.channel_concurrency}}}}}\n"
            f"watchlists: [{{name: bench, keywords: [{KEYWORD}], channels: [hook]}}]\n"
            f"feeds:\n{feeds}"
        )
        return cfg

    def undelivered(self, backend: str, where: str) -> int:
        sql = "SELECT count(*) FROM deliveries WHERE state <> 'delivered'"
        if backend == "sqlite":
            with sqlite3.connect(f"file:{where}?mode=ro", uri=True, timeout=30) as conn:
                return int(conn.execute(sql).fetchone()[0])
        assert self.pg is not None
        return int(self.pg.query_one(sql, where))

    # -- one configuration
    def run(self, name: str, backend: str, daemons: int, kill: str | None = None) -> Outcome:
        a = self.args
        self.runs += 1
        out = Outcome(name, backend, daemons, kill, feeds=a.feeds)
        t_start = time.time()
        if backend == "sqlite":
            where = str(self.tmp / f"run{self.runs}.db")
            url = where
        else:
            assert self.pg is not None
            where = f"fw_scale_{self.runs}"
            self.pg.create_db(where)
            url = self.pg.db_url(where)
            pw = urlsplit(url).password or ""
            url = url.replace(f":{pw}@", ":${PGPASSWORD}@")
        cfg = self.write_config(url)
        http_text(f"http://127.0.0.1:{self.fs_port}/_reset")
        if kill == "delivery":
            self.rx_get(f"/_mode?delay={a.slow_delay}&fail=0.2")
        else:
            self.rx_get("/_mode?delay=0&fail=0")
        pg_stmt0 = self.pg.statements(where) if backend == "postgresql" and self.pg else 0
        pg_cpu0 = self.pg.server_cpu() if self.pg else 0.0
        procs: list[Daemon] = []
        for n in range(daemons):
            port = free_port()
            env = dict(os.environ, FW_PORT=str(port))
            if backend == "postgresql":
                env["PGPASSWORD"] = self.pg.cluster.password if self.pg else ""
            log = self.tmp / f"run{self.runs}-d{n}.log"
            with log.open("wb") as fh:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
                    cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            procs.append(Daemon(n, port, proc, log))
        expected_first = sum(
            1 for i in range(a.feeds) for m in range(ITEMS_PER_FEED) if (i + m) % a.alert_every == 0
        )
        t_pass_end: float | None = None
        t_kill: float | None = None
        t_freeze: float | None = None
        last_200 = [-1.0, 0.0]  # the feed server's count of 200s, and when it last changed
        snap: dict[str, float] = {}
        deadline = time.time() + a.first_pass_limit + (a.steady + 2) * a.interval + DAEMON_TTL + 300
        kill_after = 1.1 * a.interval + DAEMON_TTL + 2 * SLACK
        try:
            while True:
                if time.time() > deadline:
                    out.notes.append("time limit reached before the run completed")
                    break
                time.sleep(1.0 if "cpu0" in snap else 0.2)
                for d in procs:
                    d.sample()
                    if d.killed_at is None and d.proc.poll() is not None:
                        out.notes.append(f"daemon {d.n} exited early ({d.proc.returncode})")
                        d.killed_at = time.time()
                stats = self.fs_get("/_stats")
                now = time.time()
                if "cpu0" not in snap and stats.get("polls", 0) > 0:
                    # Started: what the daemons spent starting up is not the polls' cost.
                    snap["cpu0"] = sum(d.cpu_total() for d in procs)
                if t_pass_end is None and stats.get("feeds_polled", 0) >= a.feeds:
                    t_pass_end = now
                    snap["cpu"] = sum(d.cpu_total() for d in procs)
                    snap["polls"] = stats["polls"]
                    if backend == "postgresql" and self.pg:
                        snap["stmts"] = self.pg.statements(where)
                    if self.pg:
                        snap["pg_cpu"] = self.pg.server_cpu()
                if t_pass_end is None and now - t_start > a.first_pass_limit:
                    out.notes.append("first pass did not finish within the limit")
                    break
                if kill and t_kill is None:
                    victim = procs[1]
                    due = False
                    if kill == "pass":
                        due = stats.get("feeds_polled", 0) >= a.feeds // 2
                    else:
                        rx = self.rx_get("/_stats")
                        due = rx["unique"] >= expected_first // 4
                        if due:
                            out.notes.append(
                                f"at the kill: {rx['unique']} alerts received, "
                                f"{rx['inflight']} requests in flight at the receiver"
                            )
                    if due:
                        victim.sample()
                        victim.polls_metric = victim.scrape_polls()
                        os.killpg(victim.proc.pid, signal.SIGKILL)
                        t_kill = victim.killed_at = time.time()
                        out.notes.append(
                            f"SIGKILL daemon 1 at {t_kill - t_start:.1f}s "
                            f"({stats.get('feeds_polled', 0)} of {a.feeds} feeds polled once)"
                        )
                if t_pass_end is None:
                    continue
                steady_done = now >= t_pass_end + a.steady * a.interval
                kill_done = t_kill is None or now >= t_kill + kill_after
                if kill and t_kill is None:
                    kill_done = False
                if t_freeze is None and steady_done and kill_done:
                    http_text(f"http://127.0.0.1:{self.fs_port}/_mode?freeze=1")
                    t_freeze = now
                if t_freeze is not None:
                    # Once every feed was polled after the freeze, polls are 304s; wait until
                    # the last 200's items are stored and every alert was answered.
                    if stats["feed_200"] != last_200[0]:
                        last_200[:] = [stats["feed_200"], now]
                    settled = a.steady == 0 or now >= t_freeze + (1 + JITTER) * a.interval + SLACK
                    if settled and now >= last_200[1] + 5:
                        rx = self.rx_get("/_stats")
                        left = self.undelivered(backend, where)
                        if left == 0 and rx["inflight"] == 0:
                            break
                    if now > t_freeze + 2 * a.interval + DAEMON_TTL + 60:
                        out.notes.append(f"{left} deliveries still undelivered at the end")
                        break
            t_end = time.time()
            for d in procs:
                d.sample()
                if d.killed_at is None:
                    d.polls_metric = d.scrape_polls()
            end_stats = self.fs_get("/_stats")
            cpu_end = sum(d.cpu_total() for d in procs)
            stmts_end = self.pg.statements(where) if backend == "postgresql" and self.pg else 0
            if a.statements and backend == "postgresql" and self.pg:
                for calls, rows, ms, text in self.pg.top_statements(where):
                    out.notes.append(
                        f"{calls / max(1, end_stats['polls']):7.3f}/poll, "
                        f"{rows / max(1, calls):6.1f} rows/call, {ms / max(1, calls):6.2f} ms: {text}"
                    )
            pg_cpu_end = self.pg.server_cpu() if self.pg else 0.0
        finally:
            for d in procs:
                if d.killed_at is None and d.proc.poll() is None:
                    os.killpg(d.proc.pid, signal.SIGTERM)
            for d in procs:
                try:
                    d.exit_code = d.proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(d.proc.pid, signal.SIGKILL)
                    d.exit_code = d.proc.wait(10)
                    out.notes.append(f"daemon {d.n} needed SIGKILL at the end")
                if d.killed_at is not None and d.exit_code == -signal.SIGKILL:
                    d.exit_code = None  # killed by the test, not an exit
        out.wall_s = t_end - t_start
        out.queued_left = self.undelivered(backend, where)
        hits = {int(k): v for k, v in self.fs_get("/_hits").items()}
        rx = self.rx_get("/_stats?full=1")
        if a.save:
            a.save.mkdir(parents=True, exist_ok=True)
            (a.save / f"run{self.runs}-{backend}-{daemons}-{kill}.json").write_text(
                json.dumps({"t_start": t_start, "t_kill": t_kill, "t_freeze": t_freeze,
                            "hits": hits, "receiver": rx})
            )  # fmt: skip
        self.evaluate(out, hits, rx, t_kill, t_freeze)
        out.polls = end_stats["polls"]
        if t_pass_end is not None and snap:
            first_polls = max(1, snap["polls"])
            steady_polls = max(1, end_stats["polls"] - snap["polls"])
            out.steady_polls = int(end_stats["polls"] - snap["polls"])
            out.cpu_first = (snap["cpu"] - snap.get("cpu0", 0.0)) / first_polls
            out.cpu_steady = (cpu_end - snap["cpu"]) / steady_polls
            if backend == "postgresql":
                out.statements_first = (snap["stmts"] - pg_stmt0) / first_polls
                out.statements_steady = (stmts_end - snap["stmts"]) / steady_polls
                out.pg_cpu_first = (snap["pg_cpu"] - pg_cpu0) / first_polls
                out.pg_cpu_steady = (pg_cpu_end - snap["pg_cpu"]) / steady_polls
        out.rss_main = [d.hwm_main for d in procs]
        # Workers are recycled (``max_tasks``): the largest one's peak, not a sum over pids.
        out.rss_workers = [max(d.hwm_workers.values(), default=0.0) for d in procs]
        out.worker_pids = [len(d.hwm_workers) for d in procs]
        out.polls_per_daemon = [d.polls_metric for d in procs]
        out.exit_codes = [d.exit_code for d in procs]
        for d in procs:
            for line in d.log.read_text(errors="replace").splitlines():
                if "Traceback" in line or " CRITICAL " in line:
                    out.notes.append(f"daemon {d.n} log: {line[:160]}")
                    break
        return out

    def evaluate(
        self,
        out: Outcome,
        hits: dict[int, list[list[Any]]],
        rx: dict[str, Any],
        t_kill: float | None,
        t_freeze: float | None,
    ) -> None:
        a = self.args
        lo = (1 - JITTER) * a.interval - SLACK
        hi = (1 + JITTER) * a.interval + SLACK
        firsts = [h[0][0] for h in hits.values() if h]
        if len(firsts) == a.feeds:
            out.first_pass_s = max(firsts) - min(firsts)
        else:
            out.notes.append(f"only {len(firsts)} of {a.feeds} feeds were ever polled")
        t_last_poll = max((h[-1][0] for h in hits.values() if h), default=0.0)
        expected: set[str] = set()
        base = f"http://127.0.0.1:{self.fs_port}/article"
        recovered: list[float] = []
        for i, polls in hits.items():
            times = [p[0] for p in polls]
            for prev, nxt in itertools.pairwise(times):
                gap = nxt - prev
                out.gaps.append(gap / a.interval)
                across_kill = t_kill is not None and prev <= t_kill + 1 and nxt > t_kill
                if gap < lo:
                    out.early += 1
                    # The killed daemon fetched it but never recorded the poll: polled again
                    # once the dead daemon's lease was taken over. Expected after a kill.
                    if across_kill:
                        out.early_after_kill += 1
                if across_kill and (gap < lo or gap > hi):
                    out.taken_over += 1
                    recovered.append(nxt - t_kill)
                limit = hi + (DAEMON_TTL if across_kill else 0)
                if gap > limit:
                    out.late += 1
            # Never polled before the kill (a claim of the dead daemon's, perhaps): taken over.
            if t_kill is not None and times and times[0] > t_kill + hi + DAEMON_TTL:
                out.late += 1
            # A feed must still be polled at the end: none dropped out of the schedule.
            if times and t_last_poll - times[-1] > hi + (DAEMON_TTL if t_kill else 0):
                out.late += 1
            top = max((p[2] for p in polls if p[1] == 200), default=-1)
            for m in range(top + ITEMS_PER_FEED if top >= 0 else 0):
                if (i + m) % a.alert_every == 0:
                    expected.add(f"{base}/{i}/{m}")
        out.max_gap_ratio = max(out.gaps, default=0.0)
        if recovered:
            out.recovery_s = max(recovered)
        ok: dict[str, int] = rx.get("ok", {})
        urls: dict[str, str] = rx.get("url", {})
        by_url: dict[str, set[str]] = {}
        for wid, url in urls.items():
            by_url.setdefault(url, set()).add(wid)
        out.expected_alerts = len(expected)
        out.delivered = len(by_url)
        out.lost = len(expected - set(by_url))
        out.unexpected = len(set(by_url) - expected)
        out.two_ids = sum(1 for ids in by_url.values() if len(ids) > 1)
        out.resends = sum(n - 1 for n in ok.values() if n > 1)
        out.notes.append(
            f"receiver: {rx.get('requests', 0)} requests, {rx.get('s503', 0)} answered 503"
        )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- report


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def report(results: list[Outcome], args: argparse.Namespace, pg_version: str) -> bool:
    print()
    print(
        f"N = {args.feeds} feeds, interval {args.interval:g}s (jitter +-10 %), a new item per "
        f"feed every {args.roll:g}s, 1 item in {args.alert_every} alerts; fetch concurrency "
        f"{args.concurrency}; PostgreSQL {pg_version} (fsync on, synchronous_commit "
        f"{'on' if args.pg_sync_commit else 'off'}); SQLite WAL synchronous=NORMAL; "
        f"DAEMON_TTL {DAEMON_TTL:g}s"
    )
    print()
    head = (
        "| run | daemons | first pass s | passes/s | feeds/s | polls | polls/feed/interval "
        "(gap/interval min-max) | early / late gaps | alerts expected | delivered once | lost "
        "| two ids | resends | stmts/poll first, steady | daemon CPU ms/poll first, steady "
        "| PG CPU ms/poll first, steady | peak RSS MB per daemon: main (largest worker, workers seen) | polls per daemon |"
    )
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for r in results:
        g = r.gaps
        ppi = (
            f"{statistics.mean(1 / x for x in g if x > 0):.3f} ({min(g):.2f}-{max(g):.2f})"
            if g
            else "-"
        )
        early = f"{r.early}" + (f" ({r.early_after_kill} re-polls after kill)" if r.kill else "")
        stm = (
            "-"
            if r.statements_first is None
            else f"{r.statements_first:.2f}, {r.statements_steady:.2f}"
        )
        pgc = (
            "-"
            if r.pg_cpu_first is None or r.backend == "sqlite"
            else f"{r.pg_cpu_first * 1000:.2f}, {(r.pg_cpu_steady or 0) * 1000:.2f}"
        )
        rss = ", ".join(
            f"{m:.0f} (worker {w:.0f}, {n} seen)"
            for m, w, n in zip(r.rss_main, r.rss_workers, r.worker_pids, strict=False)
        )
        per = ", ".join("-" if p is None else f"{p:.0f}" for p in r.polls_per_daemon)
        print(
            f"| {r.name} | {r.daemons} | {r.first_pass_s:.1f} | {r.passes_per_s:.4f} | "
            f"{r.feeds / r.first_pass_s if r.first_pass_s else 0:.0f} | {r.polls} | {ppi} | "
            f"{early} / {r.late} | {r.expected_alerts} | {r.delivered} | {r.lost} | {r.two_ids} | "
            f"{r.resends} | {stm} | {r.cpu_first * 1000:.2f}, {r.cpu_steady * 1000:.2f} | {pgc} | "
            f"{rss} | {per} |"
        )
    print()
    all_ok = True
    for r in results:
        verdict = "ok" if r.ok else "FAILED"
        all_ok &= r.ok
        extra = (
            f"; {r.taken_over} feeds off schedule across the kill, the last polled again "
            f"{r.recovery_s:.1f}s after it (limit: interval x1.1 + DAEMON_TTL)"
            if r.recovery_s is not None
            else ""
        )
        print(
            f"- {r.name}: {verdict}; wall {r.wall_s:.0f}s; exit codes {r.exit_codes}; "
            f"queued at the end {r.queued_left}{extra}"
        )
        for note in r.notes:
            print(f"    {note}")
    sq = next((r for r in results if r.backend == "sqlite" and r.daemons == 1 and not r.kill), None)
    pg1 = next(
        (r for r in results if r.backend == "postgresql" and r.daemons == 1 and not r.kill), None
    )
    if sq and pg1 and sq.first_pass_s and pg1.first_pass_s:
        ratio = pg1.passes_per_s / sq.passes_per_s
        cpu_ratio = sq.cpu_steady / pg1.cpu_steady if pg1.cpu_steady else 0.0
        met = ratio >= 0.7
        all_ok &= met
        print()
        print(
            f"PostgreSQL 1 daemon vs SQLite 1 daemon, first pass: {ratio:.2f}x "
            f"(target >= 0.7x: {'met' if met else 'NOT MET'}); steady-state daemon CPU per poll "
            f"SQLite/PostgreSQL {cpu_ratio:.2f}x (PostgreSQL's server CPU not included)"
        )
    for r in results:
        if r.backend == "postgresql" and r.daemons > 1 and pg1 and pg1.first_pass_s and not r.kill:
            print(
                f"PostgreSQL {r.daemons} daemons vs 1, first pass: {r.passes_per_s / pg1.passes_per_s:.2f}x"
            )
    print()
    print("ALL CHECKS PASSED" if all_ok else "SOME CHECKS FAILED")
    return all_ok


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--feeds", type=int, default=10000)
    ap.add_argument("--interval", type=float, default=120.0, help="seconds between polls of a feed")
    ap.add_argument(
        "--roll", type=float, default=0.0, help="seconds between new items (default 2x interval)"
    )
    ap.add_argument("--alert-every", type=int, default=50)
    ap.add_argument("--steady", type=int, default=2, help="intervals after the first pass")
    ap.add_argument("--concurrency", type=int, default=128)
    ap.add_argument("--channel-concurrency", type=int, default=8)
    ap.add_argument("--slow-delay", type=float, default=0.2, help="receiver delay in the kill test")
    ap.add_argument("--first-pass-limit", type=float, default=600.0)
    ap.add_argument("--save", type=Path, help="keep each run's poll log and receiver counts here")
    ap.add_argument(
        "--statements", action="store_true", help="list the most frequent statements per run"
    )
    ap.add_argument("--pg-sync-commit", action="store_true", help="synchronous_commit = on")
    ap.add_argument(
        "--runs",
        default="sqlite1,pg1,pg2,pg3,kill-pass,kill-delivery",
        help="comma-separated subset of sqlite1,pg1,pg2,pg3,kill-pass,kill-delivery",
    )
    args = ap.parse_args()

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM too: stop the daemons and servers on the way out

    signal.signal(signal.SIGTERM, interrupted)
    if args.roll <= 0:
        args.roll = 2 * args.interval
    random.seed(7)
    plan = {
        "sqlite1": ("SQLite", "sqlite", 1, None),
        "pg1": ("PostgreSQL", "postgresql", 1, None),
        "pg2": ("PostgreSQL", "postgresql", 2, None),
        "pg3": ("PostgreSQL", "postgresql", 3, None),
        "kill-pass": ("kill mid-pass", "postgresql", 3, "pass"),
        "kill-delivery": ("kill mid-delivery", "postgresql", 3, "delivery"),
    }
    wanted = [w.strip() for w in args.runs.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in plan]
    if unknown:
        ap.error(f"unknown runs: {', '.join(unknown)}")
    print(f"machine: {machine()}", flush=True)
    results: list[Outcome] = []
    pg_version = "?"
    with tempfile.TemporaryDirectory(prefix="feedwatch-scale-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            bench.start_servers()
            assert bench.pg is not None
            pg_version = str(bench.pg.version)
            for key in wanted:
                name, backend, daemons, kill = plan[key]
                t0 = time.time()
                print(f"run {key}: {name}, {daemons} daemon(s)...", flush=True)
                r = bench.run(name, backend, daemons, kill)
                results.append(r)
                print(
                    f"  done in {time.time() - t0:.0f}s: first pass {r.first_pass_s:.1f}s, "
                    f"{r.polls} polls, alerts {r.delivered}/{r.expected_alerts}, lost {r.lost}, "
                    f"early {r.early}, late {r.late}; {machine()}",
                    flush=True,
                )
        finally:
            bench.stop_servers()
    return 0 if report(results, args, pg_version) else 1


if __name__ == "__main__":
    sys.exit(main())
