"""Section pages: the article links among navigation, "most read" boxes, pagination and repeats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from monitor.fetch import PAGE_ACCEPT, Fetcher
from monitor.sectionpage import check_pattern, check_selector, find_article_links
from monitor.settings import FetchSettings
from monitor.urls import canonical_url
from tests.newssite import SECTIONS, NewsSite

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def links(
    html: str | bytes, url: str = "https://news.example.org/world/", **kw: object
) -> list[tuple[str, str]]:
    body = html.encode() if isinstance(html, str) else html
    return [(e.url or "", e.title) for e in find_article_links(body, url, **kw)]  # type: ignore[arg-type]


def canonical(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(canonical_url(u) or "", t) for u, t in pairs]


@pytest.fixture
async def site() -> AsyncIterator[NewsSite]:
    async with NewsSite(now=NOW) as s:
        yield s


async def get_page(site: NewsSite, path: str) -> tuple[bytes, str]:
    settings = FetchSettings(allow_private_networks=True, timeout=10, idle_timeout=5)
    async with Fetcher(settings) as f:
        resp = await f.get(site.url(path), accept=PAGE_ACCEPT)
    return resp.body, resp.url


# --------------------------------------------------------------------------- the news site


@pytest.mark.parametrize(
    ("path", "section", "page"),
    [("/", None, 1), *[(f"/{s}/", s, 1) for s in SECTIONS], ("/world/?page=2", "world", 2)],
)
async def test_section_pages_yield_exactly_their_stories_in_order(
    site: NewsSite, path: str, section: str | None, page: int
) -> None:
    body, url = await get_page(site, path)
    expected = canonical(site.expected_links(section, page))
    assert expected  # every page lists stories
    assert links(body, url) == expected


async def test_chrome_boxes_pagination_and_repeats_are_left_out(site: NewsSite) -> None:
    body, url = await get_page(site, "/")
    found = [u for u, _ in links(body, url)]
    html = body.decode()
    # the page really has the traps, and none of them got through
    most_read = [site.url(a.path) for a in site.most_read()]
    assert all(a.path in html for a in site.most_read())
    assert not set(found) & set(most_read)
    for trap in ("/login", "/subscribe", "/tag/", "/author/", "/about/", "/privacy-policy/",
                 "ads.example.net", "facebook.com", "mailto:", "#comments", "utm_source"):  # fmt: skip
        assert trap in html
        assert not any(trap in u for u in found), trap
    assert len(found) == len(set(found))  # image + headline + comments + "Read more": one item
    world, _ = await get_page(site, "/world/")
    found_world = [u for u, _ in links(world, site.url("/world/"))]
    assert not any("page" in u for u in found_world)
    assert b'rel="next"' in world and b"/page/2/" in world and b"Older stories" in world


async def test_titles_come_from_the_headline_not_the_image_kicker_or_read_more(
    site: NewsSite,
) -> None:
    body, url = await get_page(site, "/business/")
    titles = [t for _, t in links(body, url)]
    assert titles[0] == 'Profits & losses: Müller\'s "quiet" <b>merger</b> questioned'
    assert not any(t.startswith(("Photo for", "Business ", "Read more")) for t in titles)


async def test_a_new_story_appears_first_with_its_canonical_url(site: NewsSite) -> None:
    before, url = await get_page(site, "/climate/")
    art = site.publish("climate", "Glacier melt forces evacuation order in two valleys")
    after, _ = await get_page(site, "/climate/")
    old, new = links(before, url), links(after, url)
    assert new[0] == (canonical_url(site.url(art.path)), art.title)
    assert new[1:] == old[: len(new) - 1]


# --------------------------------------------------------------------------- other markup


BBC_LIKE = """<!DOCTYPE html><html><head><title>World - News</title></head><body>
<div id="orb-banner"><a href="https://account.example.org/signin">Sign in</a></div>
<nav role="navigation"><a href="/news">Home</a><a href="/news/world">World</a><a href="/news/uk">UK</a></nav>
<div class="gs-c-promo"><a class="gs-c-promo-heading" href="/news/world-europe-68912345">
  <h3 class="gs-c-promo-heading__title">Ukraine says drones hit two refineries overnight</h3></a>
  <p>Summary text.</p><a class="gs-c-section-link" href="/news/world/europe">Europe</a></div>
<div class="gs-c-promo"><a href="/news/live/world-68917777"><span class="visually-hidden">Live. </span>
  <h3>Live: Election results as they come in</h3></a></div>
<div class="gs-c-promo"><a href="/news/av/world-68912399">
  <h3>Watch: Rescue at sea caught on camera</h3></a></div>
<div class="nw-c-most-read"><h2>Most read</h2><ol>
  <li><a href="/news/uk-68900001">Old story everyone reads</a></li></ol></div>
<div role="contentinfo"><a href="/terms">Terms of use</a><a href="/news/help-41670342">Contact the news room</a></div>
</body></html>"""


def test_bbc_like_numeric_ids_and_visually_hidden_labels() -> None:
    got = links(BBC_LIKE, "https://www.example.org/news/world")
    assert got == [
        ("https://www.example.org/news/world-europe-68912345", "Ukraine says drones hit two refineries overnight"),
        ("https://www.example.org/news/live/world-68917777", "Live: Election results as they come in"),
        ("https://www.example.org/news/av/world-68912399", "Watch: Rescue at sea caught on camera"),
    ]  # fmt: skip


WORDPRESS_LIKE = """<html><head><meta charset="utf-8"><base href="https://blog.example.org/"></head><body>
<header id="masthead" class="site-header"><a href="/">My Town News</a>
<ul class="menu"><li><a href="/category/council/">Council</a></li><li><a href="/about/">About</a></li></ul></header>
<div id="primary"><main class="site-main">
<article class="post"><header class="entry-header"><h2 class="entry-title">
<a href="2026/04/30/new-bridge-opens-after-two-years/" rel="bookmark">New bridge opens after two years</a></h2>
</header><div class="entry-summary"><p>Teaser.</p>
<a class="more-link" href="2026/04/30/new-bridge-opens-after-two-years/#more-812">Continue reading</a></div>
<footer class="entry-footer">Posted in <a href="/category/roads/" rel="category tag">Roads</a>
<a href="/author/admin/">admin</a></footer></article>
<article class="post"><h2 class="entry-title"><a href="/?p=815">Library hours change for summer</a></h2></article>
<article class="post"><h2 class="entry-title"><a href="/2026/04/29/">April 29</a></h2></article>
<nav class="navigation posts-navigation"><a href="/page/2/">Older posts</a></nav>
</main></div>
<aside id="secondary" class="widget-area"><section class="widget widget_recent_entries"><h2>Recent Posts</h2>
<ul><li><a href="2026/04/28/market-day-moves-to-saturday-from-june/">Market day moves</a></li></ul></section></aside>
<footer id="colophon" class="site-footer"><a href="https://wordpress.org/">Proudly powered by WordPress</a></footer>
</body></html>"""


def test_wordpress_like_dates_post_ids_base_href_and_widgets() -> None:
    got = links(WORDPRESS_LIKE, "https://blog.example.org/")
    assert got == [
        ("https://blog.example.org/2026/04/30/new-bridge-opens-after-two-years/", "New bridge opens after two years"),
        ("https://blog.example.org/?p=815", "Library hours change for summer"),
    ]  # fmt: skip


def test_a_page_of_only_navigation_has_no_articles() -> None:
    html = """<html><body><nav><a href="/world/2026/04/30/a-long-story-slug-123456.html">A story</a></nav>
    <ul class="menu"><li><a href="/news/some-long-section-name-here">Section</a></li></ul>
    <p><a href="/world/">World</a> <a href="/video/">Video</a> <a href="/tag/flood-warnings-for-the-coast/">Floods</a></p>
    </body></html>"""
    assert links(html) == []


def test_headline_links_with_uninformative_urls_are_kept_short_ones_are_not() -> None:
    html = """<html><body><main>
    <article><h2><a href="/s/ab3f9">Ferry strike leaves islanders without supplies for a week</a></h2></article>
    <article><h2><a href="/s/zz">Markets</a></h2></article>
    <div><a href="/s/qq1">Ferry strike: what we know so far about the talks</a></div>
    </main></body></html>"""
    assert links(html, "https://example.org/") == [
        ("https://example.org/s/ab3f9", "Ferry strike leaves islanders without supplies for a week")
    ]


def test_repeated_links_merge_tracking_and_fragments_and_keep_the_best_title() -> None:
    html = """<html><body><main>
    <a href="/world/2026/04/30/storm-hits-coast-99881.html?utm_source=x"><img src="a.jpg" alt="Waves over the sea wall"></a>
    <a href="/world/2026/04/30/storm-hits-coast-99881.html#comments">14 comments</a>
    <h3><a href="/world/2026/04/30/storm-hits-coast-99881.html">Storm hits the coast</a></h3>
    <a href="/world/2026/04/30/only-an-image-99882.html"><img src="b.jpg" alt="Crowds at the station"></a>
    <a href="/world/2026/04/30/only-read-more-99883.html">Read more</a>
    <a href="/world/2026/04/30/titled-link-99884.html" title="Council votes on budget"><img src="c.jpg"></a>
    </main></body></html>"""
    assert links(html, "https://example.org/world/") == [
        (
            "https://example.org/world/2026/04/30/storm-hits-coast-99881.html",
            "Storm hits the coast",
        ),
        ("https://example.org/world/2026/04/30/only-an-image-99882.html", "Crowds at the station"),
        ("https://example.org/world/2026/04/30/only-read-more-99883.html", ""),
        ("https://example.org/world/2026/04/30/titled-link-99884.html", "Council votes on budget"),
    ]


def test_other_sites_are_left_out_unless_asked_subdomains_are_the_same_site() -> None:
    html = """<html><body><main>
    <a href="https://elsewhere.example.net/2026/04/30/partner-story-about-floods">Partner story about floods</a>
    <a href="https://live.example.org/2026/04/30/live-blog-on-the-floods">Live blog on the floods</a>
    <a href="https://www.example.org/2026/04/30/our-own-story-on-floods">Our own story on floods</a>
    </main></body></html>"""
    url = "https://www.example.org/"
    assert [u for u, _ in links(html, url)] == [
        "https://live.example.org/2026/04/30/live-blog-on-the-floods",
        "https://www.example.org/2026/04/30/our-own-story-on-floods",
    ]
    assert len(links(html, url, same_site=False)) == 3


# --------------------------------------------------------------------------- selector, pattern


async def test_a_selector_replaces_the_heuristic(site: NewsSite) -> None:
    body, url = await get_page(site, "/")
    assert links(body, url, selector="section.latest h2, section.latest h3") == canonical(
        site.expected_links(None)
    )
    # the selector may point anywhere, even at a box the heuristic leaves out
    rail = links(body, url, selector="aside.rail li a")
    assert [u for u, _ in rail] == [
        canonical_url(site.url(a.path + "?ref=trending")) for a in site.most_read()[:3]
    ]


async def test_a_pattern_replaces_the_url_test_and_narrows(site: NewsSite) -> None:
    body, url = await get_page(site, "/")
    world = [p for p in canonical(site.expected_links(None)) if "/world/" in p[0]]
    assert world and links(body, url, pattern=r"/world/\d{4}/") == world
    both = links(body, url, selector="section.latest", pattern=r"/world/\d{4}/")
    assert both == world
    # a pattern accepts URLs the heuristic would not call articles
    html = '<html><body><main><a href="/s/x1">A</a> <a href="/s/x2">B</a> <a href="/t/x3">C</a></main></body></html>'
    assert links(html, "https://example.org/", pattern=r"/s/") == [
        ("https://example.org/s/x1", "A"),
        ("https://example.org/s/x2", "B"),
    ]
    assert links(html, "https://example.org/") == []


def test_invalid_selector_or_pattern_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="invalid CSS selector"):
        check_selector("div[")
    with pytest.raises(ValueError, match="invalid URL pattern"):
        check_pattern("(unclosed")
    with pytest.raises(ValueError, match="invalid CSS selector"):
        find_article_links(b"<html></html>", "https://example.org/", selector="::nope(")
    check_selector("main article h2 > a")
    check_pattern(r"/\d{4}/\d{2}/")


# --------------------------------------------------------------------------- bytes and charsets


@pytest.mark.parametrize("where", ["header", "meta"])
def test_charset_from_the_header_or_meta(where: str) -> None:
    title = "Пожар в Харькове: эвакуация жителей"
    html = (
        '<meta charset="windows-1251">' if where == "meta" else ""
    ) + f'<main><h2><a href="/news/2026/04/30/pozhar-v-kharkove-12345.html">{title}</a></h2></main>'
    body = html.encode("windows-1251")
    charset = "windows-1251" if where == "header" else None
    assert links(body, "https://example.ua/", charset=charset) == [
        ("https://example.ua/news/2026/04/30/pozhar-v-kharkove-12345.html", title)
    ]


def test_utf8_without_a_label_and_latin1_fallback() -> None:
    html = '<main><h2><a href="/a/2026/04/30/cafe-story-12345.html">Café owners protest in Évora</a></h2></main>'
    assert (
        links(html.encode("utf-8"), "https://example.pt/")[0][1] == "Café owners protest in Évora"
    )
    assert (
        links(html.encode("cp1252"), "https://example.pt/")[0][1] == "Café owners protest in Évora"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"\x00\x01\xff\xfe garbage",
        b"<html>",
        b"<a href='",
        b"not html at all",
        b"<" * 10_000,
    ],
)
def test_garbage_gives_no_links_and_no_crash(body: bytes) -> None:
    assert find_article_links(body, "https://example.org/") == []


def test_non_http_and_self_links_are_dropped() -> None:
    html = """<main>
    <a href="javascript:void(0)">Open the menu of the long story here</a>
    <a href="mailto:desk@example.org?subject=a-long-story-subject-here">Email the desk today please</a>
    <a href="ftp://example.org/2026/04/30/a-long-story-slug-12345.html">FTP copy</a>
    <a href="#top">Back to top of the page</a>
    <a href="https://example.org/world/2026/04/30/?utm_source=x">This page itself, reloaded</a>
    <a href="">Empty link to nothing at all here</a>
    </main>"""
    assert links(html, "https://example.org/world/2026/04/30/") == []


async def test_the_link_digest_ignores_chrome_changes_and_sees_new_stories(site: NewsSite) -> None:
    from monitor.sectionpage import link_digest

    body, url = await get_page(site, "/world/")
    digest = link_digest(find_article_links(body, url))
    noisy = body.replace(b"</main>", b'<p class="updated">Updated 2 minutes ago</p></main>')
    noisy = noisy.replace(
        b"Most read</h3><ol>", b"Most read</h3><ol><li><a href='/x/2026/04/01/a-b-c'>X</a></li>"
    )
    assert noisy != body and link_digest(find_article_links(noisy, url)) == digest
    site.publish("world", "Bridge reopens to traffic after a two-year repair")
    changed, _ = await get_page(site, "/world/")
    assert link_digest(find_article_links(changed, url)) != digest


async def test_the_article_pages_extract_with_their_date_and_without_chrome(site: NewsSite) -> None:
    """A page source's items get their age from the article page (the section page gives none)."""
    from monitor.extract import extract_article

    art = site.articles[2]
    body, url = await get_page(site, art.path)
    x = extract_article(body, url, metadata=True)
    assert x.published is not None and x.published.date() == art.published.date()
    assert all(p in x.text for p in art.paragraphs[1:])
    assert "Sign in" not in x.text and "Most read" not in x.text and "Related" not in x.text
