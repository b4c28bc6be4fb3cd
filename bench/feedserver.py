"""Loopback feed and article server for the fetch benchmark, run as its own process.

It shares the benchmark machine's cores with the client under test, so it is kept cheap: a raw
asyncio HTTP/1.1 server (keep-alive, no framework) answering from bytes rendered once at start.
A feed body is one template joined around the feed number, an article page the same.

    python bench/feedserver.py --port 0          # prints "listening PORT" on stdout

Routes (GET only):

- ``/feed/{i}.xml``: RSS 2.0, 20 items, about 10 KB. ``ETag``/``Last-Modified`` by default and a
  304 for a matching ``If-None-Match`` or ``If-Modified-Since``; in ``validators=0`` mode the same
  bytes with no validators and never a 304.
- ``/article/{i}/{k}``: an article page of about 100 KB: header, navigation, sidebars, related
  links, comments, footer, inline script and style around the article text.
- ``/news-sitemap/{i}.xml``: a Google News sitemap of ``SITEMAP_URLS`` (1,000) articles of
  site ``i``, about 400 KB, with validators and 304s like the feeds.
- ``/front/{i}.html``: a section page of site ``i`` linking ``FRONT_LINKS`` (200) articles, each
  by an image, a headline and "Read more", among navigation, a "most read" box, pagination and
  a footer (about 130 KB). Its articles are the first 200 of the sitemap's, so a sitemap and a
  page of the same site overlap as they do on real sites.
- ``/article/{i}/{k}-{slug}``: the article page ``(i, k)`` under the URL the sitemaps and
  section pages use (the slug is ignored).
- ``/_mode?validators=0|1``: switch the validator mode; ``/_stats``: request counts as JSON.

Rolling mode (``--roll SECONDS``, for the scale benchmark): every ``SECONDS`` each feed gains one
item (keeping up to 60; the ETag names the version), so polls keep finding new items; an item
``m`` of feed ``i`` carries ``--keyword`` in its title when ``(i + m) % --alert-every == 0``, so
a known share of the items alerts. ``/_mode?freeze=1`` stops the rolling (no new items from then
on), ``/_reset`` starts again at version 0 with an empty hit log. ``/_hits`` answers, per feed
polled, every poll as ``[unix time, status, version]`` (the scale benchmark's evidence of who
polled what when); ``/_stats`` then also counts the distinct feeds polled.

:func:`article_paragraphs` gives the exact article text of a page, so the benchmark can check an
extractor's output against it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

ITEMS_PER_FEED = 20
SITEMAP_URLS = 1000  # articles in a news sitemap
FRONT_LINKS = 200  # articles on a section page
VARIANTS = 20  # distinct article texts; page (i, k) uses variant k
MARK = b"\x00"  # where the feed number goes in a template
ROLL_KEEP = 60  # rolling mode: items a feed keeps (20 at first, then one more per version)

_WORDS = (
    "council budget river harbour railway station market school hospital festival museum "
    "bridge storm election minister village farmers library stadium theatre airport tunnel "
    "factory orchestra bakery vineyard lighthouse fishermen cyclists volunteers engineers "
    "archive garden cathedral ferry highway workshop reservoir parliament vaccine telescope "
    "satellite glacier coastline harvest orchard plaza quarter district mayor budgeting"
).split()
_VERBS = (
    "approved reviewed delayed announced expanded opened closed rebuilt funded inspected "
    "celebrated questioned postponed welcomed restored measured replaced"
).split()


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    words.insert(min(2, len(words)), rng.choice(_VERBS))
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def article_paragraphs(k: int) -> list[str]:
    """The article text of variant ``k``: its paragraphs, exactly as an extractor should return."""
    rng = random.Random(1000 + k)
    paras = []
    for _ in range(12):
        paras.append(
            " ".join(_sentence(rng, rng.randint(10, 18)) for _ in range(rng.randint(4, 6)))
        )
    return paras


def article_title(i: int, k: int) -> str:
    return f"Story {k} from bench feed {i}: {' '.join(random.Random(k).sample(_WORDS, 4))}"


# Text that must never reach an article body: navigation, sidebars, comments, footer.
BOILERPLATE_MARKERS = (
    "Subscribe to our newsletter",
    "Most read this week",
    "Sponsored partner content",
    "Reader comment number",
    "All rights reserved by the Bench Gazette",
    "Sign in to your account",
)


def _page_template(k: int) -> bytes:
    """Article page (i, k) with MARK where the feed number goes; about 100 KB."""
    rng = random.Random(5000 + k)
    nav = "".join(
        f'<li class="nav-item"><a href="/section/{s}">{w.title()}</a></li>'
        for s, w in enumerate(_WORDS[:30])
    )
    trending = "".join(
        f'<li><a href="/article/{rng.randint(0, 999)}/{rng.randint(0, 19)}">'
        f'{_sentence(rng, 7)}</a> <span class="meta">Most read this week</span></li>'
        for _ in range(15)
    )
    related = "".join(
        f'<div class="card"><a href="/article/{rng.randint(0, 999)}/{n}"><img src="/img/{n}.jpg" '
        f'alt="thumb"><h4>{_sentence(rng, 6)}</h4></a><p class="teaser">{_sentence(rng, 12)}</p></div>'
        for n in range(12)
    )
    comments = "".join(
        f'<li class="comment" id="c{n}"><div class="comment-author">reader{n}</div>'
        f'<div class="comment-body"><p>Reader comment number {n}: {_sentence(rng, 14)} '
        f'{_sentence(rng, 9)}</p></div><a class="reply" href="#c{n}">Reply</a></li>'
        for n in range(25)
    )
    ads = "".join(
        f'<div class="ad-slot" data-slot="{n}"><span>Sponsored partner content</span>'
        f'<a href="https://ads.invalid/{n}">{_sentence(rng, 5)}</a></div>'
        for n in range(6)
    )
    body = "".join(f"<p>{p}</p>\n" for p in article_paragraphs(k))
    css = ".x{color:#333;margin:0 auto;padding:4px 8px}\n" * 400
    js = (
        "window.dataLayer=window.dataLayer||[];dataLayer.push({event:'pv',section:'news'});\n" * 300
    )
    footer_links = "".join(f'<a href="/about/{n}">About page {n}</a> ' for n in range(60))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>TITLE - Bench Gazette</title>
<meta name="description" content="A bench article">
<style>{css}</style>
<script>{js}</script>
</head><body>
<header class="site-header"><div class="logo"><a href="/">Bench Gazette</a></div>
<div class="account"><a href="/login">Sign in to your account</a></div>
<nav class="main-nav"><ul>{nav}</ul></nav></header>
<div class="newsletter-banner"><p>Subscribe to our newsletter for daily updates</p>
<form><input type="email" name="e"><button>Subscribe</button></form></div>
<div class="layout">
<aside class="sidebar-left"><h3>Sections</h3><ul>{nav}</ul>{ads}</aside>
<main><article class="story">
<h1>TITLE</h1>
<p class="byline">By <span class="author">Staff Writer</span>, <time datetime="2024-05-0{1 + k % 9}T10:00:00Z">May {1 + k % 9}, 2024</time></p>
<div class="story-body">
{body}</div>
</article>
<section class="related"><h3>Related stories</h3>{related}</section>
<section class="comments" id="comments"><h3>{len(article_paragraphs(k))} comments</h3><ul>{comments}</ul></section>
</main>
<aside class="sidebar-right"><h3>Most read</h3><ol>{trending}</ol>{ads}</aside>
</div>
<footer class="site-footer"><p>All rights reserved by the Bench Gazette</p>{footer_links}</footer>
<script>{js}</script>
</body></html>
"""
    title = article_title(0, k).replace("bench feed 0", "bench feed \x00")
    return page.replace("TITLE", title).encode()


def _feed_template(port: int, now: datetime) -> bytes:
    base = f"http://127.0.0.1:{port}"
    items = []
    for k in range(ITEMS_PER_FEED):
        rng = random.Random(k)
        desc = " ".join(_sentence(rng, 10) for _ in range(3))
        title = article_title(0, k).replace("bench feed 0", "bench feed \x00")
        items.append(
            f"<item><title>{title}</title>"
            f"<link>{base}/article/\x00/{k}</link>"
            f'<guid isPermaLink="true">{base}/article/\x00/{k}</guid>'
            f"<pubDate>{format_datetime(now - timedelta(hours=k), usegmt=True)}</pubDate>"
            f"<description>&lt;p&gt;{desc}&lt;/p&gt;</description>"
            f"<category>news</category></item>\n"
        )
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>\n'
        f"<title>Bench feed \x00</title><link>{base}/</link>"
        "<description>A generated feed for the fetch benchmark</description>\n"
        + "".join(items)
        + "</channel></rss>\n"
    )
    return text.encode()


def article_slug(k: int) -> str:
    return "-".join(random.Random(k).sample(_WORDS, 4))


def _sitemap_template(port: int, now: datetime) -> bytes:
    """A Google News sitemap of SITEMAP_URLS articles of site MARK, newest first."""
    base = f"http://127.0.0.1:{port}"
    rows = []
    for k in range(SITEMAP_URLS):
        title = article_title(0, k).replace("bench feed 0", "bench feed \x00")
        when = (now - timedelta(minutes=k)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(
            f"<url><loc>{base}/article/\x00/{k}-{article_slug(k)}</loc>"
            "<news:news><news:publication><news:name>Bench Gazette</news:name>"
            "<news:language>en</news:language></news:publication>"
            f"<news:publication_date>{when}</news:publication_date>"
            f"<news:title>{title}</news:title></news:news></url>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n'
        + "".join(rows)
        + "</urlset>\n"
    ).encode()


def _front_template() -> bytes:
    """A section page of site MARK: FRONT_LINKS article cards among the usual chrome."""
    rng = random.Random(77)
    nav = "".join(
        f'<li class="nav-item"><a href="/section/{s}">{w.title()}</a></li>'
        for s, w in enumerate(_WORDS[:30])
    )
    cards = []
    for k in range(FRONT_LINKS):
        href = f"/article/\x00/{k}-{article_slug(k)}"
        title = article_title(0, k).replace("bench feed 0", "bench feed \x00")
        cards.append(
            f'<article class="card"><a class="media" href="{href}"><img src="/img/{k}.jpg" '
            f'alt="Photo {k}"></a><h3 class="headline"><a href="{href}?utm_source=front">{title}'
            f'</a></h3><p class="teaser">{_sentence(rng, 14)}</p><p class="meta">'
            f'<a href="/author/writer-{k % 7}">Staff Writer</a> · <a href="/tag/{_WORDS[k % 40]}">'
            f'{_WORDS[k % 40]}</a> · <a href="{href}#comments">{k % 30} comments</a></p>'
            f'<a class="more" href="{href}">Read more</a></article>\n'
        )
    most_read = "".join(
        f'<li><a href="/article/\x00/{SITEMAP_URLS + n}-{article_slug(n)}">{_sentence(rng, 7)}</a></li>'
        for n in range(15)
    )
    footer_links = "".join(f'<a href="/about/{n}">About page {n}</a> ' for n in range(60))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Front page - Bench Gazette</title></head>
<body><header class="site-header"><div class="logo"><a href="/">Bench Gazette</a></div>
<div class="account"><a href="/login">Sign in to your account</a></div>
<nav class="main-nav"><ul>{nav}</ul></nav></header>
<main><h1>Latest news</h1><section class="latest">
{"".join(cards)}</section>
<section class="box"><h3>Most read</h3><ol>{most_read}</ol></section>
<div class="pages"><a rel="next" href="/front/\x00.html?page=2">Next</a>
<a href="/front/\x00.html?page=2">2</a> <a href="/front/\x00.html?page=3">3</a></div></main>
<aside class="sidebar-right"><h3>Sections</h3><ul>{nav}</ul></aside>
<footer class="site-footer"><p>All rights reserved by the Bench Gazette</p>{footer_links}</footer>
</body></html>
"""
    return page.encode()


class Rolling:
    """Feeds whose newest item changes every ``roll`` seconds (the scale benchmark's load)."""

    def __init__(self, port: int, roll: float, alert_every: int, keyword: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.roll = roll
        self.alert_every = max(1, alert_every)
        self.keyword = keyword
        self.t0 = time.time()
        self.frozen: int | None = None  # the version kept once frozen
        self._items: dict[tuple[int, bool], bytes] = {}
        self.head = (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>\n'
            f"<title>Bench feed \x00</title><link>{self.base}/</link>"
            "<description>A rolling feed for the scale benchmark</description>\n"
        ).encode()
        self.tail = b"</channel></rss>\n"

    def reset(self) -> None:
        self.t0 = time.time()
        self.frozen = None
        self._items.clear()

    def version(self) -> int:
        if self.frozen is not None:
            return self.frozen
        return int((time.time() - self.t0) // self.roll)

    def alerts(self, i: int, m: int) -> bool:
        return (i + m) % self.alert_every == 0

    def _item(self, m: int, hit: bool) -> bytes:
        cached = self._items.get((m, hit))
        if cached is None:
            rng = random.Random(m)
            desc = " ".join(_sentence(rng, 10) for _ in range(3))
            title = article_title(0, m).replace("bench feed 0", "bench feed \x00")
            if hit:
                title = f"{self.keyword.title()} warning: {title}"
            when = datetime.fromtimestamp(self.t0 + (m - ITEMS_PER_FEED + 1) * self.roll, UTC)
            url = f"{self.base}/article/\x00/{m}"
            cached = (
                f"<item><title>{title}</title><link>{url}</link>"
                f'<guid isPermaLink="true">{url}</guid>'
                f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate>"
                f"<description>&lt;p&gt;{desc}&lt;/p&gt;</description>"
                "<category>news</category></item>\n"
            ).encode()
            self._items[(m, hit)] = cached
        return cached

    def feed(self, i: int, v: int) -> bytes:
        """The items of version ``v``: the first 20 and one more per version, newest first (kept
        up to ROLL_KEEP, so an item stays in the feed for the length of a benchmark run)."""
        first = max(0, v + ITEMS_PER_FEED - ROLL_KEEP)
        items = [
            self._item(m, self.alerts(i, m)) for m in range(v + ITEMS_PER_FEED - 1, first - 1, -1)
        ]
        return b"".join((self.head, *items, self.tail)).replace(MARK, str(i).encode())


class Site:
    """Everything the server answers, rendered once."""

    def __init__(self, port: int) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        self.feed_parts = _feed_template(port, now).split(MARK)
        self.sitemap_parts = _sitemap_template(port, now).split(MARK)
        self.front_parts = _front_template().split(MARK)
        self.page_parts = [_page_template(k).split(MARK) for k in range(VARIANTS)]
        self.last_modified = format_datetime(now - timedelta(hours=1), usegmt=True).encode()
        self.validators = True
        self.counts: dict[str, int] = {
            "feed_200": 0,
            "feed_304": 0,
            "sitemap_200": 0,
            "sitemap_304": 0,
            "front": 0,
            "article": 0,
            "other": 0,
        }
        self.rolling: Rolling | None = None
        self.hits: dict[int, list[tuple[float, int, int]]] | None = None

    def feed(self, i: int) -> bytes:
        return str(i).encode().join(self.feed_parts)

    def page(self, i: int, k: int) -> bytes:
        return str(i).encode().join(self.page_parts[k % VARIANTS])

    def sitemap(self, i: int) -> bytes:
        return str(i).encode().join(self.sitemap_parts)

    def front(self, i: int) -> bytes:
        return str(i).encode().join(self.front_parts)


def _response(status: bytes, body: bytes, ctype: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype
        + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )  # fmt: skip


class _Http(asyncio.Protocol):
    __slots__ = ("buf", "site", "transport")

    def __init__(self, site: Site) -> None:
        self.site = site
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self._close()
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            out = self.handle(head)
            assert self.transport is not None
            self.transport.write(out)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def handle(self, head: bytes) -> bytes:
        lines = head.split(b"\r\n")
        try:
            _method, target, _version = lines[0].split(b" ", 2)
        except ValueError:
            return _response(b"400 Bad Request", b"bad request line\n", b"text/plain")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        site = self.site
        path = target.decode("latin-1")
        if path.startswith("/feed/") and path.endswith(".xml"):
            try:
                i = int(path[6:-4])
            except ValueError:
                return _response(b"404 Not Found", b"no such feed\n", b"text/plain")
            ctype = b"application/rss+xml; charset=utf-8"
            if site.rolling is not None:
                return self.rolling_feed(i, headers, ctype)
            if site.validators:
                etag = b'"f' + str(i).encode() + b'-v1"'
                if headers.get(b"if-none-match") == etag or (
                    b"if-none-match" not in headers
                    and headers.get(b"if-modified-since") == site.last_modified
                ):
                    site.counts["feed_304"] += 1
                    return b"HTTP/1.1 304 Not Modified\r\nETag: " + etag + b"\r\n\r\n"
                extra = b"ETag: " + etag + b"\r\nLast-Modified: " + site.last_modified + b"\r\n"
            else:
                extra = b""
            site.counts["feed_200"] += 1
            return _response(b"200 OK", site.feed(i), ctype, extra)
        if path.startswith("/news-sitemap/") and path.endswith(".xml"):
            try:
                i = int(path[14:-4])
            except ValueError:
                return _response(b"404 Not Found", b"no such sitemap\n", b"text/plain")
            ctype = b"application/xml; charset=utf-8"
            if site.validators:
                etag = b'"s' + str(i).encode() + b'-v1"'
                if headers.get(b"if-none-match") == etag:
                    site.counts["sitemap_304"] += 1
                    return b"HTTP/1.1 304 Not Modified\r\nETag: " + etag + b"\r\n\r\n"
                extra = b"ETag: " + etag + b"\r\nLast-Modified: " + site.last_modified + b"\r\n"
            else:
                extra = b""
            site.counts["sitemap_200"] += 1
            return _response(b"200 OK", site.sitemap(i), ctype, extra)
        if path.startswith("/front/"):
            try:
                i = int(path[7:].split(".", 1)[0])
            except ValueError:
                return _response(b"404 Not Found", b"no such page\n", b"text/plain")
            site.counts["front"] += 1
            return _response(b"200 OK", site.front(i), b"text/html; charset=utf-8")
        if path.startswith("/article/"):
            try:
                i_text, k_text = path[9:].split("?", 1)[0].split("/", 1)
                i, k = int(i_text), int(k_text.split("-", 1)[0])
            except ValueError:
                return _response(b"404 Not Found", b"no such article\n", b"text/plain")
            site.counts["article"] += 1
            return _response(b"200 OK", site.page(i, k), b"text/html; charset=utf-8")
        site.counts["other"] += 1
        if path.startswith("/_mode"):
            if "freeze=1" in path and site.rolling is not None:
                site.rolling.frozen = site.rolling.version()
                return _response(b"200 OK", b"frozen %d\n" % site.rolling.frozen, b"text/plain")
            site.validators = not path.endswith("validators=0")
            return _response(b"200 OK", b"validators=%d\n" % site.validators, b"text/plain")
        if path == "/_stats":
            counts: dict[str, int] = dict(site.counts)
            if site.hits is not None:
                counts["feeds_polled"] = len(site.hits)
                counts["polls"] = sum(len(h) for h in site.hits.values())
            return _response(b"200 OK", json.dumps(counts).encode(), b"application/json")
        if path == "/_hits" and site.hits is not None:
            return _response(b"200 OK", json.dumps(site.hits).encode(), b"application/json")
        if path == "/_reset":
            for key in site.counts:
                site.counts[key] = 0
            if site.hits is not None:
                site.hits = {}
            if site.rolling is not None:
                site.rolling.reset()
            return _response(b"200 OK", b"reset\n", b"text/plain")
        return _response(b"404 Not Found", b"not found\n", b"text/plain")

    def rolling_feed(self, i: int, headers: dict[bytes, bytes], ctype: bytes) -> bytes:
        site = self.site
        rolling = site.rolling
        assert rolling is not None
        v = rolling.version()
        etag = b'"r%d-%d"' % (i, v)
        status = 304 if headers.get(b"if-none-match") == etag else 200
        if site.hits is not None:
            site.hits.setdefault(i, []).append((round(time.time(), 3), status, v))
        if status == 304:
            site.counts["feed_304"] += 1
            return b"HTTP/1.1 304 Not Modified\r\nETag: " + etag + b"\r\n\r\n"
        site.counts["feed_200"] += 1
        return _response(b"200 OK", rolling.feed(i, v), ctype, b"ETag: " + etag + b"\r\n")


async def serve(
    port: int,
    roll: float = 0.0,
    alert_every: int = 50,
    keyword: str = "wildfire",
    hits: bool = False,
) -> None:
    loop = asyncio.get_running_loop()
    holder: dict[str, Site] = {}
    server = await loop.create_server(
        lambda: _Http(holder["site"]), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    site = Site(bound)
    if roll > 0:
        site.rolling = Rolling(bound, roll, alert_every, keyword)
    if hits:
        site.hits = {}
    holder["site"] = site
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening {bound}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--roll", type=float, default=0.0, help="seconds between new items (0: static)")
    ap.add_argument(
        "--alert-every", type=int, default=50, help="rolling: 1 item in N has --keyword"
    )
    ap.add_argument("--keyword", default="wildfire")
    ap.add_argument("--hits", action="store_true", help="log every feed poll (GET /_hits)")
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.roll, args.alert_every, args.keyword, args.hits))
    sys.exit(0)


if __name__ == "__main__":
    main()
