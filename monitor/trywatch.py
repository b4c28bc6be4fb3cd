"""`feedwatch try`: what a watchlist would match, on pages or files or stored articles, and why."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.extract import ExtractError, extract_article
from monitor.fetch import Fetcher
from monitor.match import Document, Match, Matcher
from monitor.models import FetchError
from monitor.settings import Config, Watchlist, parse_duration
from monitor.workers import CpuPool, TaskTimeout

PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"


class TryError(Exception):
    pass


@dataclass
class TryResult:
    source: str
    title: str
    matched: bool
    matches: list[Match] = field(default_factory=list)
    error: str | None = None
    published: str | None = None


def _highlight(snippet: str, text: str, tty: bool) -> str:
    if not text:
        return snippet
    i = snippet.find(text)
    if i < 0:
        i = snippet.lower().find(text.lower())
    if i < 0:
        return snippet
    found = snippet[i : i + len(text)]
    mark = f"\033[1;33m{found}\033[0m" if tty else f"[{found}]"
    return snippet[:i] + mark + snippet[i + len(text) :]


def _find_watchlist(cfg: Config, name: str) -> Watchlist:
    for wl in cfg.watchlists:
        if wl.name == name:
            return wl
    names = ", ".join(w.name for w in cfg.watchlists) or "none configured"
    raise TryError(f"no watchlist named {name!r} (watchlists: {names})")


def _read_file(src: str) -> tuple[bytes, str]:
    path = Path(src)
    return path.read_bytes(), path.resolve().as_uri()


async def _load_source(
    src: str, fetcher: Fetcher | None, pool: CpuPool, timeout: float
) -> tuple[str, str]:
    """(title, body text) of a URL or a local file (HTML is extracted, text read as is)."""
    if src.startswith(("http://", "https://")):
        assert fetcher is not None
        resp = await fetcher.get(src, accept=PAGE_ACCEPT)
        ex = await pool.run(timeout, extract_article, resp.body, resp.url)
        return ex.title or "", ex.text
    try:
        raw, uri = await asyncio.to_thread(_read_file, src)
    except FileNotFoundError:
        raise TryError(f"{src}: no such file (give an http(s) URL or a path)") from None
    if src.lower().endswith((".html", ".htm")) or raw.lstrip()[:1] == b"<":
        ex = await pool.run(timeout, extract_article, raw, uri)
        return ex.title or "", ex.text
    text = raw.decode("utf-8", errors="replace")
    first, _, rest = text.partition("\n")
    return first.strip(), rest.strip()


async def cmd_try(cfg: Config, args: argparse.Namespace) -> int:
    wl = _find_watchlist(cfg, args.watchlist)
    # The feeds filter is about where alerts come from; `try` shows what the terms match.
    probe = wl.model_copy(update={"feeds": []})
    matcher = Matcher.build([probe])
    results: list[TryResult] = []
    if args.stored:
        results = await _try_stored(cfg, matcher, wl.name, parse_duration(args.since))
    if args.sources:
        results += await _try_sources(cfg, matcher, wl.name, args.sources)
    if not args.stored and not args.sources:
        raise TryError("give one or more URLs or files, or --stored")
    _print(results, wl, as_json=args.json, stored=args.stored)
    return 0


async def _try_sources(
    cfg: Config, matcher: Matcher, name: str, sources: list[str]
) -> list[TryResult]:
    pool = CpuPool(1)
    out: list[TryResult] = []
    needs_http = any(s.startswith(("http://", "https://")) for s in sources)
    fetcher = Fetcher(cfg.fetch) if needs_http else None
    try:
        if fetcher:
            await fetcher.__aenter__()
        for src in sources:
            try:
                title, body = await _load_source(src, fetcher, pool, cfg.extraction.timeout)
            except (FetchError, ExtractError, TryError, OSError) as exc:
                out.append(TryResult(src, "", False, error=str(exc)))
                continue
            except TaskTimeout:
                out.append(TryResult(src, "", False, error="extraction took too long"))
                continue
            found = matcher.match(Document(title=title, summary="", body=body))
            out.append(TryResult(src, title, name in found, found.get(name, [])))
    finally:
        if fetcher:
            await fetcher.close()
        pool.close()
    return out


async def _try_stored(cfg: Config, matcher: Matcher, name: str, since: float) -> list[TryResult]:
    from storage import open_storage

    storage = open_storage(cfg.storage.url)
    await storage.open()
    try:
        articles = await storage.articles_since(datetime.now(UTC) - timedelta(seconds=since))
    finally:
        await storage.close()
    out = []
    for a in articles:
        body = a.body if a.body != a.summary else ""
        found = matcher.match(Document(title=a.title, summary=a.summary, body=body))
        if name in found:
            pub = a.published.strftime("%Y-%m-%d %H:%M") if a.published else None
            out.append(
                TryResult(a.url or a.guid or str(a.id), a.title, True, found[name], published=pub)
            )
    return out


def _print(results: list[TryResult], wl: Watchlist, *, as_json: bool, stored: bool) -> None:
    if as_json:
        data: list[dict[str, Any]] = [
            {
                "source": r.source,
                "title": r.title,
                "matched": r.matched,
                "error": r.error,
                "matches": [{**m.to_payload(), "field": m.field} for m in r.matches],
            }
            for r in results
        ]
        print(json.dumps({"watchlist": wl.name, "results": data}, indent=2, ensure_ascii=False))
        return
    tty = sys.stdout.isatty()
    for r in results:
        if r.error:
            print(f"✗ {r.source}\n    error: {r.error}\n")
            continue
        head = "✓ MATCH" if r.matched else "· no match"
        print(f"{head}  {r.title or '(untitled)'}\n    {r.source}")
        if r.published:
            print(f"    published {r.published}")
        for m in r.matches:
            where = f" ({m.place})" if m.place and m.place != m.term else ""
            print(f"    {m.kind} {m.term!r}{where} found {m.text!r} in {m.field}")
            print(f"      {_highlight(m.snippet, m.text, tty)}")
        if not r.matched:
            print(
                "    (nothing matched, or an exclude term occurred, or a require term is missing)"
            )
        print()
    hits = sum(r.matched for r in results)
    scope = "stored articles" if stored else "sources"
    print(f"{hits} of {len(results)} {scope} match watchlist {wl.name!r}")
