"""`feedwatch demo`: the real pipeline on bundled sample feeds served from 127.0.0.1.

Nothing leaves the machine: the feeds and article pages come from a local aiohttp server, the
database is temporary, and alerts go to the console.
"""

from __future__ import annotations

import html
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

DATA = resources.files(__package__) / "data"

DEMO_CONFIG = """
storage:
  url: {db}
fetch:
  allow_private_networks: true   # the demo's feeds are served from 127.0.0.1
  timeout: 10s
defaults:
  interval: 15m
  extract: true
  max_age: 48h
delivery:
  drain_seconds: 10
feeds:
  - url: {base}/feeds/world.xml
  - url: {base}/feeds/science.atom
    tags: [science]
channels:
  terminal: {{type: console}}
watchlists:
  - name: wildfire-evacuations
    keywords: [wildfire*, "evacuation order", FEMA]
    exclude: [drill*]
    channels: [terminal]
  - name: portugal-ports
    keywords: [strike, "dock workers", shipping]
    places: [Lisbon]
    channels: [terminal]
"""


@dataclass
class Story:
    slug: str
    site: str
    section: str
    hours_ago: float
    author: str
    title: str
    summary: str
    body: list[str]
    via: str | None = None
    tracking: str = ""


def load_stories() -> tuple[dict[str, Any], list[Story]]:
    raw = yaml.safe_load((DATA / "stories.yaml").read_text(encoding="utf-8"))
    stories = [Story(**{"body": [], **s}) for s in raw["stories"]]
    return raw["sites"], stories


def _render_page(story: Story, site_name: str, published: datetime) -> str:
    template = (DATA / "page.html").read_text(encoding="utf-8")
    body = "\n".join(f"        <p>{html.escape(p)}</p>" for p in story.body)
    repl = {
        "@@TITLE@@": html.escape(story.title),
        "@@SITE@@": html.escape(site_name),
        "@@AUTHOR@@": html.escape(story.author),
        "@@ISO@@": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "@@HUMAN@@": published.strftime("%d %B %Y, %H:%M UTC"),
        "@@SECTION@@": html.escape(story.section),
        "@@BODY@@": body,
    }
    for k, v in repl.items():
        template = template.replace(k, v)
    return template


def _rss(site: dict[str, Any], items: list[tuple[Story, str, datetime]], base: str) -> str:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">',
        "<channel>",
        f"<title>{html.escape(site['name'])}</title>",
        f"<link>{base}/</link>",
        "<description>Sample feed bundled with feedwatch</description>",
        "<ttl>15</ttl>",
    ]
    for story, link, published in items:
        parts += [
            "<item>",
            f"<title>{html.escape(story.title)}</title>",
            f"<link>{html.escape(link)}</link>",
            f'<guid isPermaLink="false">{story.site}-{story.slug}</guid>',
            f"<pubDate>{format_datetime(published)}</pubDate>",
            f"<dc:creator>{html.escape(story.author)}</dc:creator>",
            f"<description>{html.escape('<p>' + html.escape(story.summary) + '</p>')}</description>",
            "</item>",
        ]
    parts += ["</channel>", "</rss>"]
    return "\n".join(parts)


def _atom(site: dict[str, Any], items: list[tuple[Story, str, datetime]], base: str) -> str:
    updated = max((p for _, _, p in items), default=datetime.now(UTC)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{html.escape(site['name'])}</title>",
        f'<link href="{base}/" rel="alternate"/>',
        f"<id>urn:feedwatch-demo:{site['feed']}</id>",
        f"<updated>{updated}</updated>",
    ]
    for story, link, published in items:
        parts += [
            "<entry>",
            f"<title>{html.escape(story.title)}</title>",
            f'<link href="{html.escape(link)}" rel="alternate"/>',
            f"<id>urn:feedwatch-demo:{story.site}:{story.slug}</id>",
            f"<updated>{published.strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>",
            f"<author><name>{html.escape(story.author)}</name></author>",
            f"<summary>{html.escape(story.summary)}</summary>",
            "</entry>",
        ]
    parts.append("</feed>")
    return "\n".join(parts)


class DemoServer:
    """Serves the sample feeds and pages; ``base`` is its http://127.0.0.1:PORT address."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)
        self.sites, self.stories = load_stories()
        self.base = ""
        self._runner: web.AppRunner | None = None
        self.requests: list[str] = []

    def _published(self, s: Story) -> datetime:
        return (self.now - timedelta(hours=s.hours_ago)).replace(microsecond=0)

    async def _feed(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.requests.append(request.path)
        for key, site in self.sites.items():
            if site["feed"] == name:
                items = []
                for s in self.stories:
                    if s.site != key:
                        continue
                    origin = s.via or s.site
                    link = f"{self.base}/{origin}/{s.slug}.html{s.tracking}"
                    items.append((s, link, self._published(s)))
                if name.endswith(".atom"):
                    return web.Response(
                        text=_atom(site, items, self.base), content_type="application/atom+xml"
                    )
                return web.Response(
                    text=_rss(site, items, self.base), content_type="application/rss+xml"
                )
        raise web.HTTPNotFound()

    async def _page(self, request: web.Request) -> web.Response:
        site, slug = request.match_info["site"], request.match_info["slug"]
        self.requests.append(request.path)
        for s in self.stories:
            if s.site == site and s.slug == slug and not s.via:
                page = _render_page(s, self.sites[site]["name"], self._published(s))
                return web.Response(text=page, content_type="text/html")
        raise web.HTTPNotFound()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/feeds/{name}", self._feed)
        app.router.add_get("/{site}/{slug}.html", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> DemoServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _stored_without_alert(daemon: Any) -> list[str]:
    from datetime import datetime as _dt

    since = _dt(1970, 1, 1, tzinfo=UTC)
    articles = await daemon.storage.articles_since(since)
    alerted = {a.article_id for a in await daemon.storage.list_alerts()}
    return sorted(a.title for a in articles if a.id not in alerted)


def demo_config_text(base: str, db: Path) -> str:
    return DEMO_CONFIG.format(base=base, db=db)


async def run_demo(keep: Path | None = None) -> int:
    from monitor.daemon import Daemon
    from monitor.settings import load_config_text

    workdir = Path(tempfile.mkdtemp(prefix="feedwatch-demo-")) if keep is None else keep
    workdir.mkdir(parents=True, exist_ok=True)
    out = sys.stdout
    try:
        async with DemoServer() as server:
            text = demo_config_text(server.base, workdir / "demo.db")
            cfg = load_config_text(text, base_dir=workdir, source="demo")
            print(
                f"feedwatch demo: serving {len(server.stories)} sample stories in 2 feeds on {server.base}",
                file=out,
            )
            print(
                "watchlists: "
                + "; ".join(
                    f"{w.name} ({', '.join(w.keywords + [p.name for p in w.places])})"
                    for w in cfg.watchlists
                ),
                file=out,
            )
            print("polling, extracting, matching...\n", file=out, flush=True)
            async with Daemon(cfg) as daemon:
                await daemon.run_once()
                stats = daemon.stats
                quiet = await _stored_without_alert(daemon)
            print(
                f"\ndone: {stats.polls} feeds polled, {stats.new_articles} articles stored, "
                f"{stats.alerts} alerts sent, {stats.errors} errors.",
                file=out,
            )
            print("\nStored without an alert:", file=out)
            for title in quiet:
                print(f"  - {title}", file=out)
            print(
                "\nThe cycle-lane page's menu, sidebar and comments mention wildfires, but matching reads\n"
                "only the article text; the school drill is excluded by drill*; the 10-day-old story is\n"
                "older than max_age. The syndicated copy of the wildfire story has the same canonical URL\n"
                "as the original, so it is the same article: stored once, alerted once.",
                file=out,
            )
            if keep is not None:
                kept = workdir / "feedwatch.yaml"
                kept.write_text(
                    "# Written by `feedwatch demo --keep`. The demo served its feeds on a port\n"
                    "# that is closed now: `feedwatch web`, `search`, `status` and `alerts` read\n"
                    "# what the demo stored; `feedwatch run` would find the feeds gone.\n"
                    + text.replace(str(workdir / "demo.db"), "demo.db"),
                    encoding="utf-8",
                )
                print(f"database kept in {workdir / 'demo.db'}, its config in {kept}", file=out)
                print(f"see it in a browser: feedwatch web --config {kept}", file=out)
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0
