"""What the daemon runs in its worker processes, importable without the parsers.

The daemon hands these functions to the pool by reference (pickle sends a module and a name).
Importing the parsers themselves would load lxml, feedparser and ftfy into the daemon process,
which never runs them: ~25 MB more in every daemon, whose whole process tree has a 200 MB
budget at 10,000 feeds. The workers' fork server preloads the real modules, so the imports
below cost nothing there.
"""

from __future__ import annotations

from datetime import datetime

from monitor.models import Entry, ParsedFeed, ParsedSitemap


def parse_feed(body: bytes, url: str, content_type: str) -> ParsedFeed:
    from monitor.parse import parse_feed as parse

    return parse(body, url, content_type)


def parse_sitemap(
    body: bytes, url: str, now: datetime, max_bytes: int, since: datetime | None, children: int
) -> ParsedSitemap:
    """A sitemap, or an index with only the children worth fetching this poll."""
    from monitor.sitemap import parse_sitemap as parse
    from monitor.sitemap import select_children

    parsed = parse(body, url, now, max_bytes=max_bytes)
    parsed.children = select_children(parsed.children, limit=children, since=since)
    return parsed


def article_links(
    body: bytes, url: str, selector: str | None, pattern: str | None, charset: str | None
) -> tuple[list[Entry], str]:
    """A section page's article links and their digest."""
    from monitor.sectionpage import find_article_links, link_digest

    entries = find_article_links(body, url, selector=selector, pattern=pattern, charset=charset)
    return entries, link_digest(entries)
