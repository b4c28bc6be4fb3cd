"""A small fake newsroom for end-to-end tests: RSS/Atom feeds and article pages on a loopback server.

Pages carry realistic chrome (navigation, a "most read" sidebar, comments, footer) that mentions
watch terms, so tests can prove that matching reads only the article text.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from tests.hostile_server import HostileServer

CHROME_TERMS = ("wildfire", "FEMA", "evacuation order", "Lisbon")


def page(title: str, paragraphs: list[str], *, published: datetime | None = None) -> bytes:
    published = published or datetime.now(UTC)
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | Test Gazette</title>
<meta property="article:published_time" content="{published.strftime("%Y-%m-%dT%H:%M:%SZ")}"></head>
<body>
<header><nav><ul><li><a href="/world">World</a></li><li><a href="/climate">Wildfire tracker</a></li>
<li><a href="/fema">FEMA updates</a></li><li><a href="/lisbon">Lisbon</a></li></ul></nav>
<div class="ticker">Sign up for evacuation order alerts</div></header>
<main><article><h1>{html.escape(title)}</h1>
<p class="byline">By Staff Reporter</p>
{body}
</article>
<aside class="sidebar"><h3>Most read</h3><ul>
<li><a href="/a">Wildfire season outlook: what the maps say</a></li>
<li><a href="/b">FEMA budget fight heads to the Senate</a></li>
<li><a href="/c">Weekend in Lisbon: where to eat</a></li></ul></aside>
<section class="comments"><h3>Comments</h3>
<div class="comment">Is there an evacuation order for the coast too? The wildfire last year was worse.</div>
</section></main>
<footer><p>&copy; 2026 Test Gazette. Follow FEMA guidance during any wildfire.</p></footer>
</body></html>""".encode()


@dataclass
class Item:
    slug: str
    title: str
    paragraphs: list[str]
    summary: str = ""
    hours_ago: float = 1.0
    link: str | None = None  # overrides the default link (e.g. with tracking parameters)
    guid: str | None = None
    page_status: int = 200


@dataclass
class Feed:
    path: str
    title: str
    items: list[Item] = field(default_factory=list)
    atom: bool = False
    etag: str | None = '"v1"'


class Newsroom:
    """Serves feeds and their pages from one HostileServer."""

    def __init__(self, server: HostileServer) -> None:
        self.server = server
        self.now = datetime.now(UTC)

    def page_url(self, slug: str) -> str:
        return self.server.url(f"/news/{slug}.html")

    def add(self, feed: Feed) -> str:
        for it in feed.items:
            self._page(it)
        body = self._atom(feed) if feed.atom else self._rss(feed)
        ctype = "application/atom+xml" if feed.atom else "application/rss+xml"
        self.server.feed(feed.path, body, content_type=ctype, etag=feed.etag)
        return self.server.url(feed.path)

    def _page(self, it: Item) -> None:
        path = f"/news/{it.slug}.html"
        published = self.now - timedelta(hours=it.hours_ago)
        if path in self.server._routes:
            return
        from aiohttp import web

        content = page(it.title, it.paragraphs, published=published)
        status = it.page_status

        async def handler(request: web.Request) -> web.StreamResponse:
            if status != 200:
                return web.Response(status=status, text="gone")
            return web.Response(body=content, content_type="text/html")

        self.server.route(path, handler)

    def _link(self, it: Item) -> str:
        return it.link or self.page_url(it.slug)

    def _rss(self, feed: Feed) -> bytes:
        items = []
        for it in feed.items:
            published = format_datetime(self.now - timedelta(hours=it.hours_ago))
            guid = f'<guid isPermaLink="false">{html.escape(it.guid)}</guid>' if it.guid else ""
            items.append(
                f"<item><title>{html.escape(it.title)}</title><link>{html.escape(self._link(it))}</link>"
                f"{guid}<pubDate>{published}</pubDate>"
                f"<description>{html.escape(it.summary)}</description></item>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{html.escape(feed.title)}</title><link>{self.server.url('/')}</link>"
            f"<description>test</description>{''.join(items)}</channel></rss>"
        ).encode()

    def _atom(self, feed: Feed) -> bytes:
        entries = []
        for it in feed.items:
            ts = (self.now - timedelta(hours=it.hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
            entries.append(
                f'<entry><title>{html.escape(it.title)}</title><link href="{html.escape(self._link(it))}"/>'
                f"<id>{html.escape(it.guid or 'urn:test:' + it.slug)}</id><updated>{ts}</updated>"
                f"<summary>{html.escape(it.summary)}</summary></entry>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{html.escape(feed.title)}</title><id>urn:test:{feed.path}</id>"
            f"<updated>{self.now.strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>{''.join(entries)}</feed>"
        ).encode()
