"""Retention: old article text is dropped, identities stay, so an old story never re-alerts.

(``prune_text`` itself is in the storage contract suite.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.clock import FakeClock
from monitor.daemon import Daemon
from monitor.settings import load_config
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import WebhookReceiver


async def test_run_once_prunes_and_old_story_does_not_realert(tmp_path: Path) -> None:
    clock = FakeClock(datetime.now(UTC))
    summary = "Crews fought a wildfire on the ridge."
    async with HostileServer() as server, WebhookReceiver() as hook:
        room = Newsroom(server)
        story = Item("a", "Wildfire story", ["A wildfire burned."], summary=summary)
        feed = room.add(Feed("/f.xml", "F", [story]))
        path = tmp_path / "c.yaml"
        path.write_text(
            f"storage: {{url: db.sqlite, keep_text: 1h}}\n"
            "fetch: {allow_private_networks: true}\ndefaults: {extract: false}\n"
            f"delivery: {{drain_seconds: 2}}\nfeeds: [{{url: '{feed}'}}]\n"
            f"channels: {{h: {{type: webhook, url: '{hook.url}'}}}}\n"
            "watchlists: [{name: w, keywords: [wildfire], channels: [h]}]\n"
        )
        cfg = load_config(path, env={})
        async with Daemon(cfg, clock=clock) as d:
            await d.run_once()
            (kept,) = await d.storage.articles_since(clock.now() - timedelta(days=1))
        assert len(hook.requests) == 1
        assert kept.summary == summary  # younger than keep_text: this run's prune kept it
        # Two hours later the text is pruned (keep_text: 1h); the feed serves the story again
        # with a new body, no ETag match: it is still the same article and does not alert again.
        clock.advance(2 * 3600)
        room.add(
            Feed(
                "/f.xml",
                "F",
                [Item("a", "Wildfire story (updated)", ["A wildfire burned."], summary=summary)],
                etag='"v2"',
            )
        )
        async with Daemon(cfg, clock=clock) as d2:
            await d2.run_once()
            pruned: Any = await d2.storage.articles_since(clock.now() - timedelta(days=1))
        assert server.hits["/f.xml"] == 2  # the story was served again
        assert len(hook.requests) == 1
        assert d2.stats.new_articles == 0
        assert len(pruned) == 1 and pruned[0].summary == "" and pruned[0].body == ""
