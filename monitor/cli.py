"""The ``feedwatch`` command: parses arguments, builds the pieces, runs them. No business logic.

Exit codes, for every command (a cron job or a healthcheck can act on them):

- 0: all well
- 1: a fatal error (nothing done, or the run aborted)
- 2: the config is invalid (`run` refuses exactly what `check` refuses, with the same messages)
- 3: the command completed but something needs attention (a feed failed, an alert failed or is
  still queued, a page could not be read, nothing found); a one-line summary on stderr says what
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.logs import get_logger
from monitor.settings import Config, ConfigError, load_config, parse_duration

log = get_logger("feedwatch")

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_ATTENTION = 0, 1, 2, 3
READ_ONLY = ("check", "status", "alerts", "try", "test-alert", "demo", "search", "web")


class CliError(Exception):
    """A user-facing failure: printed as one line on stderr."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


def attention(message: str) -> int:
    """The one-line summary of what needs attention, and exit code 3."""
    print(f"feedwatch: {message}", file=sys.stderr)
    return EXIT_ATTENTION


# ---------------------------------------------------------------------- arguments


def _common_options(suppress: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the command (`feedwatch -c x run` = `feedwatch run -c x`).

    On the commands their defaults are suppressed, so a value given before the command is not
    overwritten by the command's default.
    """
    kw: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        help="config file (default: $FEEDWATCH_CONFIG, else ./config/feedwatch.yaml)",
        **kw,
    )
    common.add_argument(
        "--debug", action="store_true", help="debug logs, and tracebacks on errors", **kw
    )
    common.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="the least severe log lines shown (default: info for run, warning otherwise)",
        **kw,
    )
    common.add_argument(
        "--log-json",
        action="store_true",
        help="log one JSON object per line (ts, level, event and each field as a key)",
        **kw,
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common_options(suppress=True)
    p = argparse.ArgumentParser(
        prog="feedwatch",
        description="Watch feeds, extract articles, match watchlists, send alerts.",
        epilog="exit codes: 0 all well, 1 fatal error, 2 invalid config, 3 needs attention",
        parents=[_common_options(suppress=False)],
    )
    p.add_argument("--version", action="version", version=f"feedwatch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="run the daemon (or one pass with --once)")
    run.add_argument(
        "--once",
        action="store_true",
        help="poll every enabled feed now, deliver, drain, exit (3 if a feed or alert failed)",
    )

    sub.add_parser(
        "check",
        parents=[common],
        help="validate the config, watchlists and storage location; print a summary",
    )
    demo = sub.add_parser("demo", parents=[common], help="offline try-out on bundled sample feeds")
    demo.add_argument("--keep", metavar="DIR", help="keep the demo's database and config in DIR")

    status = sub.add_parser(
        "status", parents=[common], help="per-feed health (exit 3 if a feed or alert failed)"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")

    tr = sub.add_parser(
        "try", parents=[common], help="show what a watchlist matches on pages or stored articles"
    )
    tr.add_argument("--watchlist", "-w", required=True, help="the watchlist's name")
    tr.add_argument(
        "sources", nargs="*", metavar="URL_OR_FILE", help="pages (http/https) or local files"
    )
    tr.add_argument("--stored", action="store_true", help="also re-run over stored articles")
    tr.add_argument("--since", default="7d", help="with --stored: how far back (default 7d)")
    tr.add_argument("--json", action="store_true", help="machine-readable output")

    al = sub.add_parser(
        "alerts", parents=[common], help="list alerts and their delivery state; `alerts retry`"
    )
    al.add_argument("--failed", action="store_true", help="only alerts with a failed channel")
    al.add_argument("--since", default=None, help="only alerts newer than this (e.g. 1d)")
    al.add_argument("--json", action="store_true", help="machine-readable output")
    al.add_argument("--limit", type=int, default=200, help="show at most this many (default 200)")
    al.add_argument(
        "action", nargs="?", choices=["retry"], help="retry: re-queue one alert, or all --failed"
    )
    al.add_argument("alert_id", nargs="?", help="with retry: the alert's id (msg_...)")

    se = sub.add_parser(
        "search",
        parents=[common],
        help="full-text search of stored articles, ranked, with snippets (exit 3 if none)",
        description='Query syntax: words, "exact phrases", prefix*, AND (implied), OR, NOT or '
        "-word, parentheses. Case and accents are ignored. See docs/search.md.",
    )
    se.add_argument(
        "query", metavar="QUERY", help="what to find, e.g. '\"evacuation order\" NOT drill'"
    )
    se.add_argument(
        "--feed", action="append", default=[], metavar="NAME",
        help="only articles of this feed (its name or URL in the config); repeatable",
    )  # fmt: skip
    se.add_argument(
        "--tag", action="append", default=[], metavar="T",
        help="only articles of feeds with this tag; repeatable (with --feed: either)",
    )  # fmt: skip
    se.add_argument("--watchlist", "-w", metavar="W", help="only articles this watchlist alerted")
    se.add_argument("--since", metavar="AGE", help="only articles stored in this period (e.g. 7d)")
    se.add_argument(
        "--limit", type=int, default=20, metavar="N", help="show at most N (default 20, max 1000)"
    )
    se.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser(
        "web",
        parents=[common],
        help="serve the dashboard over the database alone (server: settings; default "
        "127.0.0.1:9308) until stopped",
        description="The dashboard without the daemon: pages read the database read-only; "
        "re-queueing an alert writes it. Listens on server.listen (127.0.0.1:9308 when the "
        "config has no server: block); beyond loopback it needs server.token.",
    )

    en = sub.add_parser("enable", parents=[common], help="re-enable a feed disabled after 410 Gone")
    en.add_argument("feed", help="the feed's name or URL")

    ad = sub.add_parser(
        "add",
        parents=[common],
        help="what can be watched at a URL (feeds, sitemaps, article links); config to paste",
    )
    ad.add_argument("url", help="a site's home or section page, a feed or a sitemap")

    ms = sub.add_parser(
        "migrate-storage",
        parents=[common],
        help="copy the configured database into another (SQLite to PostgreSQL) and verify it",
    )
    ms.add_argument(
        "--to", required=True, metavar="URL", help="the destination: postgresql://user:pass@host/db"
    )
    ms.add_argument(
        "--replace",
        action="store_true",
        help="empty a destination that already holds feedwatch data first (a half-done copy)",
    )

    ta = sub.add_parser(
        "test-alert",
        parents=[common],
        help="send a sample alert through one channel (exit 0 delivered, 1 not)",
    )
    ta.add_argument("channel", help="the channel's name in the config")
    return p


# ---------------------------------------------------------------------- entry points


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: `feedwatch ...`."""
    try:
        code = asyncio.run(run_cli(argv))
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `feedwatch alerts --json | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def console() -> None:
    """The `feedwatch` command: :func:`main`, then exit without the interpreter's teardown.

    Everything the command opened is closed by then (storage, worker pool, servers); what is
    left is freeing a hundred imported modules one object at a time, and joining the thread
    that may still be starting a worker: 0.2-0.3 s of a `run --once` from cron, for nothing.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    logging.shutdown()
    os._exit(code)


async def run_cli(argv: Sequence[str] | None = None) -> int:
    """Parse, run and map errors to exit codes; tests call this in-process."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    if not args.command:
        _parser().print_help()
        return EXIT_FAIL
    from monitor.logs import setup_logging

    default_level = "warning" if args.command in READ_ONLY else "info"
    setup_logging(
        "debug" if args.debug else (args.log_level or default_level), as_json=args.log_json
    )
    try:
        return await _dispatch(args)
    except ConfigError as exc:
        for line in exc.errors:
            print(
                f"feedwatch: {exc.source}: {line}" if exc.source else f"feedwatch: {line}",
                file=sys.stderr,
            )
        return EXIT_CONFIG
    except CliError as exc:
        print(f"feedwatch: {_redact(str(exc))}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        raise
    except Exception as exc:
        if args.debug:
            raise
        from storage.base import StorageError

        if isinstance(exc, StorageError):
            print(f"feedwatch: storage: {_redact(str(exc))}", file=sys.stderr)
        else:
            print(
                f"feedwatch: {type(exc).__name__}: {_redact(str(exc))} "
                "(run with --debug for details)",
                file=sys.stderr,
            )
        return EXIT_FAIL


def _redact(text: str) -> str:
    from monitor.logs import redact

    return redact(text)


def _load(args: argparse.Namespace) -> Config:
    from monitor.logs import register_secrets
    from monitor.settings import iter_secrets

    cfg = load_config(args.config)
    register_secrets(iter_secrets(cfg))  # logs and command output never show them
    return cfg


async def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "demo":
        from monitor.demo import run_demo

        return await run_demo(keep=Path(args.keep) if args.keep else None)
    if cmd == "add":
        return await cmd_add(args)
    cfg = _load(args)
    if cmd == "check":
        return await cmd_check(cfg)
    if cmd == "run":
        return await cmd_run(cfg, once=args.once, config_path=args.config)
    if cmd == "status":
        return await cmd_status(cfg, as_json=args.json)
    if cmd == "alerts":
        return await cmd_alerts(cfg, args)
    if cmd == "enable":
        return await cmd_enable(cfg, args.feed)
    if cmd == "search":
        return await cmd_search(cfg, args)
    if cmd == "web":
        return await cmd_web(cfg)
    if cmd == "test-alert":
        return await cmd_test_alert(cfg, args.channel)
    if cmd == "migrate-storage":
        return await cmd_migrate_storage(cfg, args.to, replace=args.replace)
    if cmd == "try":
        from monitor.trywatch import TryError, cmd_try

        try:
            return await cmd_try(cfg, args)
        except TryError as exc:
            raise CliError(str(exc)) from None
    raise CliError(f"unknown command {cmd}")


async def _open_existing(cfg: Config, role: str = "readonly") -> Any:
    """The storage, opened, if its database exists; None if nothing has run yet.

    Read-only commands never create a database.
    """
    from storage import database_exists, open_storage

    if not database_exists(cfg.storage.url):
        return None
    storage = open_storage(cfg.storage.url, open_timeout=10)
    await storage.open(role)  # type: ignore[arg-type]
    return storage


# ---------------------------------------------------------------------- check


async def cmd_check(cfg: Config) -> int:
    from monitor.summary import config_summary
    from monitor.validate import validate

    await validate(cfg)  # raises ConfigError: exit 2, every problem listed
    print(_redact(config_summary(cfg)))
    return EXIT_OK


# ---------------------------------------------------------------------- run


async def cmd_run(cfg: Config, once: bool, config_path: str | None = None) -> int:
    from monitor.daemon import Daemon, install_signal_handlers, reload_on_signal
    from monitor.validate import validate

    matcher = await validate(cfg)  # what `check` refuses, `run` refuses
    stop = asyncio.Event()
    reload = asyncio.Event()
    install_signal_handlers(stop, reload)
    async with Daemon(cfg, matcher=matcher, freeze_heap=True) as daemon:
        if once:
            runner = asyncio.create_task(daemon.run_once())
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                stopper.cancel()
                report = runner.result()
                if report.attention:
                    return attention(report.summary())
                return EXIT_OK
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            log.info("interrupted; queued alerts stay queued for the next run")
            return EXIT_OK
        reloader = asyncio.create_task(reload_on_signal(daemon, config_path, reload))
        try:
            return await daemon.run(stop)
        finally:
            reloader.cancel()


# ---------------------------------------------------------------------- status


def _ago(dt: datetime | None, now: datetime) -> str:
    from monitor.humanize import ago

    return ago(dt, now, compact=True)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def _line(value: Any, limit: int = 300) -> str:
    """Text from feeds or storage as one printable line (no escapes from a hostile title)."""
    from monitor.deliver.render import clean_line
    from monitor.logs import redact

    return redact(clean_line(value, limit))


async def _daemon_health(cfg: Config) -> dict[str, Any] | None:
    """Ask the running daemon's /healthz (when `server:` is configured)."""
    if cfg.server is None:
        return None
    import aiohttp

    from monitor.settings import split_listen

    host, port = split_listen(cfg.server.listen)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as s:
            async with s.get(url) as resp:
                body = await resp.json(content_type=None)
                return {"reachable": True, "healthy": resp.status == 200, **body}
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
        return {"reachable": False, "healthy": False, "url": url}


EXTRACT_FAILURE_WINDOW = timedelta(hours=24)  # `status`: pages that gave no text, this far back


async def cmd_status(cfg: Config, as_json: bool) -> int:
    from monitor.feeds import feed_display_name, feed_health, poll_time
    from monitor.urls import feed_key
    from storage import check_location

    storage = await _open_existing(cfg)
    failed_alerts = 0
    states: dict[str, Any] = {}
    daemons: list[Any] = []
    unextracted: dict[int, Any] = {}
    if storage is not None:
        try:
            states = {
                s.key: s for s in await storage.list_feeds([feed_key(f.url) for f in cfg.feeds])
            }
            failed_alerts = len(await storage.list_alerts(failed_only=True, limit=1000))
            daemons = await storage.list_daemons()
            unextracted = await storage.extract_failures(datetime.now(UTC) - EXTRACT_FAILURE_WINDOW)
        finally:
            await storage.close()
    storage_problems = await check_location(cfg.storage.url)
    daemon = await _daemon_health(cfg)

    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for feed in cfg.feeds:
        st = states.get(feed_key(feed.url))
        disabled = (not feed.enabled) or bool(st and st.disabled)
        due = poll_time(st) if st else None
        server_wait = bool(st and st.retry_after and due == st.retry_after and due > now)
        fails = unextracted.get(st.id) if st else None
        rows.append(
            {
                "name": _line(feed_display_name(feed, st)),
                "url": _line(st.url if st else feed_key(feed.url), 2000),
                "http_status": st.http_status if st else None,
                "last_poll": _iso(st.last_poll) if st else None,
                "next_poll": None if disabled else (_iso(due) if due else _iso(now)),
                "error_count": st.error_count if st else 0,
                "last_error": _line(st.last_error) if st and st.last_error else None,
                "disabled": disabled,
                "disabled_reason": (
                    _line(st.disabled)
                    if st and st.disabled
                    else ("disabled in config" if not feed.enabled else None)
                ),
                "items_per_day": round(st.items_per_day, 2)
                if st and st.items_per_day is not None
                else None,
                "state": "disabled" if disabled else (feed_health(st) if st else "new"),
                "last_polled_by": st.last_polled_by if st else None,
                # Items of the last 24 h stored with the feed's summary: their page gave no text.
                "pages_not_extracted_24h": fails.count if fails else 0,
                "last_extract_error": _line(fails.last_error) if fails else None,
                "_state": st,
                "_due": due,
                "_server_wait": server_wait,
            }
        )
    failing = sum(1 for r in rows if r["state"] == "failing")
    disabled_n = sum(1 for r in rows if r["disabled"])
    never = sum(1 for r in rows if r["last_poll"] is None and not r["disabled"])
    ok = len(rows) - failing - disabled_n - never
    summary = {
        "feeds": len(rows),
        "ok": ok,
        "failing": failing,
        "disabled": disabled_n,
        "never_polled": never,
        "alerts_failed": failed_alerts,
        "database": "missing (nothing has run yet)" if storage is None else "ok",
        "storage_problems": storage_problems,
    }
    trouble: list[str] = []
    if failing:
        trouble.append(f"{failing} feed{'s' if failing != 1 else ''} failing")
    if disabled_n:
        trouble.append(f"{disabled_n} disabled")
    if failed_alerts:
        trouble.append(f"{failed_alerts} alert{'s' if failed_alerts != 1 else ''} failed")
    if storage_problems:
        trouble.append("storage: " + storage_problems[0])
    if daemon is not None and daemon.get("reachable") and not daemon.get("healthy"):
        trouble.append(f"daemon unhealthy: {daemon.get('storage', 'see /healthz')}")

    running = [d for d in daemons if d.alive(now)]
    summary["daemons_running"] = [d.id for d in running]
    if as_json:
        out = {
            "summary": summary,
            "daemon": daemon,
            "feeds": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(
            f"{len(rows)} feeds: {ok} ok, {failing} failing, {disabled_n} disabled, "
            f"{never} never polled; {failed_alerts} failed alerts"
        )
        if storage is None:
            print(f"database: none yet at {cfg.storage.url} (`feedwatch run` creates it)")
        elif running:
            print(f"daemons:  {len(running)} running ({', '.join(d.id for d in running)})")
        else:
            print("daemons:  none running")
        for p in storage_problems:
            print(f"storage: {_line(p)}")
        if daemon is not None:
            if not daemon.get("reachable"):
                print(f"daemon: not reachable at {daemon.get('url')} (not running?)")
            else:
                print(
                    f"daemon: {daemon.get('daemon', '?')}, "
                    f"{'healthy' if daemon.get('healthy') else 'UNHEALTHY'}, "
                    f"storage {_line(daemon.get('storage', '?'))}"
                )
        print()
        for r in rows:
            _print_feed(r, now)
    if trouble:
        return attention("; ".join(trouble))
    return EXIT_OK


def _print_feed(r: dict[str, Any], now: datetime) -> None:
    st = r["_state"]
    mark = {"disabled": "DISABLED", "failing": "FAILING", "new": "NEW"}.get(r["state"], "ok")
    if r["state"] == "ok" and r["last_poll"] is None:
        mark = "NEW"
    print(f"[{mark}] {r['name']}")
    print(f"    url:        {r['url']}")
    line = f"    last poll:  {_ago(st.last_poll if st else None, now)}"
    if r["http_status"]:
        line += f" (HTTP {r['http_status']})"
    print(line)
    if r["items_per_day"] is not None:
        print(f"    new items:  {r['items_per_day']:g}/day")
    if r["last_polled_by"]:
        print(f"    polled by:  {r['last_polled_by']}")
    if r["disabled"]:
        print(f"    disabled:   {r['disabled_reason']}")
    elif r["_server_wait"]:
        print(f"    next poll:  {_ago(r['_due'], now)} (the server asked us to wait)")
    else:
        print(f"    next poll:  {_ago(r['_due'], now) if r['_due'] else 'now'}")
    if r["error_count"]:
        print(f"    errors:     {r['error_count']} in a row; last: {r['last_error']}")
    if r["pages_not_extracted_24h"]:
        n = r["pages_not_extracted_24h"]
        print(
            f"    pages:      {n} in 24 h kept the feed's summary (no text from the page); "
            f"last: {r['last_extract_error']}"
        )


# ---------------------------------------------------------------------- add


async def cmd_add(args: argparse.Namespace) -> int:
    """Look at a URL; the config, when there is one, gives the fetch settings (SSRF guard...)."""
    from monitor.discover import discover, render_report
    from monitor.settings import FetchSettings, resolve_config_path

    settings = FetchSettings()
    if args.config or resolve_config_path(None).exists():
        settings = _load(args).fetch
    found = await discover(args.url, settings)
    print(_redact(render_report(found)), end="")
    if not found.proposed:
        return attention(found.error or f"nothing to watch found at {args.url}")
    return EXIT_OK


# ---------------------------------------------------------------------- enable


async def cmd_enable(cfg: Config, ref: str) -> int:
    from monitor.urls import feed_key
    from storage import open_storage

    matches = [f for f in cfg.feeds if ref in (f.name, f.url, feed_key(f.url))]
    storage = open_storage(cfg.storage.url)
    await storage.open()
    try:
        if not matches:  # also accept the feed's own title, as `status` shows it
            states = await storage.list_feeds([feed_key(f.url) for f in cfg.feeds])
            titled = {s.title: s.key for s in states if s.title}
            matches = [f for f in cfg.feeds if feed_key(f.url) == titled.get(ref)]
        if not matches:
            raise CliError(
                f"no configured feed named {ref!r} (give its name or URL as in the config)"
            )
        key = feed_key(matches[0].url)
        state = await storage.get_feed(key)
        if state is None or not state.disabled:
            print(f"{ref}: not disabled; nothing to do")
            return EXIT_OK
        await storage.set_feed_disabled(key, None)
    finally:
        await storage.close()
    print(f"{ref}: re-enabled (was: {_line(state.disabled)}); it is polled on the next run")
    return EXIT_OK


# ---------------------------------------------------------------------- alerts


def _since(value: str | None) -> datetime | None:
    """``--since 7d`` as the moment that long ago; a bad duration is a usage error."""
    if not value:
        return None
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None


async def cmd_alerts(cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "retry":
        return await _alerts_retry(cfg, args)
    if args.alert_id:
        raise CliError(
            f"unexpected {args.alert_id!r} (did you mean `alerts retry {args.alert_id}`?)"
        )
    since = _since(args.since)
    storage = await _open_existing(cfg)
    if storage is None:
        alerts = []
    else:
        try:
            alerts = await storage.list_alerts(
                since=since, failed_only=args.failed, limit=args.limit
            )
        finally:
            await storage.close()
    if args.json:
        out = [_alert_json(a) for a in alerts]
        print(json.dumps({"alerts": out}, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not alerts:
        print("no alerts" + (" with a failed channel" if args.failed else ""))
        return EXIT_OK
    now = datetime.now(UTC)
    for a in alerts:
        art = a.payload.get("article", {})
        print(
            f"{a.id}  {_ago(a.created_at, now)}  [{_line(a.watchlist)}] {_line(art.get('title'))}"
        )
        print(f"    {_line(art.get('url'), 2000)}")
        for d in a.deliveries:
            detail = d.state
            if d.state == "delivered":
                detail += f" ({_ago(d.delivered_at, now)})"
            elif d.state in ("pending", "in_flight"):
                detail += f", attempt {d.attempts}, next {_ago(d.next_attempt, now)}"
            else:
                detail += f" after {d.attempts} attempt{'s' if d.attempts != 1 else ''}"
            if d.last_error and d.state != "delivered":
                detail += f": {_line(d.last_error)}"
            print(f"    -> {d.channel}: {detail}")
        if a.copies:
            outlets = {c.payload.get("article", {}).get("feed") for c in a.copies}
            print(f"    also reported by {len(a.copies)} ({len(outlets)} outlets):")
            for c in a.copies:
                art = c.payload.get("article", {})
                print(f"      · {_line(art.get('feed'))}: {_line(art.get('title'))}")
                print(f"        {_line(art.get('url'), 2000)}")
    return EXIT_OK


def _alert_json(a: Any) -> dict[str, Any]:
    out = _alert_state(a)
    out["also_reported"] = [
        {**_alert_state(c), "feed": c.payload.get("article", {}).get("feed")} for c in a.copies
    ]
    return out


def _alert_state(a: Any) -> dict[str, Any]:
    return {
        "id": a.id,
        "type": a.kind,
        "watchlist": a.watchlist,
        "created_at": _iso(a.created_at),
        "title": a.payload.get("article", {}).get("title"),
        "url": a.payload.get("article", {}).get("url"),
        "channels": {
            d.channel: {
                "state": d.state,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "next_attempt": _iso(d.next_attempt)
                if d.state in ("pending", "in_flight")
                else None,
                "delivered_at": _iso(d.delivered_at),
            }
            for d in a.deliveries
        },
    }


async def _alerts_retry(cfg: Config, args: argparse.Namespace) -> int:
    if not args.alert_id and not args.failed:
        raise CliError("alerts retry needs an alert ID or --failed")
    storage = await _open_existing(cfg, "command")
    if storage is None:
        raise CliError(f"no database yet at {cfg.storage.url}: there are no alerts to retry")
    try:
        if args.alert_id:
            alert = await storage.get_alert(args.alert_id)
            if alert is None:
                raise CliError(f"no such alert: {args.alert_id} (see `feedwatch alerts`)")
        n = await storage.requeue(alert_id=args.alert_id, failed=args.failed, now=datetime.now(UTC))
    finally:
        await storage.close()
    if args.alert_id and n == 0:
        states = ", ".join(f"{d.channel}: {d.state}" for d in alert.deliveries) or "no channels"
        print(f"{args.alert_id}: nothing to re-queue ({states})")
        return EXIT_OK
    print(
        f"re-queued {n} deliver{'y' if n == 1 else 'ies'}; a running daemon (or the next "
        "`feedwatch run`) sends them"
    )
    return EXIT_OK


# ---------------------------------------------------------------------- migrate-storage


async def cmd_migrate_storage(cfg: Config, to: str, *, replace: bool) -> int:
    """Copy every table into ``to``; the source is opened as a daemon, so on SQLite a running
    daemon is refused (stop it first: the copy must see a database that does not change)."""
    from monitor.logs import register_secrets
    from monitor.settings import userinfo_secrets
    from storage import database_exists, mask_url, open_storage
    from storage.copy import CopyError, copy_storage

    register_secrets(userinfo_secrets(to))
    if not database_exists(cfg.storage.url):
        raise CliError(f"no database at {cfg.storage.url}: nothing to copy")
    src = open_storage(cfg.storage.url, open_timeout=10)
    dst = open_storage(to, open_timeout=30)
    if src.description == dst.description:
        raise CliError("the destination is the configured database itself")
    await src.open("daemon")
    try:
        await dst.open("command")  # creates the schema there
        try:

            def progress(table: str, done: int, total: int) -> None:
                if total and (done == total or done % 20_000 == 0):
                    print(f"  {table}: {done:,} of {total:,}", file=sys.stderr, flush=True)

            print(f"copying {src.description} -> {dst.description}", file=sys.stderr)
            try:
                report = await copy_storage(src, dst, progress=progress, replace=replace)
            except CopyError as exc:
                print(f"feedwatch: {_redact(str(exc))}", file=sys.stderr)
                return EXIT_FAIL
        finally:
            await dst.close()
    finally:
        await src.close()
    print(f"copied and verified: {report.summary()}")
    print("Now change one line of your config (then restart the daemons):")
    print(f"  storage:\n    url: {mask_url(to).replace(':***@', ':${PGPASSWORD}@')}")
    return EXIT_OK


# ---------------------------------------------------------------------- web


async def cmd_web(cfg: Config) -> int:
    from monitor.daemon import install_signal_handlers
    from monitor.settings import ServerSettings
    from monitor.web.serve import serve
    from storage import database_exists

    if not database_exists(cfg.storage.url):
        raise CliError(
            f"no database yet at {cfg.storage.url} (`feedwatch run` or `feedwatch demo --keep "
            "DIR` creates one)"
        )
    settings = cfg.server or ServerSettings()
    host = settings.listen.rpartition(":")[0].strip("[]") or "127.0.0.1"
    stop = asyncio.Event()
    install_signal_handlers(stop)

    def listening(port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        print(f"feedwatch web: http://{shown}:{port}/ (Ctrl-C stops)", flush=True)

    try:
        return await serve(cfg, stop, listening)
    except OSError as exc:
        raise CliError(str(exc)) from None


# ---------------------------------------------------------------------- search


async def cmd_search(cfg: Config, args: argparse.Namespace) -> int:
    from monitor.feeds import UnknownFeed, select_feeds
    from storage.search import QueryError, parse_query

    try:
        parse_query(args.query)
    except QueryError as exc:
        raise CliError(f"search: {exc}") from None
    try:
        keys = select_feeds(cfg.feeds, args.feed, args.tag)
    except UnknownFeed as exc:
        raise CliError(f"search: {exc}") from None
    if args.watchlist and args.watchlist not in {w.name for w in cfg.watchlists}:
        names = ", ".join(w.name for w in cfg.watchlists) or "none configured"
        raise CliError(f"search: no watchlist named {args.watchlist!r} (watchlists: {names})")
    if not 1 <= args.limit <= 1000:
        raise CliError("search: --limit must be between 1 and 1000")
    since = _since(args.since)
    storage = await _open_existing(cfg)
    if storage is None:
        if args.json:
            print(json.dumps({"query": args.query, "results": []}, indent=2))
        return attention(f"no database yet at {cfg.storage.url}: nothing stored to search")
    try:
        hits = await storage.search_articles(
            args.query, feed_keys=keys, watchlist=args.watchlist, since=since, limit=args.limit
        )
    finally:
        await storage.close()
    if args.json:
        out = [
            {
                "id": h.article_id,
                "title": h.title,
                "url": h.url,
                "feed": h.feed_name,
                "published": _iso(h.published),
                "fetched_at": _iso(h.fetched_at),
                "rank": round(h.rank, 6),
                "snippet": h.snippet,
                "highlights": [list(m) for m in h.marks],
                "watchlists": list(h.watchlists),
            }
            for h in hits
        ]
        print(json.dumps({"query": args.query, "results": out}, indent=2, ensure_ascii=False))
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        for n, h in enumerate(hits, 1):
            print(f"{n}. {_marked(h.title, h.title_marks, color)}")
            meta = [_line(h.feed_name or "?")]
            when = h.published or h.fetched_at
            meta.append(when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))
            if h.watchlists:
                meta.append("alerted: " + ", ".join(_line(w) for w in h.watchlists))
            print("   " + " · ".join(meta))
            if h.url:
                print(f"   {_line(h.url, 2000)}")
            if h.snippet:
                print(f"   {_marked(h.snippet, h.marks, color)}")
    if not hits:
        return attention(f"no stored article matches {_line(args.query)!r}")
    if not args.json:
        more = " (the first --limit)" if len(hits) == args.limit else ""
        print(f"\n{len(hits)} article{'s' if len(hits) != 1 else ''} found{more}")
    return EXIT_OK


def _marked(text: str, marks: Sequence[tuple[int, int]], color: bool) -> str:
    """``text`` as one printable line with its marked spans bold (a terminal) or [bracketed]."""

    def plain(seg: str) -> str:
        cleaned = _line(seg)
        if not cleaned:
            return " " if seg else ""
        lead = " " if seg[:1].isspace() else ""
        return lead + cleaned + (" " if seg[-1:].isspace() else "")

    out, pos = [], 0
    for a, b in marks:
        out.append(plain(text[pos:a]))
        found = _line(text[a:b])
        out.append(f"\033[1;33m{found}\033[0m" if color else f"[{found}]")
        pos = b
    out.append(plain(text[pos:]))
    return "".join(out).strip()


# ---------------------------------------------------------------------- test-alert


def sample_payload(channel: str) -> dict[str, Any]:
    from monitor.alert import sample_alert

    return sample_alert(channel, datetime.now(UTC), os.urandom(8).hex()).to_json()


async def cmd_test_alert(cfg: Config, channel: str) -> int:
    from monitor.deliver.base import delivery_session, make_sender

    if channel not in cfg.channels:
        names = ", ".join(cfg.channels) or "none configured"
        raise CliError(f"no channel named {channel!r} (channels: {names})")
    async with delivery_session(cfg.fetch) as session:
        sender = make_sender(
            channel,
            cfg.channels[channel],
            session,
            allow_private_networks=cfg.fetch.allow_private_networks,
        )
        try:
            result = await asyncio.wait_for(sender.send([sample_payload(channel)]), 60)
        except TimeoutError:
            print(f"{channel}: not delivered: no answer within 60s", file=sys.stderr)
            return EXIT_FAIL
    if result.ok:
        print(f"{channel}: delivered" + (f" (HTTP {result.status})" if result.status else ""))
        return EXIT_OK
    kind = (
        "will be retried by the daemon for real alerts" if result.retryable else "permanent failure"
    )
    print(f"{channel}: not delivered: {_line(result.error)} ({kind})", file=sys.stderr)
    return EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
