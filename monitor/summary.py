"""The one-screen summary `feedwatch check` prints. Secrets never appear in it."""

from __future__ import annotations

from monitor.settings import (
    Config,
    format_duration,
    hide_userinfo,
    mask_url,
)

MAX_FEEDS_SHOWN = 15


def _size(n: int) -> str:
    for unit, div in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= div:
            return f"{n / div:g}{unit}"
    return f"{n}B"


def _interval(v: float | str) -> str:
    return v if isinstance(v, str) else format_duration(v)


def _channel(name: str, ch: object) -> str:
    from monitor.deliver.registry import channel_type

    desc = channel_type(ch).describe(ch)
    digest = getattr(ch, "digest", None)
    if digest is not None:
        desc += f", digest {digest}"
    return f"  {name}: {desc}"


def config_summary(cfg: Config) -> str:
    lines: list[str] = []
    src = str(cfg.path) if cfg.path else "<config>"
    lines.append(f"config OK: {src}")
    store = cfg.storage
    where = str(store.sqlite_path) if store.backend == "sqlite" else mask_url(store.url)
    lines.append(f"storage: {store.backend} ({where})")
    f = cfg.fetch
    lines.append(
        f"fetch: timeout {format_duration(f.timeout)}, max {_size(f.max_bytes)}, {f.concurrency} in flight "
        f"({f.per_host} per host), private networks {'allowed' if f.allow_private_networks else 'refused'}"
    )
    d = cfg.defaults
    lines.append(
        f"defaults: every {_interval(d.interval)}, extract {'on' if d.extract else 'off'}, "
        f"alert on items newer than {format_duration(d.max_age)}"
    )
    enabled = [x for x in cfg.feeds if x.enabled]
    lines.append("")
    lines.append(
        f"feeds: {len(cfg.feeds)} ({len(enabled)} enabled)"
        + (f", {len(cfg.feeds_from)} OPML file(s)" if cfg.feeds_from else "")
    )
    for feed in cfg.feeds[:MAX_FEEDS_SHOWN]:
        opts = [f"every {_interval(cfg.feed_interval(feed))}"]
        if not cfg.feed_extract(feed):
            opts.append("no extraction")
        if feed.tags:
            opts.append("tags " + ",".join(feed.tags))
        if not feed.enabled:
            opts.append("DISABLED")
        lines.append(
            f"  {feed.name or '(title from feed)'}: {hide_userinfo(feed.url)} ({'; '.join(opts)})"
        )
    if len(cfg.feeds) > MAX_FEEDS_SHOWN:
        lines.append(f"  ... and {len(cfg.feeds) - MAX_FEEDS_SHOWN} more")
    lines.append("")
    lines.append(f"channels: {len(cfg.channels)}")
    for name, ch in cfg.channels.items():
        lines.append(_channel(name, ch))
    lines.append("")
    lines.append(f"watchlists: {len(cfg.watchlists)}")
    used: set[str] = set()
    for wl in cfg.watchlists:
        used.update(wl.channels)
        parts = []
        if wl.keywords:
            parts.append(f"{len(wl.keywords)} keyword(s)")
        if wl.places:
            parts.append(f"{len(wl.places)} place(s)")
        if wl.require:
            parts.append(f"require {len(wl.require)}")
        if wl.exclude:
            parts.append(f"exclude {len(wl.exclude)}")
        if not (wl.keywords or wl.places or wl.require):
            parts.append("matches EVERY article")
        scope = f" on {', '.join(wl.feeds)}" if wl.feeds else ""
        to = ", ".join(wl.channels) if wl.channels else "NO CHANNEL (alerts are stored only)"
        digest = f", digest {wl.digest}" if wl.digest else ""
        lines.append(f"  {wl.name}: {', '.join(parts)}{scope} -> {to}{digest}")
    unused = [n for n in cfg.channels if n not in used]
    if unused:
        lines.append("")
        lines.append(f"note: channel(s) used by no watchlist: {', '.join(unused)}")
    return "\n".join(lines)
