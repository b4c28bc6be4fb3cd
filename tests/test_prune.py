"""Retention: old article text is dropped, identities stay, so an old story never re-alerts.

(``prune_text`` itself is in the storage contract suite.)
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.daemon import Daemon
from monitor.settings import load_config
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import WebhookReceiver


async def test_run_once_prunes_and_old_story_does_not_realert(tmp_path: Path) -> None:
    async with HostileServer() as server, WebhookReceiver() as hook:
        room = Newsroom(server)
        feed = room.add(Feed("/f.xml", "F", [Item("a", "Wildfire story", ["A wildfire burned."])]))
        path = tmp_path / "c.yaml"
        path.write_text(
            f"storage: {{url: db.sqlite, keep_text: 1s}}\n"
            "fetch: {allow_private_networks: true}\ndefaults: {extract: false}\n"
            f"delivery: {{drain_seconds: 2}}\nfeeds: [{{url: '{feed}'}}]\n"
            f"channels: {{h: {{type: webhook, url: '{hook.url}'}}}}\n"
            "watchlists: [{name: w, keywords: [wildfire], channels: [h]}]\n"
        )
        cfg = load_config(path, env={})
        async with Daemon(cfg) as d:
            await d.run_once()
        assert len(hook.requests) == 1
        # Later: the text is pruned (keep_text: 1s); the feed serves the story again with a new
        # body, no ETag match: it is still the same article and does not alert again.
        await asyncio.sleep(1.2)
        room.add(
            Feed(
                "/f.xml",
                "F",
                [Item("a", "Wildfire story (updated)", ["A wildfire burned."])],
                etag='"v2"',
            )
        )
        async with Daemon(cfg) as d2:
            await d2.run_once()
            pruned: Any = await d2.storage.articles_since(datetime.now(UTC) - timedelta(days=1))
        assert len(hook.requests) == 1
        assert d2.stats.new_articles == 0
        assert pruned[0].summary == "" and pruned[0].body == ""
