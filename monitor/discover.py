"""What can be watched at a URL (``feedwatch add URL``): feeds, sitemaps, the page's article links.

:func:`discover` fetches the URL through the daemon's :class:`Fetcher` (so the SSRF guard, size
and time limits and politeness apply) and looks at what it is:

- a feed or a sitemap: that is the answer;
- a web page: the feeds it advertises (``<link rel=alternate>``; when it advertises none, a few
  usual feed paths at the site root), the sitemaps named in ``/robots.txt`` and at the usual
  sitemap paths (an index's newest children and any child named "news" are opened to find the
  Google News sitemap), and the page's own article links (:mod:`monitor.sectionpage`).

Which of them :func:`render_entries` proposes, in order: every feed found; every news sitemap; a
plain sitemap only when there is neither a feed nor a news sitemap; the page itself only when
there is no feed (with a news sitemap it catches stories the sitemap lists late, and dedupe by
URL makes the two alert once).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import yaml
from lxml import etree
from lxml import html as lxml_html

from monitor.fetch import Fetcher, format_size
from monitor.models import (
    FetchError,
    FetchResponse,
    NotAFeed,
    NotASitemap,
    ParsedFeed,
    ParsedSitemap,
)
from monitor.parse import find_feed_links, parse_feed
from monitor.sectionpage import find_article_links
from monitor.settings import FetchSettings
from monitor.sitemap import GZIP_MAGIC, parse_sitemap, select_children

DISCOVER_ACCEPT = (
    "text/html, application/xhtml+xml, application/rss+xml, application/atom+xml, "
    "application/feed+json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
FEED_PATHS = ("/feed", "/rss", "/rss.xml", "/feed.xml", "/atom.xml")  # tried when none advertised
SITEMAP_PATHS = ("/sitemap.xml", "/sitemap_index.xml", "/news-sitemap.xml", "/sitemap-news.xml")
MIN_PAGE_LINKS = 3  # fewer article links than this: the page is not worth watching
MAX_FEEDS = 5
MAX_SITEMAPS = 8  # top-level sitemaps opened
CHILDREN_PER_INDEX = 3
SAMPLES = 5

_SITEMAP_ROOT_RE = re.compile(
    rb"\A(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*<(?:[\w.-]+:)?(?:urlset|sitemapindex)\b",
    re.DOTALL,
)
_ROBOTS_SITEMAP_RE = re.compile(r"^\s*sitemap\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(slots=True)
class Found:
    """One watchable source found at or near the URL."""

    type: str  # "feed" | "sitemap" | "page": the config's `type:`
    url: str
    name: str | None  # the feed's title, the news publication's name, the site's name
    description: str  # one line for people: "Google News sitemap: 14 articles"
    count: int = 0  # items, child sitemaps or article links
    samples: list[str] = field(default_factory=list)  # the first few titles (or URLs)
    news: bool = False  # a Google News sitemap
    index: bool = False  # a sitemap index
    proposed: bool = False  # part of the config entries render_entries prints


@dataclass(slots=True)
class Discovery:
    """What :func:`discover` found. ``found`` lists feeds, then sitemaps, then the page."""

    url: str  # as asked
    final_url: str | None = None  # after redirects
    kind: str = "error"  # what the URL itself is: "feed" | "sitemap" | "page" | "other" | "error"
    found: list[Found] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was tried and did not work
    error: str | None = None  # the URL itself could not be fetched or read

    @property
    def proposed(self) -> list[Found]:
        return [f for f in self.found if f.proposed]


async def discover(
    url: str,
    settings: FetchSettings,
    *,
    fetcher: Fetcher | None = None,
    now: datetime | None = None,
) -> Discovery:
    """Look at ``url`` and around it; never raises for network or content problems."""
    if "://" not in url:
        url = "https://" + url.strip()
    now = now or datetime.now(UTC)
    if fetcher is None:
        async with Fetcher(settings) as own:
            return await _discover(url, own, now)
    return await _discover(url, fetcher, now)


class _Fetches:
    """One GET per URL in a discovery (robots.txt and an index often name the same sitemap)."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        self.max_bytes = fetcher.settings.max_bytes
        self._tasks: dict[tuple[str, str | None, bool], asyncio.Future[FetchResponse]] = {}

    async def get(
        self, url: str, *, accept: str | None = None, truncate: bool = False
    ) -> FetchResponse:
        key = (url, accept, truncate)
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self.fetcher.get(url, accept=accept, truncate=truncate))
            self._tasks[key] = task
        return await task


class _Notes(list[str]):
    """Notes for people, each said once."""

    def append(self, note: str) -> None:
        if note not in self:
            super().append(note)


async def _discover(url: str, client: Fetcher, now: datetime) -> Discovery:
    d = Discovery(url=url, notes=_Notes())
    fetcher = _Fetches(client)
    try:
        resp = await fetcher.get(url, accept=DISCOVER_ACCEPT, truncate=True)
    except FetchError as exc:
        d.error = f"cannot fetch {url}: {exc}"
        return d
    d.final_url = resp.url
    body, ctype = resp.body, resp.content_type
    if _looks_like_sitemap(body):
        d.kind = "sitemap"
        found = await _sitemap_source(fetcher, resp, now, d.notes)
        if found is None:
            d.error = d.notes.pop() if d.notes else "not a sitemap"
        else:
            d.found.extend(found)
        _propose(d)
        return d
    try:
        feed = await asyncio.to_thread(parse_feed, body, resp.url, ctype, now=now)
    except NotAFeed as exc:
        if not _is_html(body, ctype):
            d.kind = "other"
            d.error = f"{resp.url} is not a feed, a sitemap or a web page ({exc})"
            return d
    else:
        d.kind = "feed"
        d.found.append(_feed_found(resp.url, feed))
        _propose(d)
        return d
    d.kind = "page"
    charset = _charset(ctype)
    site_name = _site_name(body)
    feeds_task = _feeds_near(fetcher, resp, charset, now, d.notes)
    sitemaps_task = _sitemaps_near(fetcher, resp.url, now, d.notes)
    links_task = asyncio.to_thread(find_article_links, body, resp.url, charset=charset)
    feeds, sitemaps, links = await asyncio.gather(feeds_task, sitemaps_task, links_task)
    d.found.extend(feeds)
    for s in sitemaps:
        s.name = s.name or site_name
    d.found.extend(sitemaps)
    page = Found(
        type="page",
        url=resp.url,
        name=site_name,
        description=f"section page: {len(links)} article link{'s' if len(links) != 1 else ''}",
        count=len(links),
        samples=[e.title or (e.url or "") for e in links[:SAMPLES]],
    )
    if len(links) < MIN_PAGE_LINKS:
        d.notes.append(f"{resp.url}: too few article links to watch the page ({len(links)})")
    d.found.append(page)
    _propose(d)
    return d


def _propose(d: Discovery) -> None:
    feeds = [f for f in d.found if f.type == "feed"]
    news = [f for f in d.found if f.type == "sitemap" and f.news]
    plain = [f for f in d.found if f.type == "sitemap" and not f.news and f.count]
    for f in feeds + news:
        f.proposed = True
    if not feeds and not news and plain:
        plain[0].proposed = True
    for f in d.found:
        if f.type == "page" and not feeds and f.count >= MIN_PAGE_LINKS:
            f.proposed = True


# --------------------------------------------------------------------------- feeds


def _feed_found(url: str, feed: ParsedFeed) -> Found:
    entries = feed.entries
    fmt = feed.format or "feed"
    return Found(
        type="feed",
        url=url,
        name=feed.title,
        description=f"feed ({_format_name(fmt)}): {len(entries)} item{'s' if len(entries) != 1 else ''}",
        count=len(entries),
        samples=[e.title or (e.url or "") for e in entries[:SAMPLES]],
    )


def _format_name(fmt: str) -> str:
    names = {"rss20": "RSS 2.0", "atom10": "Atom", "json10": "JSON Feed", "json11": "JSON Feed"}
    if fmt in names:
        return names[fmt]
    if fmt.startswith("rss"):
        return "RSS"
    if fmt.startswith("atom"):
        return "Atom"
    return fmt


async def _feeds_near(
    fetcher: _Fetches, page: FetchResponse, charset: str | None, now: datetime, notes: list[str]
) -> list[Found]:
    advertised = find_feed_links(page.body, page.url, charset)[:MAX_FEEDS]
    candidates = advertised or [urljoin(page.url, p) for p in FEED_PATHS]
    results = await asyncio.gather(
        *(_try_feed(fetcher, u, now, notes, quiet=not advertised) for u in candidates)
    )
    out: list[Found] = []
    seen: set[str] = set()
    for found in results:
        if found is not None and found.url not in seen:
            seen.add(found.url)
            out.append(found)
    if not advertised and not out:
        notes.append("the page advertises no feed, and none answers at the usual feed paths")
    return out


async def _try_feed(
    fetcher: _Fetches, url: str, now: datetime, notes: list[str], *, quiet: bool
) -> Found | None:
    try:
        resp = await fetcher.get(url)
    except FetchError as exc:
        if not quiet:
            notes.append(f"{url}: {exc}")
        return None
    try:
        feed = await asyncio.to_thread(parse_feed, resp.body, resp.url, resp.content_type, now=now)
    except NotAFeed as exc:
        if not quiet:
            notes.append(f"{url}: {exc}")
        return None
    return _feed_found(resp.url, feed)


# --------------------------------------------------------------------------- sitemaps


def _looks_like_sitemap(body: bytes) -> bool:
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return body[:2] == GZIP_MAGIC or bool(_SITEMAP_ROOT_RE.match(head))


async def _sitemaps_near(
    fetcher: _Fetches, page_url: str, now: datetime, notes: list[str]
) -> list[Found]:
    robots_url = urljoin(page_url, "/robots.txt")
    listed: list[str] = []
    try:
        robots = await fetcher.get(robots_url, accept="text/plain, */*;q=0.5")
        text = robots.body[: 512 * 1024].decode("utf-8", "replace")
        for m in _ROBOTS_SITEMAP_RE.finditer(text):
            u = urljoin(robots.url, m.group(1))
            if urlsplit(u).scheme in ("http", "https") and u not in listed:
                listed.append(u)
        if not listed:
            notes.append(f"{robots_url} names no sitemap")
    except FetchError as exc:
        notes.append(f"{robots_url}: {exc}")
    quiet = {urljoin(page_url, p) for p in SITEMAP_PATHS} - set(listed)
    candidates = (listed + sorted(quiet, key=lambda u: SITEMAP_PATHS.index(urlsplit(u).path)))[
        :MAX_SITEMAPS
    ]
    results = await asyncio.gather(
        *(_open_sitemap(fetcher, u, now, notes, quiet=u in quiet) for u in candidates)
    )
    out: list[Found] = []
    seen: set[str] = set()
    for found in results:
        for f in found or []:
            if f.url not in seen:
                seen.add(f.url)
                out.append(f)
    if not out:
        notes.append("no sitemap found (robots.txt and the usual sitemap paths)")
    # news sitemaps first, then indexes, then the rest; stable otherwise
    out.sort(key=lambda f: (not f.news, not f.index))
    return out


async def _open_sitemap(
    fetcher: _Fetches, url: str, now: datetime, notes: list[str], *, quiet: bool
) -> list[Found] | None:
    try:
        resp = await fetcher.get(url, truncate=True)
    except FetchError as exc:
        if not quiet:
            notes.append(f"{url}: {exc}")
        return None
    return await _sitemap_source(fetcher, resp, now, notes, quiet=quiet)


async def _sitemap_source(
    fetcher: _Fetches,
    resp: FetchResponse,
    now: datetime,
    notes: list[str],
    *,
    quiet: bool = False,
    depth: int = 0,
) -> list[Found] | None:
    """The sitemap at ``resp`` (and, for an index, its news children) as Found items."""
    try:
        sm = await asyncio.to_thread(
            parse_sitemap, resp.body, resp.url, now, max_bytes=fetcher.max_bytes
        )
    except NotASitemap as exc:
        if not quiet:
            notes.append(f"{resp.url}: {exc}")
        return None
    if resp.truncated:
        notes.append(
            f"{resp.url}: larger than fetch.max_bytes ({format_size(fetcher.max_bytes)}); "
            f"only its first {len(sm.entries) or len(sm.children)} URLs were read"
        )
    elif sm.warning:
        notes.append(f"{resp.url}: {sm.warning}")
    if sm.kind == "urlset":
        return [_urlset_found(resp.url, sm, now)]
    found = [_index_found(resp.url, sm)]
    if depth > 0:
        return found
    # open the newest children and any named "news": that is where a news sitemap hides
    newest = select_children(sm.children, limit=CHILDREN_PER_INDEX - 1)
    named = [c for c in sm.children if "news" in c.url.lower() and c not in newest]
    picks = (named + newest)[:CHILDREN_PER_INDEX]
    children = await asyncio.gather(
        *(_open_child(fetcher, c.url, now, notes) for c in picks), return_exceptions=False
    )
    for child in children:
        found.extend(child or [])
    if any(f.news for f in found[1:]):
        found[0].news = False  # propose the news child itself, not the whole index
    return found


async def _open_child(
    fetcher: _Fetches, url: str, now: datetime, notes: list[str]
) -> list[Found] | None:
    try:
        resp = await fetcher.get(url, truncate=True)
    except FetchError as exc:
        notes.append(f"{url}: {exc}")
        return None
    found = await _sitemap_source(fetcher, resp, now, notes, depth=1)
    # only a news child is worth listing on its own; the index stands for the others
    return [f for f in found or [] if f.news]


def _urlset_found(url: str, sm: ParsedSitemap, now: datetime) -> Found:
    n = len(sm.entries)
    if sm.news:
        recent = sum(1 for e in sm.entries if e.published and (now - e.published).days < 2)
        desc = (
            f"Google News sitemap: {n} article{'s' if n != 1 else ''}, {recent} from the last 48 h"
        )
    else:
        desc = f"sitemap: {n} URL{'s' if n != 1 else ''}"
    if sm.truncated:
        desc += " (cut at the size limit)"
    dated = sorted(
        (e for e in sm.entries if e.published), key=lambda e: e.published or now, reverse=True
    )
    shown = dated[:SAMPLES] if sm.news else sm.entries[:SAMPLES]
    return Found(
        type="sitemap",
        url=url,
        name=sm.title,
        description=desc,
        count=n,
        samples=[e.title or (e.url or "") for e in shown],
        news=sm.news,
    )


def _index_found(url: str, sm: ParsedSitemap) -> Found:
    n = len(sm.children)
    return Found(
        type="sitemap",
        url=url,
        name=sm.title,
        description=f"sitemap index: {n} child sitemap{'s' if n != 1 else ''}",
        count=n,
        samples=[c.url for c in sm.children[:SAMPLES]],
        index=True,
    )


# --------------------------------------------------------------------------- pages


def _is_html(body: bytes, content_type: str) -> bool:
    if "html" in content_type.lower():
        return True
    head = body[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<head" in head or b"<body" in head


def _charset(content_type: str) -> str | None:
    m = re.search(r"""charset\s*=\s*["']?([^"';\s]+)""", content_type, re.IGNORECASE)
    return m.group(1) if m else None


def _site_name(body: bytes) -> str | None:
    """The site's name: og:site_name, else the page <title> (its last " | "-part when split)."""
    try:
        root = lxml_html.document_fromstring(body[: 512 * 1024])
    except (ValueError, etree.ParserError):
        return None
    for meta in root.iter("meta"):
        if (meta.get("property") or meta.get("name") or "").lower() == "og:site_name":
            name = " ".join((meta.get("content") or "").split())
            if name:
                return name
    title = root.findtext(".//title") or ""
    title = " ".join(title.split())
    for sep in (" | ", " - ", " — ", " – ", " :: "):
        if sep in title:
            return title.rsplit(sep, 1)[-1].strip() or None
    return title or None


# --------------------------------------------------------------------------- output


def render_entries(d: Discovery) -> str:
    """The proposed sources as YAML list items to paste under ``feeds:`` ("" when none)."""
    rows = []
    names: set[str] = set()
    for f in d.proposed:
        entry: dict[str, str] = {"url": f.url}
        if f.type != "feed":
            entry["type"] = f.type
        name = _entry_name(f)
        if name:
            base, n = name, 2
            while name.lower() in names:
                name = f"{base} {n}"
                n += 1
            names.add(name.lower())
            entry["name"] = name
        rows.append(entry)
    if not rows:
        return ""
    text = yaml.safe_dump(
        rows, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000
    )
    return "".join(f"  {line}\n" for line in text.splitlines())


def _entry_name(f: Found) -> str | None:
    if not f.name:
        return None
    if f.type == "sitemap":
        return f"{f.name} (news sitemap)" if f.news else f"{f.name} (sitemap)"
    if f.type == "page":
        path = urlsplit(f.url).path.strip("/")
        return f"{f.name} ({path.rsplit('/', 1)[-1] or 'home'} page)"
    return f.name


def render_report(d: Discovery) -> str:
    """What was found, for people: one block per source, then notes, then the entries."""
    lines = []
    if d.error and not d.found:
        return f"{d.error}\n"
    what = {"feed": "a feed", "sitemap": "a sitemap", "page": "a web page"}.get(d.kind, d.kind)
    lines.append(f"{d.final_url or d.url} is {what}.")
    for f in d.found:
        mark = "+" if f.proposed else "-"
        lines.append(f"{mark} {f.type:<8} {f.url}")
        lines.append(f"    {f.description}" + (f" ({f.name})" if f.name else ""))
        for s in f.samples:
            lines.append(f"      · {s}")
    for note in d.notes:
        lines.append(f"  note: {note}")
    entries = render_entries(d)
    if entries:
        lines.append("")
        lines.append("Paste under `feeds:` in your config:")
        lines.append("")
        lines.append(entries.rstrip("\n"))
    else:
        lines.append("Nothing to watch was found here.")
    return "\n".join(lines) + "\n"
