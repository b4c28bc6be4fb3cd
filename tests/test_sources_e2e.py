"""Sources beyond RSS, end to end: a site with no feed, watched through its news sitemap and a
section page at once; a new story alerts exactly once, and an unchanged page costs nothing."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.daemon import Daemon
from monitor.settings import load_config
from tests.harness import feedwatch
from tests.newssite import NewsSite
from tests.receivers import WebhookReceiver


@pytest.fixture
async def site() -> AsyncIterator[NewsSite]:
    async with NewsSite(now=datetime.now(UTC), big_urls=300) as s:
        yield s


def config(tmp_path: Path, site: NewsSite, hook: str, sources: str) -> Path:
    path = tmp_path / "feedwatch.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            storage: {{url: {tmp_path / "fw.db"}}}
            fetch: {{allow_private_networks: true}}
            channels: {{hook: {{type: webhook, url: "{hook}"}}}}
            watchlists: [{{name: roads, keywords: ["ring road"], channels: [hook]}}]
            """
        )
        + "sources:\n"
        + textwrap.indent(textwrap.dedent(sources).strip("\n"), "  ")
        + "\n"
    )
    return path


async def test_a_new_story_on_a_site_without_a_feed_alerts_once(
    tmp_path: Path, site: NewsSite
) -> None:
    async with WebhookReceiver() as hook:
        cfg = config(
            tmp_path,
            site,
            hook.url,
            f"""
            - {{url: "{site.url("/news-sitemap.xml")}", type: sitemap, name: Gazette news}}
            - {{url: "{site.url("/world/")}", type: page, name: Gazette world}}
            """,
        )
        code, _out, err = await feedwatch("run", "--once", "--config", str(cfg))
        assert code == 0, err
        assert hook.requests == []  # nothing about the ring road yet
        art = site.publish("world", "Floods close the ring road in three districts")
        code, _out, err = await feedwatch("run", "--once", "--config", str(cfg))
        assert code == 0, err
        (req,) = hook.requests  # listed by the sitemap and by the page: one article, one alert
        payload = req.json()
        assert payload["article"]["url"] == site.url(art.path)
        assert payload["article"]["title"] == "Floods close the ring road in three districts"
        assert payload["matches"][0]["text"].lower() == "ring road"

        pages_before = site.hits[art.path]
        loaded = load_config(cfg, env={})
        async with Daemon(loaded) as daemon:
            await daemon.run_once()
        by = {r.feed: r for r in daemon.stats.results}
        # The page answers 200 with a fresh clock and ticker, but its article links are the
        # same: nothing is parsed further, no page is fetched.
        assert by["Gazette world"].status in ("unchanged", "not_modified")
        assert site.hits[art.path] == pages_before
        assert len(hook.requests) == 1


async def test_a_sitemap_index_is_followed_to_its_newest_children(
    tmp_path: Path, site: NewsSite
) -> None:
    async with WebhookReceiver() as hook:
        cfg = config(
            tmp_path,
            site,
            hook.url,
            f"""
            - {{url: "{site.url("/sitemap_index.xml")}", type: sitemap, name: Gazette index}}
            """,
        )
        loaded = load_config(cfg, env={})
        async with Daemon(loaded) as daemon:
            await daemon.run_once()
        (result,) = daemon.stats.results
        assert result.status == "ok" and result.new > 0
        fetched = [p for p in site.hits if p.startswith(("/news-sitemap", "/sitemaps/"))]
        assert "/news-sitemap.xml" in fetched  # the newest child
        assert len(fetched) <= 3  # at most three children per poll


async def test_selector_and_pattern_are_checked_with_the_config(tmp_path: Path) -> None:
    path = tmp_path / "feedwatch.yaml"
    path.write_text(
        textwrap.dedent(
            """
            sources:
              - {url: "https://example.org/world/", type: page, selector: "div[[", pattern: "("}
              - {url: "https://example.org/rss.xml", selector: "a.story"}
            """
        )
    )
    code, _out, err = await feedwatch("check", "--config", str(path))
    assert code == 2
    lines = err.strip().splitlines()
    assert any("sources[0].selector" in line for line in lines), err
    assert any("sources[0].pattern" in line for line in lines), err
    assert any(
        "sources[1]: selector and pattern apply to type: page only" in line for line in lines
    )
