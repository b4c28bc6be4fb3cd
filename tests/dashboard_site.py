"""A small real newsroom, polled once by the real daemon, for the dashboard's tests.

Loopback feeds (one of them hostile, one failing), a webhook that refuses the first alert for
good (so one alert has failed and can be retried), and a config with secrets in it that must
never reach a page. ``Site`` builds it in a thread with its own event loop, so synchronous
browser tests can drive it while the daemon's server answers.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.daemon import Daemon
from monitor.settings import Config, load_config
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import Reply, WebhookReceiver

SECRET = (
    "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="
)  # base64 "secret-signing-key-for-tests"
HEADER_SECRET = "hdr-secret-value-9f8e7d6c"
XSS_TITLE = "<script>window.pwned=1</script> Evacuation order <b>bold</b>"
KNOWN = "Wildfire forces evacuation order in the hill villages"

ITEMS = [
    Item("hill", KNOWN, ["Officials issued an evacuation order for three hill villages.",
                         "Firefighters fought the blaze through the night."], hours_ago=1),
    Item("port", "Dock workers strike in Lisbon", ["Shipping stopped at the port of Lisbon."],
         hours_ago=2),
    Item("drill", "School runs a fire drill", ["Pupils practised an evacuation order drill."],
         hours_ago=3),
]  # fmt: skip
HOSTILE = [
    Item("xss", XSS_TITLE, ["An evacuation order <img src=x onerror=alert(1)> was issued."],
         hours_ago=1),
]  # fmt: skip


def config_text(tmp: Path, feeds: dict[str, str], hook: str, server: str) -> str:
    return textwrap.dedent(
        f"""
        storage: {{url: {tmp / "fw.db"}}}
        fetch: {{allow_private_networks: true}}
        server: {server}
        defaults: {{max_age: 7d}}
        feeds:
          - {{url: "{feeds["gazette"]}", name: Harbour Gazette, tags: [local]}}
          - {{url: "{feeds["hostile"]}", name: "Hostile <i>Feed</i>", tags: [odd]}}
          - {{url: "{feeds["down"]}", name: Down Feed}}
        channels:
          hook: {{type: webhook, url: "{hook}", secret: "{SECRET}",
                  headers: {{X-Api-Key: "{HEADER_SECRET}"}}}}
        watchlists:
          - {{name: evacuations, keywords: ["evacuation order", wildfire*], exclude: [drill*],
              channels: [hook]}}
          - {{name: ports, keywords: [strike], places: [Lisbon], channels: [hook]}}
        """
    )


class Site:
    """Servers and a daemon on loopback, in a thread of their own; ``stop()`` ends them."""

    def __init__(self, tmp: Path, server: str = '{listen: "127.0.0.1:0"}') -> None:
        self.tmp = tmp
        self.server_block = server
        self.port = 0
        self.cfg: Config | None = None
        self.daemon: Daemon | None = None
        self.feed_urls: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard-site", daemon=True)

    def start(self, timeout: float = 120) -> Site:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the dashboard site did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn: Callable[[], Any], timeout: float = 30) -> Any:
        """Run a coroutine function on the site's loop (storage checks from a sync test)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with HostileServer() as srv, WebhookReceiver(script=[Reply(410)]) as hook:
            room = Newsroom(srv)
            self.feed_urls = {
                "gazette": room.add(Feed("/gazette.xml", "Harbour Gazette", ITEMS)),
                "hostile": room.add(Feed("/hostile.xml", "Hostile", HOSTILE)),
                "down": srv.url("/status/500"),
            }
            path = self.tmp / "feedwatch.yaml"
            path.write_text(config_text(self.tmp, self.feed_urls, hook.url, self.server_block))
            self.cfg = load_config(path, env={})
            async with Daemon(self.cfg) as daemon:
                self.daemon = daemon
                await daemon.run_once()
                self.port = daemon.server.port
                self._ready.set()
                await self._stop.wait()


def build_database(tmp: Path) -> Path:
    """The site's database, built once and left behind (servers stopped): the config path."""
    site = Site(tmp).start()
    site.stop()
    return tmp / "feedwatch.yaml"
