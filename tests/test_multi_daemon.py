"""Several daemons, one PostgreSQL database: the real daemons (dispatcher, pipeline, outbox)
share the feeds and the deliveries; every alert reaches the receiver once.

The daemons are given their storage directly (``Daemon(cfg, storage=...)``), so this runs the
daemon code on PostgreSQL whatever the config's ``storage.url`` says.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from monitor.daemon import Daemon
from monitor.settings import load_config
from storage.postgres import PostgresStorage
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import WebhookReceiver

FEEDS = 8
STORIES = 2


async def test_two_daemons_share_feeds_and_deliver_each_alert_once(
    tmp_path: Path, pg_url: str
) -> None:
    async with HostileServer() as server, WebhookReceiver() as hook:
        room = Newsroom(server)
        urls = [
            room.add(
                Feed(
                    f"/f{i}.xml",
                    f"Feed {i}",
                    [Item(f"s{i}-{k}", f"Wildfire near town {i}-{k}", [f"A wildfire {i} {k}."])
                     for k in range(STORIES)],
                )
            )
            for i in range(FEEDS)
        ]  # fmt: skip
        path = tmp_path / "c.yaml"
        feeds = "".join(f"  - {{url: '{u}'}}\n" for u in urls)
        path.write_text(
            # Two polls at a time each, so neither daemon can take every feed in one claim.
            "fetch: {allow_private_networks: true, concurrency: 2}\ndefaults: {extract: false}\n"
            f"feeds:\n{feeds}"
            f"channels: {{h: {{type: webhook, url: '{hook.url}'}}}}\n"
            "watchlists: [{name: w, keywords: [wildfire], channels: [h]}]\n"
        )
        cfg = load_config(path, env={})
        first = Daemon(cfg, storage=PostgresStorage(pg_url))
        second = Daemon(cfg, storage=PostgresStorage(pg_url))
        stop = asyncio.Event()
        async with first, second:
            runs = [asyncio.create_task(d.run(stop)) for d in (first, second)]
            try:
                await hook.wait_for(FEEDS * STORIES, timeout=60)
            finally:
                stop.set()
                assert await asyncio.gather(*runs) == [0, 0]
            states = await first.storage.list_feeds()
        ids = Counter(r.headers["webhook-id"] for r in hook.requests)
        assert len(ids) == FEEDS * STORIES and set(ids.values()) == {1}, ids
        # Each feed polled once (the interval is 15 minutes), by one or the other.
        assert first.stats.polls + second.stats.polls == FEEDS
        assert first.stats.polls and second.stats.polls  # the work was shared
        pollers = {s.last_polled_by for s in states}
        assert pollers == {first.storage.identity, second.storage.identity}
        assert all(s.lease_owner is None and s.last_poll is not None for s in states)
