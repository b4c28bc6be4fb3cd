"""`feedwatch try`: what a watchlist matches on pages, files or stored articles, and why.

Pages are fetched with the daemon's own fetcher (same limits and SSRF guard) and extracted with
the same extractor, so a page matches here exactly as it would in the daemon. Every match is
explained (kind, term, text as found, field, the snippet with the match highlighted); a page
that does not match says why when it can: an exclude term found, a required term missing, no
keyword or place found, and the place mentions that did not count (a common word at the
start of a sentence, a person's name, part of a longer place name...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.deliver.render import clean_line
from monitor.extract import ExtractError, extract_article
from monitor.fetch import PAGE_ACCEPT, Fetcher
from monitor.match import Document, Explanation, Finding, Match, Matcher
from monitor.match.snippet import marked_snippet
from monitor.models import Extracted, FetchError
from monitor.pipeline import article_document
from monitor.settings import Config, PlaceSpec, Watchlist, parse_duration
from monitor.workers import CpuPool, TaskTimeout, WorkerCrashed
from storage import database_exists

FIELDS = ("title", "summary", "body")


class TryError(Exception):
    """A usage error: printed as one line by the CLI."""


@dataclass
class TryResult:
    source: str  # the URL or file as given, or a stored article's URL
    doc: Document | None = None
    explanation: Explanation | None = None
    error: str | None = None
    published: str | None = None
    feed: str | None = None
    stored: bool = False  # a stored article (listed only when it matches)
    too_old: bool = False  # matched, but older than max_age when fetched: it never alerted

    @property
    def matched(self) -> bool:
        return self.explanation is not None and self.explanation.matched


# --------------------------------------------------------------------------- command


async def cmd_try(cfg: Config, args: argparse.Namespace) -> int:
    wl = _find_watchlist(cfg, args.watchlist)
    if not args.stored and not args.sources:
        raise TryError("give one or more URLs or files, or --stored")
    try:
        since = parse_duration(args.since)
    except ValueError as exc:
        raise TryError(f"--since {args.since!r}: {exc}") from None
    results: list[TryResult] = []
    checked = 0
    if args.sources:
        # The feeds filter is about where alerts come from; pages given by hand have no feed.
        matcher = _build(wl.model_copy(update={"feeds": []}))
        results += await _try_sources(cfg, matcher, wl.name, args.sources)
    if args.stored:
        stored, checked = await _try_stored(cfg, _build(wl), wl.name, since)
        results += stored
    if args.json:
        print(json.dumps(_as_json(wl, results, args, checked), indent=2, ensure_ascii=False))
    else:
        out = _Printer(color=_use_color())
        print(out.report(wl, results, args, since, checked))
    failed = [r for r in results if r.error is not None]
    if failed:
        print(
            f"feedwatch: {len(failed)} of {len(results)} page{'s' if len(results) != 1 else ''} "
            "could not be read",
            file=sys.stderr,
        )
        return 3
    return 0


def _build(wl: Watchlist) -> Matcher:
    try:
        return Matcher.build([wl])
    except ValueError as exc:
        raise TryError(str(exc)) from None


def _find_watchlist(cfg: Config, name: str) -> Watchlist:
    for wl in cfg.watchlists:
        if wl.name == name:
            return wl
    names = ", ".join(w.name for w in cfg.watchlists) or "none configured"
    raise TryError(f"no watchlist named {name!r} (watchlists: {names})")


# --------------------------------------------------------------------------- sources


def _extract_with_metadata(html: bytes, url: str) -> Extracted:
    return extract_article(html, url, metadata=True)  # `try` shows the page's own title


def _read_file(src: str) -> tuple[bytes, str]:
    path = Path(src)
    return path.read_bytes(), path.resolve().as_uri()


async def load_source(
    src: str, fetcher: Fetcher | None, pool: CpuPool, timeout: float
) -> tuple[str, str]:
    """(title, body text) of a URL or a local file (HTML is extracted, text read as is)."""
    if src.startswith(("http://", "https://")):
        assert fetcher is not None
        resp = await fetcher.get(src, accept=PAGE_ACCEPT)
        ex = await pool.run(timeout, _extract_with_metadata, resp.body, resp.url)
        return ex.title or "", ex.text
    try:
        raw, uri = await asyncio.to_thread(_read_file, src)
    except FileNotFoundError:
        raise TryError("no such file (give an http(s) URL or a path)") from None
    except IsADirectoryError:
        raise TryError("is a directory (give an http(s) URL or a file)") from None
    if src.lower().endswith((".html", ".htm", ".xhtml")) or raw.lstrip()[:1] == b"<":
        ex = await pool.run(timeout, _extract_with_metadata, raw, uri)
        return ex.title or "", ex.text
    text = raw.decode("utf-8", errors="replace")
    first, _, rest = text.strip().partition("\n")
    return first.strip(), rest.strip()  # a text file: the first line is the title


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
                title, body = await load_source(src, fetcher, pool, cfg.extraction.timeout)
            except FetchError as exc:
                out.append(TryResult(src, error=f"fetch failed: {exc}"))
                continue
            except ExtractError as exc:
                out.append(TryResult(src, error=f"extraction failed: {exc}"))
                continue
            except TryError as exc:
                out.append(TryResult(src, error=str(exc)))
                continue
            except OSError as exc:
                out.append(TryResult(src, error=f"cannot read: {exc.strerror or exc}"))
                continue
            except (TaskTimeout, WorkerCrashed):
                out.append(TryResult(src, error="extraction took too long"))
                continue
            doc = Document(title=title, summary="", body=body)
            out.append(TryResult(src, doc, matcher.explain(doc, name)))
    finally:
        if fetcher:
            await fetcher.close()
        pool.close()
    return out


async def _try_stored(
    cfg: Config, matcher: Matcher, name: str, since: float
) -> tuple[list[TryResult], int]:
    """The stored articles (fetched within ``since``) the watchlist would have alerted."""
    from storage import open_storage

    if not database_exists(cfg.storage.url):
        raise TryError(f"no database yet at {cfg.storage.url} (`feedwatch run` creates it)")
    storage = open_storage(cfg.storage.url, open_timeout=10)
    await storage.open("readonly")
    try:
        articles = await storage.articles_since(datetime.now(UTC) - timedelta(seconds=since))
    finally:
        await storage.close()
    feeds = {f.name: f for f in cfg.feeds if f.name}
    out = []
    for a in articles:
        feed = feeds.get(a.feed_name or "")
        doc = article_document(
            a.title, a.summary, a.body, a.feed_name, tuple(feed.tags) if feed else ()
        )
        ex = matcher.explain(doc, name)
        if ex.matched:
            pub = a.published.strftime("%Y-%m-%d %H:%M UTC") if a.published else None
            source = a.url or a.guid or f"article {a.id}"
            result = TryResult(source, doc, ex, published=pub, feed=a.feed_name, stored=True)
            # As the daemon decides: an item older than max_age when fetched never alerts.
            max_age = cfg.feed_max_age(feed) if feed else cfg.defaults.max_age
            ref = min(a.published, a.fetched_at) if a.published else None
            if ref is not None and (a.fetched_at - ref).total_seconds() > max_age:
                result.too_old = True
            out.append(result)
    return out, len(articles)


# --------------------------------------------------------------------------- output


def _safe(text: str) -> str:
    """Page text as one printable line (no ANSI escapes or controls from a hostile page),
    keeping a space at either end so highlighted parts still join as words."""
    lead = " " if text[:1].isspace() else ""
    trail = " " if text[-1:].isspace() and text.strip() else ""
    return lead + clean_line(text) + trail


def _use_color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _field_text(doc: Document, name: str) -> str:
    return {"title": doc.title, "summary": doc.summary, "body": doc.body}[name]


def _place_label(spec: PlaceSpec) -> str:
    bits = [b for b in (spec.country, spec.within_km and f"{spec.within_km:g} km") if b]
    if spec.country_wide:
        bits.append("country-wide")
    return f"{spec.name} ({', '.join(bits)})" if bits else spec.name


class _Printer:
    """Plain text for people: one block per page, matches with highlighted snippets."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def _c(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def report(
        self,
        wl: Watchlist,
        results: list[TryResult],
        args: argparse.Namespace,
        since: float,
        checked: int,
    ) -> str:
        lines = [self._header(wl), ""]
        for r in results:
            lines += self._result(r)
            lines.append("")
        if args.sources:
            pages = [r for r in results if not r.stored]
            n, hits = len(pages), sum(r.matched for r in pages)
            lines.append(f"{hits} of {n} page{'s' if n != 1 else ''} match watchlist {wl.name!r}")
        if args.stored:
            hits = sum(r.stored and not r.too_old for r in results)
            old = sum(r.too_old for r in results)
            lines.append(
                f"{hits} of {checked} stored article{'s' if checked != 1 else ''} from the "
                f"last {args.since} would have alerted watchlist {wl.name!r}"
                + (f" (feeds: {', '.join(wl.feeds)})" if wl.feeds else "")
                + (
                    f"; {old} more matched but were older than max_age when fetched, "
                    "so they never alert"
                    if old
                    else ""
                )
            )
        return "\n".join(lines)

    def _header(self, wl: Watchlist) -> str:
        parts = []
        if wl.keywords:
            parts.append("keywords " + ", ".join(wl.keywords))
        if wl.places:
            parts.append("places " + ", ".join(_place_label(p) for p in wl.places))
        if wl.require:
            parts.append("require " + ", ".join(wl.require))
        if wl.exclude:
            parts.append("exclude " + ", ".join(wl.exclude))
        terms = " · ".join(parts) or "no terms: matches every article"
        return self._c("1", f"watchlist {wl.name}") + f": {terms}"

    def _result(self, r: TryResult) -> list[str]:
        if r.error is not None or r.explanation is None or r.doc is None:
            return [f"{self._c('1;33', '! error')}  {_safe(r.source)}", f"  {_safe(r.error or '')}"]
        ex, doc = r.explanation, r.doc
        head = self._c("1;32", "✓ MATCH") if ex.matched else self._c("1;31", "✗ no match")
        if r.too_old:
            head = self._c("1;33", "✓ MATCH, too old to alert (max_age)")
        title = _safe(doc.title) or "(untitled)"
        lines = [f"{head}  {self._c('1', title)}", f"  {_safe(r.source)}"]
        meta = [_safe(m) for m in (r.feed, r.published) if m]
        if meta:
            lines.append("  " + " · ".join(meta))
        if ex.matched:
            for m in ex.matches:
                lines += self._match(doc, m)
        else:
            lines += [f"  why: {reason}" for reason in ex.reasons]
            if ex.partial:
                lines.append("  found all the same:")
                for m in ex.partial:
                    lines += self._match(doc, m)
        aside = [f for f in ex.set_aside if not (f.kind == "exclude" and ex.matched)]
        if aside:
            lines.append("  did not count:" if ex.matched else "  set aside:")
            for f in aside:
                lines += self._finding(doc, f, snippet=not ex.matched)
        return lines

    def _match(self, doc: Document, m: Match) -> list[str]:
        via = f" ({m.place})" if m.place and m.place != m.term else ""
        head = f"    {m.kind} {m.term!r}{via}: found {_safe(m.text)!r} in the {m.field}"
        return [head, "      " + self._snippet(_field_text(doc, m.field), m.start, m.text)]

    def _finding(self, doc: Document, f: Finding, *, snippet: bool) -> list[str]:
        what = "exclude term" if f.kind == "exclude" else f.kind
        reason = "" if f.kind == "exclude" else f": {f.reason}"
        lines = [f"    {what} {f.term!r}: {_safe(f.text)!r} in the {f.field}{_safe(reason)}"]
        if snippet:
            lines.append("      " + self._snippet(_field_text(doc, f.field), f.start, f.text))
        return lines

    def _snippet(self, text: str, start: int, found: str) -> str:
        snip, a, b = marked_snippet(text, start, start + len(found))
        found_text = _safe(snip[a:b])
        mark = self._c("1;33", found_text) if self.color else f"[{found_text}]"
        return _safe(snip[:a]) + mark + _safe(snip[b:])


def _as_json(
    wl: Watchlist, results: list[TryResult], args: argparse.Namespace, checked: int
) -> dict[str, Any]:
    def match(m: Match) -> dict[str, Any]:
        return {**m.to_payload(), "field": m.field, "start": m.start, "place": m.place}

    def finding(f: Finding) -> dict[str, Any]:
        return {
            "kind": f.kind,
            "term": f.term,
            "text": f.text,
            "field": f.field,
            "snippet": f.snippet,
            "reason": f.reason,
            "place": f.place,
        }

    items = []
    for r in results:
        ex = r.explanation
        items.append(
            {
                "source": r.source,
                "title": r.doc.title if r.doc else None,
                "feed": r.feed,
                "published": r.published,
                "matched": r.matched,
                "too_old": r.too_old,
                "error": r.error,
                "reasons": list(ex.reasons) if ex else [],
                "matches": [match(m) for m in ex.matches] if ex else [],
                "found_anyway": [match(m) for m in ex.partial] if ex else [],
                "set_aside": [finding(f) for f in ex.set_aside] if ex else [],
            }
        )
    out: dict[str, Any] = {"watchlist": wl.name, "results": items}
    if args.stored:
        out["stored"] = {"since": args.since, "checked": checked}
    return out
