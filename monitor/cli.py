"""The ``feedwatch`` command: parses arguments, builds the pieces, runs them. No business logic."""

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
from monitor.settings import Config, ConfigError, load_config, parse_duration

log = logging.getLogger("feedwatch")

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


class CliError(Exception):
    """A user-facing failure: printed as one line on stderr."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


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
        help="config file (default: $FEEDWATCH_CONFIG or ./config/feedwatch.yaml)",
        **kw,
    )
    common.add_argument("--debug", action="store_true", help="verbose logs and tracebacks", **kw)
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"], **kw)
    common.add_argument(
        "--log-json", action="store_true", help="one JSON object per log line", **kw
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common_options(suppress=True)
    p = argparse.ArgumentParser(
        prog="feedwatch",
        description="Watch RSS/Atom feeds, extract articles, match watchlists, send alerts.",
        parents=[_common_options(suppress=False)],
    )
    p.add_argument("--version", action="version", version=f"feedwatch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="run the daemon (or one pass with --once)")
    run.add_argument(
        "--once", action="store_true", help="poll every feed once, deliver, drain, exit"
    )

    sub.add_parser("check", parents=[common], help="validate the config and print a summary")
    demo = sub.add_parser("demo", parents=[common], help="offline try-out on bundled sample feeds")
    demo.add_argument("--keep", metavar="DIR", help="keep the demo database in DIR")

    status = sub.add_parser("status", parents=[common], help="per-feed health")
    status.add_argument("--json", action="store_true")

    tr = sub.add_parser(
        "try", parents=[common], help="show what a watchlist matches on pages or stored articles"
    )
    tr.add_argument("--watchlist", "-w", required=True)
    tr.add_argument("sources", nargs="*", metavar="URL_OR_FILE")
    tr.add_argument("--stored", action="store_true", help="re-run over stored articles")
    tr.add_argument("--since", default="7d", help="with --stored: how far back (default 7d)")
    tr.add_argument("--json", action="store_true")

    al = sub.add_parser(
        "alerts", parents=[common], help="list alerts and their delivery state; `alerts retry`"
    )
    al.add_argument("--failed", action="store_true", help="only alerts with a failed channel")
    al.add_argument("--since", default=None, help="only alerts newer than this (e.g. 1d)")
    al.add_argument("--json", action="store_true")
    al.add_argument("--limit", type=int, default=200)
    al.add_argument(
        "action", nargs="?", choices=["retry"], help="retry: re-queue an alert or all failed"
    )
    al.add_argument("alert_id", nargs="?", help="with retry: the alert id")

    en = sub.add_parser("enable", parents=[common], help="re-enable a feed disabled after 410 Gone")
    en.add_argument("feed", help="the feed's name or URL")

    ta = sub.add_parser(
        "test-alert", parents=[common], help="send a sample alert through one channel"
    )
    ta.add_argument("channel")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.command:
        _parser().print_help()
        return EXIT_FAIL
    from monitor.logs import setup_logging

    default_level = (
        "warning"
        if args.command in ("check", "status", "alerts", "try", "test-alert", "demo")
        else "info"
    )
    setup_logging(
        "debug" if args.debug else (args.log_level or default_level), as_json=args.log_json
    )
    try:
        return _dispatch(args)
    except ConfigError as exc:
        for line in exc.errors:
            print(
                f"feedwatch: {exc.source}: {line}" if exc.source else f"feedwatch: {line}",
                file=sys.stderr,
            )
        return EXIT_CONFIG
    except CliError as exc:
        print(f"feedwatch: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from storage.base import StorageError

        if isinstance(exc, StorageError):
            print(f"feedwatch: storage: {exc}", file=sys.stderr)
        else:
            print(
                f"feedwatch: {type(exc).__name__}: {exc} (run with --debug for details)",
                file=sys.stderr,
            )
        return EXIT_FAIL


def _load(args: argparse.Namespace) -> Config:
    from monitor.logs import register_secrets
    from monitor.settings import iter_secrets

    cfg = load_config(args.config)
    register_secrets(iter_secrets(cfg))  # logs and command output never show them
    return cfg


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "check":
        return cmd_check(_load(args))
    if cmd == "run":
        return asyncio.run(cmd_run(_load(args), once=args.once, config_path=args.config))
    if cmd == "demo":
        from monitor.demo import run_demo

        return asyncio.run(run_demo(keep=Path(args.keep) if args.keep else None))
    if cmd == "status":
        return asyncio.run(cmd_status(_load(args), as_json=args.json))
    if cmd == "alerts":
        return asyncio.run(cmd_alerts(_load(args), args))
    if cmd == "enable":
        return asyncio.run(cmd_enable(_load(args), args.feed))
    if cmd == "test-alert":
        return asyncio.run(cmd_test_alert(_load(args), args.channel))
    if cmd == "try":
        from monitor.trywatch import TryError, cmd_try

        try:
            return asyncio.run(cmd_try(_load(args), args))
        except TryError as exc:
            raise CliError(str(exc)) from None
    raise CliError(f"unknown command {cmd}")


# ---------------------------------------------------------------------- check


def cmd_check(cfg: Config) -> int:
    from monitor.summary import config_summary

    print(config_summary(cfg))
    return EXIT_OK


# ---------------------------------------------------------------------- run


async def cmd_run(cfg: Config, once: bool, config_path: str | None = None) -> int:
    from monitor.daemon import Daemon, install_signal_handlers, reload_on_signal

    stop = asyncio.Event()
    reload = asyncio.Event()
    install_signal_handlers(stop, reload)
    async with Daemon(cfg) as daemon:
        if once:
            runner = asyncio.create_task(daemon.run_once())
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                stopper.cancel()
                return runner.result()
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
    if dt is None:
        return "never"
    secs = (now - dt).total_seconds()
    future = secs < 0
    secs = abs(secs)
    if secs < 90:
        s = f"{secs:.0f}s"
    elif secs < 5400:
        s = f"{secs / 60:.0f}m"
    elif secs < 172800:
        s = f"{secs / 3600:.1f}h"
    else:
        s = f"{secs / 86400:.1f}d"
    return f"in {s}" if future else f"{s} ago"


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


async def cmd_status(cfg: Config, as_json: bool) -> int:
    from monitor.pipeline import feed_display_name
    from storage import open_storage

    storage = open_storage(cfg.storage.url)
    await storage.open()
    try:
        states = {s.key: s for s in await storage.list_feeds([f.url for f in cfg.feeds])}
    finally:
        await storage.close()
    from monitor.logs import redact

    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for feed in cfg.feeds:
        st = states.get(feed.url)
        disabled = (not feed.enabled) or bool(st and st.disabled)
        due = st.next_poll if st and st.next_poll else None
        server_wait = bool(st and st.retry_after and (due is None or st.retry_after > due))
        if server_wait:
            due = st.retry_after
        rows.append(
            {
                "name": redact(feed_display_name(feed, st)),
                "url": redact(st.url if st else feed.url),
                "http_status": st.http_status if st else None,
                "last_poll": _iso(st.last_poll) if st else None,
                "next_poll": None if disabled else (_iso(due) if due else _iso(now)),
                "error_count": st.error_count if st else 0,
                "last_error": redact(st.last_error) if st and st.last_error else None,
                "disabled": disabled,
                "disabled_reason": (
                    st.disabled
                    if st and st.disabled
                    else ("disabled in config" if not feed.enabled else None)
                ),
                "items_per_day": round(st.items_per_day, 2)
                if st and st.items_per_day is not None
                else None,
                "_state": st,
                "_due": due,
                "_server_wait": server_wait,
            }
        )
    if as_json:
        print(
            json.dumps(
                {"feeds": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]},
                indent=2,
                ensure_ascii=False,
            )
        )
        return EXIT_OK
    failing = sum(1 for r in rows if r["error_count"] and not r["disabled"])
    disabled = sum(1 for r in rows if r["disabled"])
    never = sum(1 for r in rows if r["last_poll"] is None)
    print(
        f"{len(rows)} feeds: {len(rows) - failing - disabled - never} ok, {failing} failing, {disabled} disabled, {never} never polled"
    )
    print()
    for r in rows:
        st = r["_state"]
        if r["disabled"]:
            mark = "DISABLED"
        elif r["error_count"]:
            mark = "FAILING"
        elif r["last_poll"] is None:
            mark = "NEW"
        else:
            mark = "ok"
        print(f"[{mark}] {r['name']}")
        print(f"    url:        {r['url']}")
        line = f"    last poll:  {_ago(st.last_poll if st else None, now)}"
        if r["http_status"]:
            line += f" (HTTP {r['http_status']})"
        print(line)
        if r["items_per_day"] is not None:
            print(f"    new items:  {r['items_per_day']:g}/day")
        if r["disabled"]:
            print(f"    disabled:   {r['disabled_reason']}")
        elif r["_server_wait"]:
            print(f"    next poll:  {_ago(r['_due'], now)} (the server asked us to wait)")
        else:
            print(f"    next poll:  {_ago(r['_due'], now) if r['_due'] else 'now'}")
        if r["error_count"]:
            print(f"    errors:     {r['error_count']} in a row; last: {r['last_error']}")
    return EXIT_OK


# ---------------------------------------------------------------------- enable


async def cmd_enable(cfg: Config, ref: str) -> int:
    from storage import open_storage

    matches = [f for f in cfg.feeds if ref in (f.name, f.url)]
    storage = open_storage(cfg.storage.url)
    await storage.open()
    try:
        if not matches:  # also accept the feed's own title, as `status` shows it
            states = await storage.list_feeds([f.url for f in cfg.feeds])
            titled = {s.title: s.key for s in states if s.title}
            matches = [f for f in cfg.feeds if f.url == titled.get(ref)]
        if not matches:
            raise CliError(
                f"no configured feed named {ref!r} (give its name or URL as in the config)"
            )
        state = await storage.get_feed(matches[0].url)
        if state is None or not state.disabled:
            print(f"{ref}: not disabled; nothing to do")
            return EXIT_OK
        await storage.set_feed_disabled(matches[0].url, None)
    finally:
        await storage.close()
    print(f"{ref}: re-enabled (was: {state.disabled}); it is polled on the next run")
    return EXIT_OK


# ---------------------------------------------------------------------- alerts


async def cmd_alerts(cfg: Config, args: argparse.Namespace) -> int:
    from storage import open_storage

    storage = open_storage(cfg.storage.url)
    await storage.open()
    try:
        if args.action == "retry":
            if not args.alert_id and not args.failed:
                raise CliError("alerts retry needs an alert ID or --failed")
            n = await storage.requeue(
                alert_id=args.alert_id, failed=args.failed, now=datetime.now(UTC)
            )
            if args.alert_id and n == 0:
                raise CliError(f"no undelivered channel for alert {args.alert_id}")
            print(
                f"re-queued {n} deliver{'y' if n == 1 else 'ies'}; a running daemon (or the next `feedwatch run`) sends them"
            )
            return EXIT_OK
        try:
            since = (
                datetime.now(UTC) - timedelta(seconds=parse_duration(args.since))
                if args.since
                else None
            )
        except ValueError as exc:
            raise CliError(f"--since: {exc}") from None
        alerts = await storage.list_alerts(since=since, failed_only=args.failed, limit=args.limit)
    finally:
        await storage.close()
    if args.json:
        out = []
        for a in alerts:
            out.append(
                {
                    "id": a.id,
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
            )
        print(json.dumps({"alerts": out}, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not alerts:
        print("no alerts" + (" with a failed channel" if args.failed else ""))
        return EXIT_OK
    now = datetime.now(UTC)
    for a in alerts:
        art = a.payload.get("article", {})
        print(f"{a.id}  {_ago(a.created_at, now)}  [{a.watchlist}] {art.get('title')}")
        print(f"    {art.get('url')}")
        for d in a.deliveries:
            detail = d.state
            if d.state == "delivered":
                detail += f" ({_ago(d.delivered_at, now)})"
            elif d.state in ("pending", "in_flight"):
                detail += f", attempt {d.attempts}, next {_ago(d.next_attempt, now)}"
            else:
                detail += f" after {d.attempts} attempt{'s' if d.attempts != 1 else ''}"
            if d.last_error and d.state != "delivered":
                detail += f": {d.last_error}"
            print(f"    -> {d.channel}: {detail}")
    return EXIT_OK


# ---------------------------------------------------------------------- test-alert


def sample_payload(channel: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "match",
        "id": f"msg_test_{os.urandom(8).hex()}",
        "watchlist": "feedwatch-test",
        "article": {
            "url": "https://example.org/feedwatch-test-alert",
            "title": "Test alert from feedwatch",
            "published": now,
            "feed": "feedwatch",
            "summary": f"If you can read this, the channel {channel!r} works.",
        },
        "matches": [
            {
                "kind": "keyword",
                "term": "test*",
                "text": "test",
                "snippet": f"This is a test alert sent by `feedwatch test-alert {channel}`.",
            }
        ],
    }


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
    print(f"{channel}: not delivered: {result.error} ({kind})", file=sys.stderr)
    return EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
