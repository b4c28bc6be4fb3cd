"""A loopback news site with no feed, shaped like real ones, for the sitemap and page sources.

    async with NewsSite(now=NOW) as site:
        site.url("/")                       # home page: the latest stories of every section
        art = site.publish("world", "Floods close the ring road in three districts")
        # art now tops /world/ and / and is listed in /news-sitemap.xml

What it serves (every response has an ETag and answers a matching If-None-Match with 304):

- ``/robots.txt``: ``Sitemap:`` lines for the index and the news sitemap.
- ``/sitemap_index.xml``: the news sitemap, monthly archives (``.xml.gz``, sent as
  ``application/x-gzip`` with no Content-Encoding, like a static file), ``sitemaps/sections.xml``
  and ``sitemaps/big.xml``, each with a ``lastmod``.
- ``/news-sitemap.xml``: Google News sitemap of the stories of the last 48 hours (by ``now``),
  with ``image:`` blocks, keywords, one broken ``publication_date`` and a title with an entity.
- ``/sitemaps/big.xml``: ``big_urls`` URLs (50,000 by default), generated on first request,
  with a broken ``lastmod`` every 997th URL.
- ``/`` and ``/{section}/``: section pages with link-dense navigation, a breaking-news ticker,
  lead story with an image link, headline link and "Read more" (repeated links), tag/author/
  comment links, an inline "Most read" box, a "Trending" sidebar, share links, pagination
  (``rel=next``, ``/page/2/``, ``?page=2``), an ad on another host and a footer.
- ``/{section}/YYYY/MM/DD/{slug}-{id}.html``: article pages with ``article:published_time``,
  JSON-LD and a ``<time>`` element.
- With ``feed=True`` the site also has ``/rss.xml``, advertised by ``<link rel=alternate>``.

:meth:`NewsSite.expected_links` is the truth the section-page tests compare against: the stories
the page lists in its main column, in order.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from types import TracebackType

from aiohttp import web

SECTIONS = ("world", "politics", "business", "climate")
PER_PAGE = 8  # stories per section page; more go to ?page=2
HOME_STORIES = 10
NEWS_WINDOW = timedelta(hours=48)
NAME = "The Loopback Gazette"

_SUBJECTS = (
    "council river harbour railway market school hospital festival museum bridge storm "
    "election minister village farmers library stadium theatre airport tunnel factory ferry "
    "reservoir parliament vaccine glacier coastline harvest district mayor wildfire flood"
).split()
_VERBS = "approves delays expands reopens closes rebuilds funds inspects questions replaces".split()
_PLACES = "Lisbon Porto Munich Kyiv Nairobi Lima Osaka Quebec Bergen Seville Tbilisi Perth".split()


@dataclass
class Article:
    id: int
    section: str
    title: str
    published: datetime
    paragraphs: list[str]
    keywords: tuple[str, ...] = ()
    broken_date: bool = False  # the news sitemap gives it an unreadable date

    @property
    def slug(self) -> str:
        words = "".join(c if c.isalnum() else " " for c in self.title.lower()).split()
        return "-".join(words[:8])

    @property
    def path(self) -> str:
        return f"/{self.section}/{self.published:%Y/%m/%d}/{self.slug}-{self.id}.html"


def _headline(rng: random.Random) -> str:
    subject = rng.choice(_SUBJECTS)
    return (
        f"{rng.choice(_PLACES)} {subject} {rng.choice(_VERBS)} plan for "
        f"{rng.choice(_SUBJECTS)} {rng.choice(_SUBJECTS)} after {rng.randint(2, 40)} days"
    ).capitalize()


def _paragraphs(rng: random.Random, title: str) -> list[str]:
    out = [f"{title}, officials said on Tuesday."]
    for _ in range(5):
        words = [rng.choice(_SUBJECTS) for _ in range(rng.randint(14, 24))]
        out.append(f"The {' '.join(words)} {rng.choice(_VERBS)} the proposal.".capitalize())
    return out


@dataclass
class NewsSite:
    """The site's content and its loopback HTTP server."""

    now: datetime
    feed: bool = False
    big_urls: int = 50_000
    seed: int = 7
    articles: list[Article] = field(default_factory=list)  # newest first
    hits: Counter[str] = field(default_factory=Counter)
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._big: bytes | None = None
        self._next_id = 40_100
        rng = random.Random(self.seed)
        # ten days of stories, every four hours, oldest first so ids grow with time
        for n in range(60, 0, -1):
            section = SECTIONS[n % len(SECTIONS)]
            published = self.now - timedelta(hours=4 * n - 1, minutes=rng.randint(0, 50))
            title = _headline(rng)
            self._add(section, title, published, _paragraphs(rng, title), broken=(n == 3))
        # a headline with characters that need escaping in XML and HTML
        self.publish(
            "business",
            'Profits & losses: Müller\'s "quiet" <b>merger</b> questioned',
            published=self.now - timedelta(minutes=30),
        )

    # ------------------------------------------------------------------ content

    def _add(
        self,
        section: str,
        title: str,
        published: datetime,
        paragraphs: list[str],
        *,
        keywords: tuple[str, ...] = (),
        broken: bool = False,
    ) -> Article:
        self._next_id += 1
        words = [w for w in title.split() if w[:1].isupper()]
        art = Article(
            id=self._next_id,
            section=section,
            title=title,
            published=published,
            paragraphs=paragraphs,
            keywords=keywords or (section, *words[:2]),
            broken_date=broken,
        )
        self.articles.append(art)
        self.articles.sort(key=lambda a: a.published, reverse=True)
        return art

    def publish(
        self,
        section: str,
        title: str,
        paragraphs: list[str] | None = None,
        *,
        published: datetime | None = None,
        keywords: tuple[str, ...] = (),
    ) -> Article:
        """A new story: it tops its section page and the home page and joins the news sitemap."""
        if section not in SECTIONS:
            raise ValueError(f"unknown section {section!r}")
        when = published or self.now
        paras = paragraphs or [f"{title}.", "Officials gave no further details on Tuesday."]
        return self._add(section, title, when, paras, keywords=keywords)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def section_articles(self, section: str | None, page: int = 1) -> list[Article]:
        """The stories a section page (None: the home page) lists in its main column."""
        if section is None:
            return self.articles[:HOME_STORIES] if page == 1 else []
        arts = [a for a in self.articles if a.section == section]
        return arts[(page - 1) * PER_PAGE : page * PER_PAGE]

    def expected_links(self, section: str | None, page: int = 1) -> list[tuple[str, str]]:
        """(absolute URL, title) of the stories on a section page, in page order."""
        return [(self.url(a.path), a.title) for a in self.section_articles(section, page)]

    def most_read(self) -> list[Article]:
        """Older stories (from every section) in the "Most read" and "Trending" boxes."""
        return self.articles[-6:]

    def news_articles(self) -> list[Article]:
        return [a for a in self.articles if self.now - a.published <= NEWS_WINDOW]

    # ------------------------------------------------------------------ pages

    def _chrome_top(self, title: str) -> str:
        nav = "".join(f'<li><a href="/{s}/">{s.title()}</a></li>' for s in SECTIONS)
        nav += '<li><a href="/video/">Video</a></li><li><a href="/opinion/">Opinion</a></li>'
        ticker = self.articles[0]
        feed_link = (
            f'<link rel="alternate" type="application/rss+xml" title="{NAME}" href="/rss.xml">'
            if self.feed
            else ""
        )
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<meta property="og:site_name" content="{NAME}">
{feed_link}
<link rel="stylesheet" href="/static/site.css"></head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<header class="site-header">
  <a class="logo" href="/">{NAME}</a>
  <div class="account"><a href="/login">Sign in</a> <a href="/subscribe?src=header">Subscribe for unlimited access to every story</a></div>
  <nav class="main-nav" aria-label="Sections"><ul>{nav}</ul></nav>
  <div class="ticker">Breaking: <a href="{ticker.path}">{html.escape(ticker.title)}</a></div>
</header>
"""

    def _card(self, art: Article, *, lead: bool) -> str:
        tag = html.escape(art.keywords[0]) if art.keywords else art.section
        title = html.escape(art.title)
        img = (
            f'<a class="media" href="{art.path}" tabindex="-1" aria-hidden="true">'
            f'<img src="/img/{art.id}.jpg" alt="Photo for {title}"></a>'
        )
        heading = "h2" if lead else "h3"
        return (
            f'<article class="story-card{" lead" if lead else ""}">{img}'
            f'<{heading} class="headline"><a href="{art.path}?utm_source=section&amp;utm_medium=web">'
            f'<span class="kicker">{art.section.title()}</span> {title}</a></{heading}>'
            f'<p class="teaser">{html.escape(art.paragraphs[0])}</p>'
            f'<p class="meta"><time datetime="{art.published:%Y-%m-%dT%H:%M:%SZ}">'
            f"{art.published:%d %b %H:%M}</time> · By "
            f'<a href="/author/staff-reporter-{art.id % 3}">Staff Reporter</a> · '
            f'<a href="/tag/{tag.lower()}/">{tag}</a> · '
            f'<a href="{art.path}#comments">{art.id % 17} comments</a></p>'
            f'<a class="more" href="{art.path}">Read more</a></article>\n'
        )

    def section_page(self, section: str | None, page: int = 1) -> bytes:
        """The HTML of a section page (None: the home page), as the server sends it."""
        arts = self.section_articles(section, page)
        label = section.title() if section else "Home"
        base = f"/{section}/" if section else "/"
        cards = "".join(self._card(a, lead=(i == 0 and page == 1)) for i, a in enumerate(arts))
        most_read = "".join(
            f'<li><a href="{a.path}">{html.escape(a.title)}</a></li>' for a in self.most_read()
        )
        trending = "".join(
            f'<li><a href="{a.path}?ref=trending">{html.escape(a.title)}</a></li>'
            for a in self.most_read()[:3]
        )
        pages = ""
        if section is not None:
            pages = (
                f'<div class="pages"><a href="{base}?page={page + 1}" rel="next">Next »</a> '
                f'<a href="{base}page/2/">2</a> <a href="{base}page/3/">3</a> '
                f'<a href="{base}page/2/">Older stories</a></div>'
            )
        body = f"""<main id="main">
<h1 class="page-title">{label}</h1>
<section class="latest">
{cards}
</section>
<section class="box"><h3>Most read</h3><ol>{most_read}</ol></section>
<div class="share-tools"><a href="https://www.facebook.com/sharer/sharer.php?u={self.url(base)}">Share</a>
<a href="mailto:?subject={label}">Email</a>
<a href="https://twitter.com/intent/tweet?url={self.url(base)}">Post</a></div>
{pages}
</main>
<aside class="rail"><h3>Trending</h3><ul>{trending}</ul>
<div class="ad"><a href="https://ads.example.net/click?campaign=123456&amp;slot=rail">Win a weekend away in Lisbon</a></div></aside>
<footer class="site-footer"><a href="/about/">About us</a> <a href="/privacy-policy/">Privacy</a>
<a href="/careers/">Careers</a> <a href="/contact/">Contact</a> <a href="/sitemap/">Site map</a>
<p>&copy; 2026 {NAME}</p></footer>
<script>window.dataLayer=[{{"page":"{label}"}}];</script>
</body></html>
"""
        return (self._chrome_top(f"{label} | {NAME}") + body).encode()

    def _article_page(self, art: Article) -> bytes:
        ld = json.dumps(
            {
                "@context": "https://schema.org",
                "@type": "NewsArticle",
                "headline": art.title,
                "datePublished": art.published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "author": {"@type": "Person", "name": "Staff Reporter"},
            }
        )
        paras = "".join(f"<p>{html.escape(p)}</p>\n" for p in art.paragraphs)
        related = "".join(
            f'<li><a href="{a.path}">{html.escape(a.title)}</a></li>' for a in self.most_read()[:3]
        )
        stamp = art.published.strftime("%Y-%m-%dT%H:%M:%SZ")
        head = self._chrome_top(f"{art.title} | {NAME}").replace(
            "</head>",
            f'<meta property="article:published_time" content="{stamp}">'
            f'<script type="application/ld+json">{ld}</script></head>',
            1,
        )
        body = f"""<main id="main"><article class="story">
<h1>{html.escape(art.title)}</h1>
<p class="byline">By Staff Reporter · <time datetime="{stamp}">{art.published:%d %B %Y %H:%M} UTC</time></p>
<div class="story-body">
{paras}</div>
</article>
<section class="related"><h3>Related</h3><ul>{related}</ul></section></main>
<footer class="site-footer"><a href="/about/">About us</a> <p>&copy; 2026 {NAME}</p></footer>
</body></html>
"""
        return (head + body).encode()

    # ------------------------------------------------------------------ sitemaps

    def _robots(self) -> bytes:
        return (
            "User-agent: *\nDisallow: /search\nDisallow: /login\n\n"
            f"Sitemap: {self.url('/sitemap_index.xml')}\n"
            f"sitemap: {self.url('/news-sitemap.xml')}\n"
        ).encode()

    def months(self) -> list[str]:
        """Months that have stories, newest first (YYYY-MM)."""
        return sorted({f"{a.published:%Y-%m}" for a in self.articles}, reverse=True)

    def _index(self) -> bytes:
        def item(path: str, when: datetime | str | None) -> str:
            mod = when if isinstance(when, str) else (when and f"{when:%Y-%m-%dT%H:%M:%S+00:00}")
            lastmod = f"<lastmod>{mod}</lastmod>" if mod else ""
            return f"<sitemap><loc>{self.url(path)}</loc>{lastmod}</sitemap>\n"

        newest = self.articles[0].published
        parts = [item("/sitemaps/sections.xml", self.now - timedelta(days=40))]
        for month in self.months():
            arts = [a for a in self.articles if f"{a.published:%Y-%m}" == month]
            parts.append(item(f"/sitemaps/articles-{month}.xml.gz", arts[0].published))
        parts.append(item("/news-sitemap.xml", newest))
        parts.append(item("/sitemaps/big.xml", "2019-02-30"))  # a broken lastmod: undated
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            + "".join(parts)
            + "</sitemapindex>\n"
        ).encode()

    def _news_sitemap(self) -> bytes:
        entries = []
        for a in self.news_articles():
            date = "2026-02-30T25:61:00Z" if a.broken_date else f"{a.published:%Y-%m-%dT%H:%M:%SZ}"
            entries.append(
                f"<url><loc>{self.url(a.path)}</loc>"
                f"<news:news><news:publication><news:name>{html.escape(NAME)}</news:name>"
                "<news:language>en</news:language></news:publication>"
                f"<news:publication_date>{date}</news:publication_date>"
                f"<news:title>{html.escape(a.title, quote=False)}</news:title>"
                f"<news:keywords>{html.escape(', '.join(a.keywords))}</news:keywords>"
                "</news:news>"
                f"<image:image><image:loc>{self.url(f'/img/{a.id}.jpg')}</image:loc></image:image>"
                "</url>\n"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9" '
            'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">\n'
            + "".join(entries)
            + "</urlset>\n"
        ).encode()

    def _month_sitemap(self, month: str) -> bytes | None:
        arts = [a for a in self.articles if f"{a.published:%Y-%m}" == month]
        if not arts:
            return None
        rows = "".join(
            f"<url><loc>{self.url(a.path)}</loc>"
            f"<lastmod>{a.published:%Y-%m-%dT%H:%M:%SZ}</lastmod></url>\n"
            for a in arts
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + rows + "</urlset>\n"
        ).encode()

    def _sections_sitemap(self) -> bytes:
        rows = "".join(f"<url><loc>{self.url(f'/{s}/')}</loc></url>\n" for s in SECTIONS)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + rows + "</urlset>\n"
        ).encode()

    def big_sitemap(self) -> bytes:
        """``big_urls`` archive URLs, one unreadable lastmod every 997th (generated once)."""
        if self._big is None:
            start = self.now - timedelta(days=400)
            rows = []
            for i in range(self.big_urls):
                when = start + timedelta(minutes=11 * i)
                mod = "yesterday" if i % 997 == 5 else f"{when:%Y-%m-%dT%H:%M:%SZ}"
                rows.append(
                    f"<url><loc>{self.url(f'/archive/{when:%Y/%m/%d}/story-number-{i}-of-the-archive-{i + 100000}.html')}</loc>"
                    f"<lastmod>{mod}</lastmod><changefreq>never</changefreq><priority>0.3</priority></url>\n"
                )
            self._big = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
                + "".join(rows)
                + "</urlset>\n"
            ).encode()
        return self._big

    def _rss(self) -> bytes:
        items = "".join(
            f"<item><title>{html.escape(a.title)}</title><link>{self.url(a.path)}</link>"
            f"<guid>{self.url(a.path)}</guid>"
            f"<pubDate>{format_datetime(a.published, usegmt=True)}</pubDate></item>"
            for a in self.articles[:20]
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{html.escape(NAME)}</title><link>{self.url('/')}</link>"
            f"<description>Latest stories</description>{items}</channel></rss>"
        ).encode()

    # ------------------------------------------------------------------ HTTP

    def _resolve(self, request: web.Request) -> tuple[bytes, str] | None:
        """(body, content type) for a path, or None for a 404."""
        path = request.path
        html_type = "text/html; charset=utf-8"
        xml_type = "application/xml; charset=utf-8"
        if path == "/robots.txt":
            return self._robots(), "text/plain; charset=utf-8"
        if path == "/sitemap_index.xml":
            return self._index(), xml_type
        if path == "/news-sitemap.xml":
            return self._news_sitemap(), xml_type
        if path == "/sitemaps/sections.xml":
            return self._sections_sitemap(), xml_type
        if path == "/sitemaps/big.xml":
            return self.big_sitemap(), xml_type
        if path.startswith("/sitemaps/articles-") and path.endswith(".xml.gz"):
            body = self._month_sitemap(path[len("/sitemaps/articles-") : -len(".xml.gz")])
            return (gzip.compress(body, mtime=0), "application/x-gzip") if body else None
        if path == "/rss.xml" and self.feed:
            return self._rss(), "application/rss+xml; charset=utf-8"
        if path == "/":
            return self.section_page(None, 1), html_type
        for section in SECTIONS:
            if path == f"/{section}/":
                page = request.query.get("page", "1")
                number = int(page) if page.isdigit() and int(page) > 0 else 1
                return self.section_page(section, number), html_type
        for art in self.articles:
            if path == art.path:
                return self._article_page(art), html_type
        if path.startswith(("/tag/", "/author/", "/video/", "/opinion/", "/about/")):
            return b"<!DOCTYPE html><html><body><p>An index page.</p></body></html>", html_type
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        found = self._resolve(request)
        if found is None:
            return web.Response(status=404, text="not found")
        body, ctype = found
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, headers={"Content-Type": ctype, "ETag": etag})

    async def start(self) -> NewsSite:
        app = web.Application()
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = self._handle
        app.router.add_route("GET", "/{tail:.*}", handler)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sock: socket.socket = server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> NewsSite:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
