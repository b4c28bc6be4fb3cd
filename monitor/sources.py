"""How each kind of source is read: a feed, a news sitemap, a section page.

Every source type shares the rest of the pipeline (conditional GET, the SSRF guard, politeness,
backoff, `status`, dedupe across sources, extraction, matching): a reader only turns a fetched
response into items (``Entry``) and a digest that says whether anything changed. The CPU work
(XML and HTML parsing) runs in the worker pool.

- ``feed``: RSS, Atom, RDF, JSON Feed (``monitor.parse``). Digest: the body's hash, known before
  parsing, so an unchanged body costs no parse.
- ``sitemap``: a news sitemap or a sitemap index (``monitor.sitemap``), read within
  ``fetch.max_bytes`` (a longer one is cut there and its complete ``<url>``s are used). An index
  is followed one level down to its newest child sitemaps (those modified since the last good
  poll, at most ``SITEMAP_CHILDREN``). Digest: the hash of every body read.
- ``page``: an HTML section page whose article links become items (``monitor.sectionpage``).
  Digest: the article links alone, so a page that changed only its ads, clock or "most read"
  box costs nothing downstream.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from monitor.fetch import PAGE_ACCEPT, Fetcher
from monitor.models import Entry, FetchError, FetchResponse, ParsedFeed
from monitor.settings import FeedConfig
from monitor.tasks import article_links, parse_feed, parse_sitemap
from monitor.urls import strip_userinfo
from monitor.workers import CpuPool

PARSE_TIME_LIMIT = 60.0
SITEMAP_ACCEPT = "application/xml, text/xml;q=0.9, application/x-gzip;q=0.8, */*;q=0.1"
SITEMAP_CHILDREN = 3  # child sitemaps of an index read per poll at most


@dataclass(slots=True)
class SourceRead:
    entries: list[Entry]
    title: str | None = None
    ttl: float | None = None
    digest: str | None = None  # equal to the stored one: nothing changed
    warning: str | None = None
    format: str = ""


@dataclass(slots=True)
class ReadContext:
    feed: FeedConfig
    pool: CpuPool
    fetcher: Fetcher
    now: datetime
    last_success: datetime | None
    extra_fetches: list[FetchResponse] = field(default_factory=list)  # for metrics


class SourceReader(Protocol):
    accept: str | None
    truncate: bool  # read up to fetch.max_bytes instead of refusing a longer body

    def quick_digest(self, resp: FetchResponse) -> str | None:
        """A digest known before parsing (None when only parsing can tell)."""

    async def read(self, resp: FetchResponse, ctx: ReadContext) -> SourceRead: ...


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _host(url: str) -> str | None:
    return urlsplit(url).hostname


class FeedReader:
    accept: str | None = None  # the fetcher's feed Accept header
    truncate = False

    def quick_digest(self, resp: FetchResponse) -> str | None:
        return body_digest(resp.body)

    async def read(self, resp: FetchResponse, ctx: ReadContext) -> SourceRead:
        parsed: ParsedFeed = await ctx.pool.run(
            PARSE_TIME_LIMIT,
            parse_feed,
            resp.body,
            resp.url,
            resp.content_type,
            key=_host(resp.url),
        )
        return SourceRead(
            entries=parsed.entries,
            title=parsed.title,
            ttl=parsed.ttl,
            digest=body_digest(resp.body),
            warning=parsed.warning,
            format=parsed.format,
        )


class SitemapReader:
    accept: str | None = SITEMAP_ACCEPT
    truncate = True

    def quick_digest(self, resp: FetchResponse) -> str | None:
        return None  # an index's children may change while the index does not

    async def read(self, resp: FetchResponse, ctx: ReadContext) -> SourceRead:
        limit = ctx.fetcher.settings.max_bytes
        top = await ctx.pool.run(
            PARSE_TIME_LIMIT,
            parse_sitemap,
            resp.body,
            resp.url,
            ctx.now,
            limit,
            ctx.last_success,
            SITEMAP_CHILDREN,
            key=_host(resp.url),
        )
        hashes = [body_digest(resp.body)]
        warnings = [top.warning] if top.warning else []
        entries = list(top.entries)
        title = top.title
        if top.kind == "index":
            for child in top.children:
                try:
                    sub = await ctx.fetcher.get(child.url, accept=SITEMAP_ACCEPT, truncate=True)
                except FetchError as exc:
                    warnings.append(f"child sitemap {child.url}: {exc}")
                    continue
                ctx.extra_fetches.append(sub)
                hashes.append(body_digest(sub.body))
                part = await ctx.pool.run(
                    PARSE_TIME_LIMIT,
                    parse_sitemap,
                    sub.body,
                    strip_userinfo(sub.url),
                    ctx.now,
                    limit,
                    None,
                    0,
                    key=_host(sub.url),
                )
                if part.kind == "index":  # one level only: an index of indexes is not followed
                    warnings.append(f"child sitemap {child.url} is itself an index: skipped")
                    continue
                if part.warning:
                    warnings.append(part.warning)
                entries.extend(part.entries)
                title = title or part.title
        seen: set[str] = set()
        unique = []
        for e in entries:
            if e.url and e.url not in seen:
                seen.add(e.url)
                unique.append(e)
        return SourceRead(
            entries=unique,
            title=title,
            digest=hashlib.sha256("\n".join(hashes).encode()).hexdigest(),
            warning="; ".join(warnings) or None,
            format="sitemap-index" if top.kind == "index" else "sitemap",
        )


class PageReader:
    accept: str | None = PAGE_ACCEPT
    truncate = False

    def quick_digest(self, resp: FetchResponse) -> str | None:
        return None  # only the article links count, and only parsing finds them

    async def read(self, resp: FetchResponse, ctx: ReadContext) -> SourceRead:
        ctype = resp.content_type
        charset = None
        if "charset=" in ctype.lower():
            charset = ctype.lower().split("charset=", 1)[1].split(";")[0].strip().strip("\"'")
        entries, digest = await ctx.pool.run(
            PARSE_TIME_LIMIT,
            article_links,
            resp.body,
            resp.url,
            ctx.feed.selector,
            ctx.feed.pattern,
            charset,
            key=_host(resp.url),
        )
        return SourceRead(entries=entries, digest=digest, format="page")


READERS: dict[str, SourceReader] = {
    "feed": FeedReader(),
    "sitemap": SitemapReader(),
    "page": PageReader(),
}
