"""`feedwatch add URL`'s logic: what can be watched at a URL, against real loopback sites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from monitor.discover import Discovery, discover, render_entries, render_report
from monitor.fetch import Fetcher
from monitor.models import Entry
from monitor.sectionpage import find_article_links
from monitor.settings import FeedConfig, FetchSettings
from monitor.sitemap import parse_sitemap
from monitor.urls import canonical_url
from tests.hostile_server import HostileServer
from tests.newssite import NAME, NewsSite

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def settings(**kw: object) -> FetchSettings:
    base: dict[str, object] = {"allow_private_networks": True, "timeout": 10, "idle_timeout": 5}
    base.update(kw)
    return FetchSettings(**base)


def entries(d: Discovery) -> list[dict[str, str]]:
    """The pasted entries, read back as YAML and checked against the config's feed model."""
    text = render_entries(d)
    assert text == "" or all(line.startswith("  ") for line in text.splitlines())
    rows = yaml.safe_load(text) or []
    for row in rows:
        assert set(row) <= {"url", "type", "name"}
        assert row.get("type", "feed") in ("feed", "sitemap", "page")
        FeedConfig.model_validate({k: v for k, v in row.items() if k != "type"})
    names = [r["name"].lower() for r in rows if "name" in r]
    assert len(names) == len(set(names))
    # the same text pasted under `feeds:` is valid YAML there too
    assert yaml.safe_load("feeds:\n" + text)["feeds"] == (rows or None)
    return rows


@pytest.fixture
async def site() -> AsyncIterator[NewsSite]:
    async with NewsSite(now=NOW) as s:
        yield s


async def test_a_site_without_a_feed_gets_its_news_sitemap_and_section_page(
    site: NewsSite,
) -> None:
    d = await discover(site.url("/"), settings(), now=NOW)
    assert d.kind == "page" and d.error is None
    assert entries(d) == [
        {
            "url": site.url("/news-sitemap.xml"),
            "type": "sitemap",
            "name": f"{NAME} (news sitemap)",
        },
        {"url": site.url("/"), "type": "page", "name": f"{NAME} (home page)"},
    ]
    by_url = {f.url: f for f in d.found}
    news = by_url[site.url("/news-sitemap.xml")]
    assert news.news and news.count == len(site.news_articles())
    assert news.samples[0] == site.articles[0].title
    index = by_url[site.url("/sitemap_index.xml")]
    assert index.index and not index.proposed and index.count == len(site.months()) + 3
    page = by_url[site.url("/")]
    assert page.count == len(site.expected_links(None))
    assert page.samples == [t for _, t in site.expected_links(None)][:5]
    assert any("no feed" in n for n in d.notes)
    # every URL was asked for once at most (robots.txt and the index both name the news sitemap)
    assert max(site.hits.values()) == 1
    assert site.hits["/sitemaps/big.xml"] == 0  # an undated archive child is not opened
    report = render_report(d)
    assert "Paste under `feeds:`" in report and "type: sitemap" in report


async def test_a_section_page_url_proposes_that_page(site: NewsSite) -> None:
    d = await discover(site.url("/politics/"), settings(), now=NOW)
    rows = entries(d)
    assert rows[-1] == {
        "url": site.url("/politics/"),
        "type": "page",
        "name": f"{NAME} (politics page)",
    }
    assert rows[0]["url"] == site.url("/news-sitemap.xml")


async def test_a_site_with_a_feed_gets_the_feed_and_the_news_sitemap_not_the_page() -> None:
    async with NewsSite(now=NOW, feed=True) as site:
        d = await discover(site.url("/"), settings(), now=NOW)
    rows = entries(d)
    assert rows == [
        {"url": site.url("/rss.xml"), "name": NAME},
        {"url": site.url("/news-sitemap.xml"), "type": "sitemap", "name": f"{NAME} (news sitemap)"},
    ]
    feed = d.found[0]
    assert feed.type == "feed" and feed.count == 20 and "RSS 2.0" in feed.description
    page = next(f for f in d.found if f.type == "page")
    assert not page.proposed and page.count > 0
    assert site.hits["/feed"] == 0  # an advertised feed: the usual paths are not tried


async def test_a_sitemap_index_url_proposes_its_news_child(site: NewsSite) -> None:
    d = await discover(site.url("/sitemap_index.xml"), settings(), now=NOW)
    assert d.kind == "sitemap"
    assert entries(d) == [
        {"url": site.url("/news-sitemap.xml"), "type": "sitemap", "name": f"{NAME} (news sitemap)"}
    ]
    assert site.hits["/robots.txt"] == 0 and site.hits["/"] == 0


async def test_a_plain_sitemap_is_proposed_when_nothing_better_exists(site: NewsSite) -> None:
    d = await discover(site.url("/sitemaps/sections.xml"), settings(), now=NOW)
    assert d.kind == "sitemap"
    assert entries(d) == [{"url": site.url("/sitemaps/sections.xml"), "type": "sitemap"}]
    assert "sitemap: 4 URLs" in d.found[0].description


async def test_a_huge_sitemap_is_read_in_part_and_said_so(site: NewsSite) -> None:
    d = await discover(site.url("/sitemaps/big.xml"), settings(max_bytes=512 * 1024), now=NOW)
    assert d.kind == "sitemap" and d.found[0].proposed
    assert "cut at the size limit" in d.found[0].description
    assert any("larger than fetch.max_bytes" in n for n in d.notes)


async def test_a_feed_url_is_a_feed() -> None:
    async with NewsSite(now=NOW, feed=True) as site:
        d = await discover(site.url("/rss.xml"), settings(), now=NOW)
    assert d.kind == "feed"
    assert entries(d) == [{"url": site.url("/rss.xml"), "name": NAME}]
    assert site.hits["/robots.txt"] == 0


async def test_nothing_to_watch() -> None:
    async with HostileServer() as srv:
        srv.feed(
            "/",
            b"<!DOCTYPE html><html><head><title>Plain</title></head><body><main>"
            b'<p>Hello. <a href="/about/">About</a> <a href="/contact/">Contact</a></p>'
            b"</main></body></html>",
            content_type="text/html",
        )
        d = await discover(srv.url("/"), settings(), now=NOW)
    assert d.kind == "page" and d.proposed == [] and render_entries(d) == ""
    assert [f.type for f in d.found] == ["page"] and d.found[0].count == 0
    notes = " | ".join(d.notes)
    assert "robots.txt" in notes and "no sitemap found" in notes and "no feed" in notes
    assert "too few article links" in notes
    assert "Nothing to watch" in render_report(d)


async def test_not_a_page_feed_or_sitemap() -> None:
    async with HostileServer() as srv:
        srv.feed("/x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, content_type="image/png")
        d = await discover(srv.url("/x.png"), settings(), now=NOW)
    assert d.kind == "other" and d.proposed == [] and d.error and "not a feed" in d.error


async def test_fetch_errors_and_the_ssrf_guard(site: NewsSite) -> None:
    d = await discover(site.url("/missing/"), settings(), now=NOW)
    assert d.kind == "error" and d.error and "404" in d.error and d.found == []
    guarded = await discover(site.url("/"), settings(allow_private_networks=False), now=NOW)
    assert guarded.kind == "error" and guarded.found == []
    assert "loopback address" in (guarded.error or "")
    assert "allow_private_networks" in (guarded.error or "")
    assert sum(site.hits.values()) == 1  # only the 404: the guard sent nothing
    assert "cannot fetch" in render_report(guarded)


async def test_a_shared_fetcher_is_used_and_left_open(site: NewsSite) -> None:
    async with Fetcher(settings()) as f:
        d = await discover(site.url("/"), settings(), fetcher=f, now=NOW)
        assert d.proposed
        assert (await f.get(site.url("/robots.txt"))).status == 200


async def test_both_sources_name_a_new_article_by_the_same_canonical_url(site: NewsSite) -> None:
    """What "alerts once" rests on: the page and the sitemap give the same canonical URL."""
    art = site.publish("world", "Floods close the ring road in three districts")
    async with Fetcher(settings()) as f:
        page = await f.get(site.url("/"))
        news = await f.get(site.url("/news-sitemap.xml"))
    from_page: list[Entry] = find_article_links(page.body, page.url)
    from_sitemap = parse_sitemap(news.body, news.url, NOW).entries
    assert from_page[0].title == from_sitemap[0].title == art.title
    assert canonical_url(from_page[0].url or "") == canonical_url(from_sitemap[0].url or "")
    assert canonical_url(from_page[0].url or "") == canonical_url(site.url(art.path))


async def test_feedwatch_add_prints_entries_to_paste_or_exits_3(
    site: NewsSite, tmp_path: Path
) -> None:
    from tests.harness import feedwatch

    cfg = tmp_path / "feedwatch.yaml"
    cfg.write_text("fetch: {allow_private_networks: true}\n")
    code, out, err = await feedwatch("add", site.url("/"), "--config", str(cfg))
    assert code == 0, err
    assert "Paste under `feeds:`" in out and "type: sitemap" in out
    assert site.url("/news-sitemap.xml") in out
    code, out, err = await feedwatch("add", site.url("/no-such-page"), "--config", str(cfg))
    assert code == 3 and err.startswith("feedwatch: ")
    # The config's fetch settings apply: without allow_private_networks, the SSRF guard
    # refuses a loopback address.
    strict = tmp_path / "strict.yaml"
    strict.write_text("fetch: {allow_private_networks: false}\n")
    code, out, err = await feedwatch("add", site.url("/"), "--config", str(strict))
    assert code == 3 and "Paste under" not in out
    code, out, err = await feedwatch("add", site.url("/"), "--config", str(tmp_path / "no.yaml"))
    assert code == 2 and "config file not found" in err
