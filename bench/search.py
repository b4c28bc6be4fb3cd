"""Search benchmark: what the full-text index costs a first pass, and what a search costs.

    python bench/search.py [--feeds N] [--rounds R]

Starts ``bench/feedserver.py`` (as ``bench/fetch.py`` does: 20-item RSS feeds on 127.0.0.1)
and runs feedwatch's real first pass (``Daemon.run_once``, every feed new, extraction off, one
watchlist) on a fresh SQLite database, alternately **with** the search index (the default:
FTS5 triggers on every stored article) and **without** it (``SQLiteStorage(search_index=
False)``: the same code with the index's triggers dropped), ``R`` rounds of each, every pass in
its own process. The ratio of the median first-pass rates is the index's overhead (target:
under 10 %). Then, on the last indexed database (N x 20 articles), it times searches through
``Storage.search_articles`` (best of 5, 20 results with snippets) and the dashboard's
article listing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from fetch import feedwatch_config, machine  # noqa: E402

TARGET = 0.10  # the index may slow the first pass by less than 10 %
QUERIES = [  # words of the feed server's articles (bench/feedserver.py)
    ("a common word", "council"),
    ("a word found nowhere", "zyzzyva"),
    ("a phrase in every title", '"bench feed"'),
    ("a prefix", "harb*"),
    ("AND / NOT", "market NOT council"),
    ("OR and AND, filtered by feed", "(market OR harbour) budget"),
]


def run_child(args: list[str], timeout: float) -> dict[str, Any]:
    """This script in a child mode (its own process); its last stdout line is a JSON result."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark child {args[1]} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_pass(port: int, db: Path, n: int, concurrency: int, index: bool) -> None:
    from monitor.daemon import Daemon
    from storage.sqlite import SQLiteStorage

    async def main() -> dict[str, Any]:
        cfg = feedwatch_config(port, db, range(n), False, concurrency)
        storage = SQLiteStorage(db, search_index=index)
        async with Daemon(cfg, storage=storage) as d:
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            await d.run_once()
            dt = time.perf_counter() - t0
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            return {
                "index": index,
                "seconds": dt,
                "feeds": d.stats.polls,
                "errors": d.stats.errors,
                "new": d.stats.new_articles,
                "feeds_per_s": d.stats.polls / dt,
                # CPU of the main process (event loop and the SQLite thread, where indexing
                # runs): less sensitive than wall time to other work on a shared machine.
                "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
                "lag_p99_ms": d.lag.percentile(99) * 1000,
                "db_mb": sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 2**20,
            }

    print(json.dumps(asyncio.run(main())))


def child_queries(db: Path, port: int) -> None:
    from storage.sqlite import SQLiteStorage

    async def main() -> dict[str, Any]:
        st = SQLiteStorage(db)
        await st.open("readonly")
        out: dict[str, Any] = {"articles": await st.count_rows("articles"), "queries": []}
        feed = f"http://127.0.0.1:{port}/feed/7.xml"
        cases: list[tuple[str, str | None, dict[str, Any]]] = [
            (label, q, {"feed_keys": [feed]} if "filter" in label else {}) for label, q in QUERIES
        ]
        cases += [("newest, no query (page 1)", None, {}), ("newest, page 500", None,
                  {"offset": 500 * 20}), ("a feed's newest articles", None, {"feed_keys": [feed]})]  # fmt: skip
        try:
            for label, q, kw in cases:
                times, hits = [], []
                for _ in range(5):
                    t0 = time.perf_counter()
                    hits = await st.search_articles(q, limit=20, **kw)
                    times.append(time.perf_counter() - t0)
                out["queries"].append(
                    {"label": label, "query": q, "ms": min(times) * 1000, "hits": len(hits)}
                )
        finally:
            await st.close()
        return out

    print(json.dumps(asyncio.run(main())))


PAGES = [
    ("overview", "/"),
    ("feeds table (first 100, by name)", "/feeds"),
    ("feeds table sorted by errors, page 50", "/feeds?sort=errors&dir=desc&page=50"),
    ("a feed (its history and newest articles)", "/feeds/7"),
    ("articles, newest first", "/articles"),
    ("search: a common word", "/articles?q=council"),
    ("search: phrase, last 7 days", '/articles?q="bench feed"&since=7d'),
    ("an article with every watchlist's verdict", "/articles/{middle}"),
    ("alerts", "/alerts"),
]


def child_pages(db: Path, port: int, n: int) -> None:
    """The dashboard (`feedwatch web`'s code) over the indexed database: time each page."""
    import aiohttp

    from monitor.settings import ServerSettings
    from monitor.web.serve import serve

    async def main() -> dict[str, Any]:
        cfg = feedwatch_config(port, db, range(n), False, 128)
        cfg = cfg.model_copy(update={"server": ServerSettings(listen="127.0.0.1:0")})
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(cfg, stop, ready.set_result))
        out = []
        try:
            base = f"http://127.0.0.1:{await ready}"
            async with aiohttp.ClientSession() as http:
                for label, path in PAGES:
                    path = path.replace("{middle}", str(n * 10))
                    times = []
                    for _ in range(5):
                        t0 = time.perf_counter()
                        async with http.get(base + path) as resp:
                            body = await resp.read()
                            status = resp.status
                        times.append(time.perf_counter() - t0)
                    out.append({"label": label, "path": path, "status": status,
                                "kb": len(body) / 1024, "ms": statistics.median(times) * 1000,
                                "first_ms": times[0] * 1000})  # fmt: skip
        finally:
            stop.set()
            await task
        return {"pages": out}

    print(json.dumps(asyncio.run(main())))


def main() -> int:
    ap = argparse.ArgumentParser(description="feedwatch search benchmark (loopback only)")
    ap.add_argument("--feeds", type=int, default=10_000, help="feeds in the first pass")
    ap.add_argument(
        "--rounds", type=int, default=3,
        help="first passes with and without the index (0: one indexed pass, searches only)",
    )  # fmt: skip
    ap.add_argument("--concurrency", type=int, default=128, help="feedwatch fetch.concurrency")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "pass":
        child_pass(args.port, Path(args.db), args.feeds, args.concurrency, bool(args.index))
        return 0
    if args.child == "queries":
        child_queries(Path(args.db), args.port)
        return 0
    if args.child == "pages":
        child_pages(Path(args.db), args.port, args.feeds)
        return 0

    server = subprocess.Popen(
        [sys.executable, str(BENCH / "feedserver.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    runs: list[dict[str, Any]] = []
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("listening "):
            raise SystemExit(f"feed server did not start: {line!r}")
        port = int(line.split()[1])
        with tempfile.TemporaryDirectory(prefix="feedwatch-search-bench-") as tmp:
            last_indexed = None
            for r in range(max(1, args.rounds)):
                order = (False, True) if r % 2 == 0 else (True, False)
                for index in order if args.rounds else (True,):
                    db = Path(tmp) / f"r{r}-{'on' if index else 'off'}" / "fw.db"
                    db.parent.mkdir()
                    print(f"round {r + 1}: first pass of {args.feeds} feeds, index "
                          f"{'on' if index else 'off'} ...", flush=True)  # fmt: skip
                    res = run_child(
                        ["--child", "pass", "--port", str(port), "--db", str(db), "--feeds",
                         str(args.feeds), "--concurrency", str(args.concurrency),
                         "--index", str(int(index))], 1800,
                    )  # fmt: skip
                    print(f"  {res['feeds_per_s']:.0f} feeds/s, {res['seconds']:.1f} s, "
                          f"{res['new']} articles, {res['db_mb']:.0f} MB", flush=True)  # fmt: skip
                    runs.append(res)
                    if index:
                        last_indexed = db
            assert last_indexed is not None
            print("searches on the indexed database ...", flush=True)
            qs = run_child(
                ["--child", "queries", "--db", str(last_indexed), "--port", str(port)], 600
            )
            print("dashboard pages on the indexed database ...", flush=True)
            pages = run_child(
                ["--child", "pages", "--db", str(last_indexed), "--port", str(port),
                 "--feeds", str(args.feeds)], 600,
            )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)

    print()
    print(f"machine: {machine()}")
    print(f"command: python bench/search.py --feeds {args.feeds} --rounds {args.rounds}")
    met = True
    if args.rounds:
        met = report_passes(runs)
    report_searches(qs, pages, args.feeds)
    return 0 if met else 1


def report_passes(runs: list[dict[str, Any]]) -> bool:
    on = [r["feeds_per_s"] for r in runs if r["index"]]
    off = [r["feeds_per_s"] for r in runs if not r["index"]]
    slowdown = 1 - statistics.median(on) / statistics.median(off)
    cpu_on = statistics.median(r["cpu_s"] for r in runs if r["index"])
    cpu_off = statistics.median(r["cpu_s"] for r in runs if not r["index"])
    print()
    print("| first pass | feeds/s (each run) | median | seconds | main-process CPU s | articles "
          "| lag p99 ms | database MB |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, flag in (("without the search index", False), ("with the search index", True)):
        rs = [r for r in runs if r["index"] is flag]
        each = ", ".join(f"{r['feeds_per_s']:.0f}" for r in rs)
        print(
            f"| {label} | {each} | "
            f"{statistics.median(r['feeds_per_s'] for r in rs):.0f} | "
            f"{statistics.median(r['seconds'] for r in rs):.1f} | "
            f"{statistics.median(r['cpu_s'] for r in rs):.1f} | {rs[0]['new']} | "
            f"{max(r['lag_p99_ms'] for r in rs):.0f} | {statistics.median(r['db_mb'] for r in rs):.0f} |"
        )
    met = slowdown < TARGET
    print()
    print(f"search index overhead on the first pass: {slowdown * 100:.1f} % of the feed rate "
          f"(target < {TARGET * 100:.0f} %: {'yes' if met else 'NO'}); main-process CPU "
          f"{(cpu_on / cpu_off - 1) * 100:+.1f} %")  # fmt: skip
    return met


def report_searches(qs: dict[str, Any], pages: dict[str, Any], feeds: int) -> None:
    print()
    print(f"searches over {qs['articles']} articles (Storage.search_articles, 20 results with "
          "snippets, best of 5):")  # fmt: skip
    print()
    print("| search | query | hits | ms |")
    print("| --- | --- | --- | --- |")
    for q in qs["queries"]:
        shown = "(none)" if q["query"] is None else f"`{q['query']}`"
        print(f"| {q['label']} | {shown} | {q['hits']} | {q['ms']:.1f} |")
    print()
    print(f"dashboard pages (`feedwatch web` over the same database and {feeds} configured "
          "feeds; median of 5 GETs, whole response):")  # fmt: skip
    print()
    print("| page | path | status | KB | median ms | first ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for p in pages["pages"]:
        print(f"| {p['label']} | `{p['path']}` | {p['status']} | {p['kb']:.0f} | {p['ms']:.0f} "
              f"| {p['first_ms']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
