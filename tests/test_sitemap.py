"""Sitemaps: news sitemaps, indexes, gzip, bodies cut short, broken XML and dates; over real HTTP."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.fetch import Fetcher
from monitor.models import FetchError, NotASitemap, SitemapChild
from monitor.settings import FetchSettings
from monitor.sitemap import parse_sitemap, parse_w3c_date, select_children
from tests.newssite import NAME, NewsSite

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NS = (
    'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
    'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9" '
    'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"'
)


def urlset(*rows: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS}>\n{"".join(rows)}</urlset>\n'.encode()


def news_row(loc: str, title: str, date: str, *, keywords: str = "", lang: str = "en") -> str:
    return (
        f"<url><loc>{loc}</loc><news:news><news:publication><news:name>Gazette</news:name>"
        f"<news:language>{lang}</news:language></news:publication>"
        f"<news:publication_date>{date}</news:publication_date><news:title>{title}</news:title>"
        f"<news:keywords>{keywords}</news:keywords></news:news>"
        f"<image:image><image:loc>https://cdn.example.org/{abs(hash(loc))}.jpg</image:loc>"
        "<image:title>A photo</image:title></image:image></url>\n"
    )


def plain_row(loc: str, lastmod: str | None = None) -> str:
    mod = f"<lastmod>{lastmod}</lastmod>" if lastmod is not None else ""
    return f"<url><loc>{loc}</loc>{mod}<changefreq>hourly</changefreq></url>\n"


def settings(**kw: object) -> FetchSettings:
    base: dict[str, object] = {"allow_private_networks": True, "timeout": 10, "idle_timeout": 5}
    base.update(kw)
    return FetchSettings(**base)


# --------------------------------------------------------------------------- news sitemaps


def test_news_sitemap_items_carry_title_date_language_keywords() -> None:
    body = urlset(
        news_row(
            "https://example.org/world/2026/05/01/floods-close-ring-road-4411.html",
            "Floods close the ring road",
            "2026-05-01T10:30:00+02:00",
            keywords="floods, ring road , Lisbon,",
            lang="pt",
        ),
        news_row("https://example.org/b-2.html", "Second &amp; last", "2026-04-30"),
    )
    sm = parse_sitemap(body, "https://example.org/news.xml", NOW)
    assert sm.kind == "urlset" and sm.news and not sm.truncated and sm.warning is None
    assert sm.title == "Gazette"
    first, second = sm.entries
    assert (
        first.url
        == first.guid
        == ("https://example.org/world/2026/05/01/floods-close-ring-road-4411.html")
    )
    assert first.title == "Floods close the ring road"
    assert first.published == datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    assert first.language == "pt"
    assert first.keywords == ("floods", "ring road", "Lisbon")
    assert first.summary == ""
    assert second.title == "Second & last"
    assert second.published == datetime(2026, 4, 30, tzinfo=UTC)
    assert len(sm.entries) == 2  # image:loc never becomes an item


def test_publication_date_wins_over_lastmod_and_lastmod_is_the_fallback() -> None:
    row = news_row("https://example.org/a-1.html", "A", "2026-05-01T09:00:00Z").replace(
        "</loc>", "</loc><lastmod>2026-05-01T11:00:00Z</lastmod>"
    )
    bad = news_row("https://example.org/b-1.html", "B", "not a date").replace(
        "</loc>", "</loc><lastmod>2026-05-01T11:00:00Z</lastmod>"
    )
    sm = parse_sitemap(urlset(row, bad), "https://example.org/n.xml", NOW)
    assert [e.published for e in sm.entries] == [
        datetime(2026, 5, 1, 9, tzinfo=UTC),
        datetime(2026, 5, 1, 11, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-04-30T10:00:00Z", datetime(2026, 4, 30, 10, tzinfo=UTC)),
        ("2026-04-30T10:00:00.123+01:00", datetime(2026, 4, 30, 9, 0, 0, 123000, tzinfo=UTC)),
        ("2026-04-30T10:00+01:00", datetime(2026, 4, 30, 9, tzinfo=UTC)),
        ("2026-04-30", datetime(2026, 4, 30, tzinfo=UTC)),
        ("2026-04", datetime(2026, 4, 1, tzinfo=UTC)),
        ("2026", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-04-30 10:00:00", datetime(2026, 4, 30, 10, tzinfo=UTC)),  # naive: UTC
        ("Thu, 30 Apr 2026 10:00:00 GMT", datetime(2026, 4, 30, 10, tzinfo=UTC)),
        ("  2026-04-30T10:00:00Z\n", datetime(2026, 4, 30, 10, tzinfo=UTC)),
        ("2026-02-30T25:61:00Z", None),
        ("2026-13-01", None),
        ("0000-00-00 00:00:00", None),
        ("1970-01-01T00:00:00Z", None),  # a CMS default, not a date
        ("2026-05-03T12:00:00Z", None),  # two days ahead: a mistake, not a publish time
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_dates(text: str | None, expected: datetime | None) -> None:
    assert parse_w3c_date(text, NOW) == expected


def test_broken_dates_never_fail_the_sitemap() -> None:
    rows = [
        plain_row("https://example.org/a-1.html", "2026-02-30"),
        plain_row("https://example.org/a-2.html", "soon"),
        plain_row("https://example.org/a-3.html", ""),
        plain_row("https://example.org/a-4.html", "2099-01-01T00:00:00Z"),
        plain_row("https://example.org/a-5.html", "2026-04-30T08:00:00Z"),
    ]
    sm = parse_sitemap(urlset(*rows), "https://example.org/s.xml", NOW)
    assert [e.published for e in sm.entries] == [None] * 4 + [datetime(2026, 4, 30, 8, tzinfo=UTC)]
    assert not sm.news and all(e.title == "" for e in sm.entries)


def test_relative_non_http_empty_and_repeated_locs_are_dropped() -> None:
    rows = [
        plain_row("https://example.org/keep-1.html"),
        plain_row("/relative/path-2.html"),
        plain_row("ftp://example.org/file-3.html"),
        plain_row("javascript:alert(1)"),
        plain_row(""),
        plain_row("https://example.org/keep-1.html"),  # repeated
        plain_row("  https://example.org/keep-2.html\n  "),  # whitespace around is fine
        plain_row("http://[::1]:8080/v6-3.html"),
        plain_row("https:///no-host.html"),
    ]
    sm = parse_sitemap(urlset(*rows), "https://example.org/s.xml", NOW)
    assert [e.url for e in sm.entries] == [
        "https://example.org/keep-1.html",
        "https://example.org/keep-2.html",
        "http://[::1]:8080/v6-3.html",
    ]
    assert sm.dropped == 6


def test_a_prefixed_sitemap_namespace_is_read() -> None:
    body = (
        b'<?xml version="1.0"?><sm:urlset xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sm:url><sm:loc>https://example.org/a-1.html</sm:loc>"
        b"<sm:lastmod>2026-04-30</sm:lastmod></sm:url></sm:urlset>"
    )
    sm = parse_sitemap(body, "https://example.org/s.xml", NOW)
    assert [(e.url, e.published) for e in sm.entries] == [
        ("https://example.org/a-1.html", datetime(2026, 4, 30, tzinfo=UTC))
    ]


# --------------------------------------------------------------------------- invalid XML


def test_invalid_xml_is_recovered_without_losing_text() -> None:
    rows = [
        # a bare ampersand in a URL: the query string must survive
        plain_row("https://example.org/search-result-1.html?a=1&b=2"),
        # HTML entities XML does not define, and a control character
        news_row(
            "https://example.org/a-2.html", "Caf&eacute;&nbsp;owners \x0b protest", "2026-05-01"
        ),
        # a mismatched end tag in the middle of the file
        "<url><loc>https://example.org/a-3.html</loc></urll>\n",
        plain_row("https://example.org/a-4.html", "2026-04-30"),
        # an element-looking bit of junk between urls
        "<junk>&</junk>\n",
        plain_row("https://example.org/a-5.html?x=1&amp;y=2"),
    ]
    sm = parse_sitemap(urlset(*rows), "https://example.org/s.xml", NOW)
    assert [e.url for e in sm.entries] == [
        "https://example.org/search-result-1.html?a=1&b=2",
        "https://example.org/a-2.html",
        "https://example.org/a-3.html",
        "https://example.org/a-4.html",
        "https://example.org/a-5.html?x=1&y=2",
    ]
    assert sm.entries[1].title == "Café owners protest"
    assert sm.warning is not None and "invalid XML" in sm.warning


def test_references_split_across_read_chunks_are_repaired_correctly() -> None:
    # enough rows that bare "&", "&amp;" and "&nbsp;" land on every side of the 64 KB chunk seams
    rows = []
    for i in range(3000):
        pad = "x" * (i % 29)
        rows.append(
            news_row(
                f"https://example.org/{pad}/story-{i}.html?a={i}&b=2&amp;c=3",
                f"Title&nbsp;{i} &amp; more &lt;{pad}&gt;",
                "2026-05-01T08:00:00Z",
            )
        )
    body = urlset(*rows)
    assert len(body) > 5 * 64 * 1024
    sm = parse_sitemap(body, "https://example.org/s.xml", NOW)
    assert len(sm.entries) == 3000
    for i, e in enumerate(sm.entries):
        pad = "x" * (i % 29)
        assert e.url == f"https://example.org/{pad}/story-{i}.html?a={i}&b=2&c=3"
        assert e.title == f"Title {i} & more <{pad}>"


# --------------------------------------------------------------------------- cut bodies


def _sample_urlset(n: int) -> bytes:
    return urlset(
        *(
            news_row(
                f"https://example.org/world/2026/04/30/a-long-story-slug-{i}.html",
                f"Story {i}",
                "2026-04-30T10:00:00Z",
            )
            for i in range(n)
        )
    )


def test_a_body_cut_anywhere_yields_exactly_the_complete_urls_before_the_cut() -> None:
    body = _sample_urlset(12)
    full = parse_sitemap(body, "https://example.org/s.xml", NOW)
    assert len(full.entries) == 12 and not full.truncated
    ends = [i + len(b"</url>") for i in range(len(body)) if body.startswith(b"</url>", i)]
    for cut in range(150, len(body) - 12, 7):  # every 7th byte position
        sm = parse_sitemap(body[:cut], "https://example.org/s.xml", NOW)
        complete = sum(1 for end in ends if end <= cut)
        assert sm.truncated, cut
        assert "cut short" in (sm.warning or "")
        # never a half <url>: the complete ones, or (cut right after </url>) all but the last
        assert complete - 1 <= len(sm.entries) <= complete, cut
        assert [e.url for e in sm.entries] == [e.url for e in full.entries[: len(sm.entries)]]
        assert all(e.title == f"Story {i}" for i, e in enumerate(sm.entries))


def test_gzip_is_read_by_its_magic_bytes_and_a_cut_gzip_keeps_its_complete_urls() -> None:
    body = _sample_urlset(2000)
    full = parse_sitemap(body, "u", NOW)
    packed = gzip.compress(body)
    assert parse_sitemap(packed, "https://example.org/s.xml.gz", NOW).entries == full.entries
    cut = parse_sitemap(packed[: len(packed) // 2], "https://example.org/s.xml.gz", NOW)
    assert cut.truncated and 0 < len(cut.entries) < 2000
    assert cut.entries == full.entries[: len(cut.entries)]
    # concatenated gzip members are one stream
    two = gzip.compress(body[:5000]) + gzip.compress(body[5000:])
    assert parse_sitemap(two, "u", NOW).entries == full.entries


def test_max_bytes_bounds_inflation_of_a_gzip_bomb() -> None:
    body = _sample_urlset(3000)
    packed = gzip.compress(body)
    sm = parse_sitemap(packed, "https://example.org/s.xml.gz", NOW, max_bytes=100_000)
    assert sm.truncated and "larger than 100000 bytes" in (sm.warning or "")
    assert 0 < len(sm.entries) < 3000
    bomb = gzip.compress(b"<urlset>" + b" " * 50_000_000)
    assert len(bomb) < 100_000
    sm = parse_sitemap(bomb, "u", NOW, max_bytes=1_000_000)
    assert sm.truncated and sm.entries == []


def test_broken_gzip_data_is_not_a_sitemap_or_a_cut_one() -> None:
    with pytest.raises(NotASitemap, match="gzip"):
        parse_sitemap(b"\x1f\x8b\x08\x00garbage-garbage-garbage", "u", NOW)


# --------------------------------------------------------------------------- indexes


def test_index_children_newest_first_undated_last_and_selection() -> None:
    body = (
        b'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc>https://example.org/s-2026-03.xml.gz</loc><lastmod>2026-03-31</lastmod></sitemap>"
        b"<sitemap><loc>https://example.org/s-undated-a.xml</loc></sitemap>"
        b"<sitemap><loc>https://example.org/news.xml</loc><lastmod>2026-05-01T11:50:00Z</lastmod></sitemap>"
        b"<sitemap><loc>https://example.org/s-2026-04.xml.gz</loc><lastmod>2026-04-30T20:00:00Z</lastmod></sitemap>"
        b"<sitemap><loc>https://example.org/s-broken.xml</loc><lastmod>2026-02-30</lastmod></sitemap>"
        b"<sitemap><loc>/relative.xml</loc></sitemap>"
        b"</sitemapindex>"
    )
    sm = parse_sitemap(body, "https://example.org/index.xml", NOW)
    assert sm.kind == "index" and sm.entries == [] and sm.dropped == 1
    assert [c.url.rsplit("/", 1)[1] for c in sm.children] == [
        "news.xml",
        "s-2026-04.xml.gz",
        "s-2026-03.xml.gz",
        "s-undated-a.xml",
        "s-broken.xml",
    ]
    assert [c.url for c in select_children(sm.children, limit=2)] == [
        "https://example.org/news.xml",
        "https://example.org/s-2026-04.xml.gz",
    ]
    since = datetime(2026, 5, 1, 6, tzinfo=UTC)
    assert [c.url.rsplit("/", 1)[1] for c in select_children(sm.children, since=since)] == [
        "news.xml",
        "s-undated-a.xml",  # no lastmod: nothing says it did not change
        "s-broken.xml",
    ]
    assert select_children(sm.children, limit=1, since=since) == [
        SitemapChild("https://example.org/news.xml", datetime(2026, 5, 1, 11, 50, tzinfo=UTC))
    ]
    assert select_children(sm.children, limit=0) == []


# --------------------------------------------------------------------------- not sitemaps


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<!DOCTYPE html><html><head><title>x</title></head><body>hi</body></html>", "HTML page"),
        (b'<?xml version="1.0"?><rss version="2.0"><channel></channel></rss>', "type: feed"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"></feed>', "type: feed"),
        (b'<?xml version="1.0"?><catalog><book/></catalog>', "<catalog>"),
        (b"", "empty"),
        (b"   \n ", "empty"),
        (b"\x00\x01\x02 binary junk \xff\xfe", "not a sitemap"),
        (b"just some words, not URLs\nand more words\n", "not a sitemap"),
    ],
)
def test_not_a_sitemap(body: bytes, message: str) -> None:
    with pytest.raises(NotASitemap, match=message):
        parse_sitemap(body, "https://example.org/x", NOW)


def test_a_text_sitemap_is_one_url_a_line() -> None:
    body = b"https://example.org/a-1.html\r\nhttps://example.org/b-2.html\n\nhttps://example.org/a-1.html\n"
    sm = parse_sitemap(body, "https://example.org/sitemap.txt", NOW)
    assert [e.url for e in sm.entries] == [
        "https://example.org/a-1.html",
        "https://example.org/b-2.html",
    ]
    cut = parse_sitemap(gzip.compress(body * 1)[:-12], "u", NOW)  # gzip trailer cut off
    assert cut.truncated


# --------------------------------------------------------------------------- 50,000 URLs


def test_fifty_thousand_urls_with_broken_dates() -> None:
    site = NewsSite(now=NOW)
    body = site.big_sitemap()
    sm = parse_sitemap(body, "http://127.0.0.1/sitemaps/big.xml", NOW)
    assert len(sm.entries) == 50_000 and not sm.truncated and sm.warning is None
    broken = [i for i, e in enumerate(sm.entries) if e.published is None]
    assert broken == [i for i in range(50_000) if i % 997 == 5]
    assert sm.entries[-1].url.endswith("story-number-49999-of-the-archive-149999.html")


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
async def site() -> AsyncIterator[NewsSite]:
    async with NewsSite(now=NOW) as s:
        yield s


async def test_robots_index_and_gzip_children_over_http(site: NewsSite) -> None:
    async with Fetcher(settings()) as f:
        robots = (await f.get(site.url("/robots.txt"))).body.decode()
        index_url = next(
            line.split(":", 1)[1].strip()
            for line in robots.splitlines()
            if line.lower().startswith("sitemap:") and "index" in line
        )
        resp = await f.get(index_url)
        index = parse_sitemap(resp.body, resp.url, NOW)
        assert index.kind == "index"
        newest = select_children(index.children, limit=2)
        month = site.months()[0]
        assert {c.url for c in newest} == {
            site.url(f"/sitemaps/articles-{month}.xml.gz"),
            site.url("/news-sitemap.xml"),
        }
        assert index.children[-1].url == site.url("/sitemaps/big.xml")  # broken lastmod: last
        child = await f.get(site.url(f"/sitemaps/articles-{month}.xml.gz"))
        assert child.content_type == "application/x-gzip"
        assert "content-encoding" not in child.headers and child.body[:2] == b"\x1f\x8b"
        sm = parse_sitemap(child.body, child.url, NOW)
    expected = [a for a in site.articles if f"{a.published:%Y-%m}" == month]
    assert [e.url for e in sm.entries] == [site.url(a.path) for a in expected]
    assert [e.published for e in sm.entries] == [a.published.replace(second=0) for a in expected]


async def test_news_sitemap_over_http_and_a_new_article(site: NewsSite) -> None:
    async with Fetcher(settings()) as f:
        first = await f.get(site.url("/news-sitemap.xml"))
        sm = parse_sitemap(first.body, first.url, NOW)
        assert sm.news and sm.title == NAME
        recent = site.news_articles()
        assert [e.url for e in sm.entries] == [site.url(a.path) for a in recent]
        assert [e.title for e in sm.entries] == [a.title for a in recent]
        broken = [a for a in recent if a.broken_date]
        assert len(broken) == 1
        assert [e.published is None for e in sm.entries] == [a.broken_date for a in recent]
        # unchanged: a conditional GET is answered 304
        again = await f.get(site.url("/news-sitemap.xml"), etag=first.headers["etag"])
        assert again.not_modified
        art = site.publish("world", "Floods close the ring road in three districts")
        changed = await f.get(site.url("/news-sitemap.xml"), etag=first.headers["etag"])
        assert not changed.not_modified
        new = parse_sitemap(changed.body, changed.url, NOW)
    assert new.entries[0].url == site.url(art.path)
    assert new.entries[0].title == art.title
    assert new.entries[0].published == NOW
    assert {e.url for e in new.entries} - {e.url for e in sm.entries} == {site.url(art.path)}


async def test_a_huge_sitemap_is_read_within_max_bytes(site: NewsSite) -> None:
    limit = 1024 * 1024
    full = parse_sitemap(site.big_sitemap(), "u", NOW)
    async with Fetcher(settings(max_bytes=limit)) as f:
        with pytest.raises(FetchError) as info:
            await f.get(site.url("/sitemaps/big.xml"))
        assert info.value.kind == "too_large"
        resp = await f.get(site.url("/sitemaps/big.xml"), truncate=True)
    assert resp.truncated and len(resp.body) == limit
    sm = parse_sitemap(resp.body, resp.url, NOW, max_bytes=limit)
    assert sm.truncated and 1000 < len(sm.entries) < 50_000
    assert sm.entries == full.entries[: len(sm.entries)]


def test_the_site_news_window_is_48_hours() -> None:
    site = NewsSite(now=NOW)
    assert site.news_articles()
    assert all(NOW - a.published <= timedelta(hours=48) for a in site.news_articles())
    assert len(site.news_articles()) < len(site.articles)


def test_an_invalid_and_cut_body_still_yields_only_complete_urls() -> None:
    rows = [plain_row(f"https://example.org/a-{i}.html?x=1&amp;y={i}") for i in range(40)]
    rows.insert(3, "<url><loc>https://example.org/broken.html</loc></urll>\n")
    body = urlset(*rows)
    full = parse_sitemap(body, "u", NOW)
    assert len(full.entries) == 41 and "invalid XML" in (full.warning or "")
    assert all(e.url.endswith(f"&y={i + 3}") for i, e in enumerate(full.entries[4:]))
    for cut in range(400, len(body) - 20, 97):
        sm = parse_sitemap(body[:cut], "u", NOW)
        assert sm.truncated
        assert [e.url for e in sm.entries] == [e.url for e in full.entries[: len(sm.entries)]]
        assert len(sm.entries) >= body[:cut].count(b"</url>") - 1


async def test_both_parsers_run_in_the_process_pool(site: NewsSite) -> None:
    from monitor.sectionpage import find_article_links
    from monitor.workers import CpuPool

    pool = CpuPool(1)
    try:
        sm = await pool.run(10.0, parse_sitemap, site.big_sitemap(), site.url("/big.xml"), NOW)
        page = site.section_page(None)
        links = await pool.run(10.0, find_article_links, page, site.url("/"))
    finally:
        pool.close()
    assert len(sm.entries) == 50_000
    assert [e.title for e in links] == [t for _, t in site.expected_links(None)]


def test_forbidden_character_references_and_bad_utf8_do_not_crash() -> None:
    rows = [
        news_row(
            "https://example.org/a-1.html", "Bad &#xD800; ref &#0; and &#x110000;", "2026-05-01"
        ),
        plain_row("https://example.org/a-2.html", "2026-04-30&#xD800;"),
        news_row("https://example.org/a-3.html", "Cut \xc3 byte", "2026-05-01"),
    ]
    body = urlset(*rows).replace(b"\xc3\x83", b"\xc3")  # a lone UTF-8 lead byte
    sm = parse_sitemap(body, "https://example.org/s.xml", NOW)
    assert [e.url for e in sm.entries][:2] == [
        "https://example.org/a-1.html",
        "https://example.org/a-2.html",
    ]
    assert sm.entries[0].title == "Bad \ufffd ref \ufffd and \ufffd"
    assert sm.entries[1].published is None
