"""Plain data that crosses module boundaries inside the daemon (fetch -> parse -> extract -> match)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class FetchResponse:
    """A completed HTTP GET: the body is complete, within limits, and decompressed."""

    url: str  # final URL after redirects
    status: int
    body: bytes
    headers: dict[str, str]  # lower-cased names
    not_modified: bool = False  # a 304: body is empty, nothing to parse
    permanent_url: str | None = None  # set when the request URL moved permanently (301/308 chain)
    elapsed: float = 0.0
    truncated: bool = False  # get(truncate=True): the body is the first max_bytes of a larger one

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class FetchError(Exception):
    """A request that produced no usable body. ``kind`` is a stable short code for counting.

    kinds: timeout, idle_timeout, too_large, blocked (SSRF guard), dns, connection, tls,
    http (status >= 400 other than below), rate_limited (429/503 with or without Retry-After),
    gone (410), redirect (loop / too many / bad location), decode (broken compression), invalid_url
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.url = url
        self.status = status
        self.retry_after = retry_after  # seconds to wait, from Retry-After

    def __str__(self) -> str:
        return self.message


@dataclass(slots=True)
class Entry:
    """One feed item, as the feed gives it (summary already reduced to plain text)."""

    guid: str | None
    url: str | None
    title: str
    summary: str = ""
    published: datetime | None = None  # None when absent or unparseable
    author: str | None = None
    language: str | None = None  # as the source declares it (news sitemaps), e.g. "en"
    keywords: tuple[str, ...] = ()  # the source's own keywords (news sitemaps)


@dataclass(slots=True)
class ParsedFeed:
    title: str | None
    link: str | None
    entries: list[Entry] = field(default_factory=list)
    ttl: float | None = None  # seconds, from <ttl> or sy:updatePeriod/updateFrequency
    warning: str | None = None  # recoverable problem (bozo), worth logging once
    format: str = ""  # rss20, atom10, json, ...


class NotAFeed(Exception):
    """The body is not a feed: an HTML page (``feed_links`` lists the feeds it advertises) or junk."""

    def __init__(self, message: str, feed_links: list[str] | None = None) -> None:
        super().__init__(message)
        self.feed_links = feed_links or []


@dataclass(slots=True)
class Extracted:
    """The main text of an article page, without navigation, sidebars, comments or footer."""

    text: str
    title: str | None = None
    author: str | None = None
    published: datetime | None = None
    language: str | None = None


class NotASitemap(Exception):
    """The body is not a sitemap (an HTML page, a feed, junk); the message says what it is."""


@dataclass(slots=True)
class SitemapChild:
    """A child sitemap listed by a sitemap index."""

    url: str
    lastmod: datetime | None = None  # None when absent or unparseable


@dataclass(slots=True)
class ParsedSitemap:
    """A sitemap (``kind="urlset"``: ``entries``) or a sitemap index (``kind="index"``: ``children``).

    Entries are ``Entry`` objects (guid = url = the page URL) so the feed pipeline ingests them
    unchanged; ``news`` says whether any ``<url>`` carried a Google News ``<news:news>`` block.
    """

    kind: str  # "urlset" | "index"
    entries: list[Entry] = field(default_factory=list)
    children: list[SitemapChild] = field(default_factory=list)  # newest first
    title: str | None = None  # the news:publication name, when there is one
    news: bool = False
    truncated: bool = False  # the body was cut short: entries are the complete ones before the cut
    dropped: int = 0  # <loc>s skipped: relative, not http(s), or repeated
    warning: str | None = None  # recoverable problem (invalid XML, cut body), worth logging once
