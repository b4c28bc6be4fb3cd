"""`feedwatch web`: the dashboard over the database alone, until stopped.

Pages read through a read-only storage (nothing is created, migrated or written); re-queueing
an alert opens a short-lived storage in the ``command`` role for that one POST (SQLite lets a
one-shot writer work beside a running daemon; PostgreSQL serves any number). The matcher is
built on first use, in a thread; the try box gets its own fetcher (the config's SSRF guard)
and a one-worker pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from monitor.lag import LagProbe
from monitor.logs import get_logger
from monitor.match import Matcher
from monitor.server import Probes, Server, build_app
from monitor.settings import Config, ServerSettings
from monitor.web import Backend, Dashboard, mount
from storage import open_storage
from storage.base import Storage, StorageError

log = get_logger(__name__)


class WebBackend:
    """What `feedwatch web` gives the dashboard; ``close`` ends what it started."""

    def __init__(self, cfg: Config, storage: Storage) -> None:
        self.cfg = cfg
        self.storage = storage
        self.lag = LagProbe()
        self._matcher: Matcher | None = None
        self._matcher_lock = asyncio.Lock()
        self._pool: object | None = None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Storage]:
        st = open_storage(self.cfg.storage.url, open_timeout=10)
        await st.open("command")
        try:
            yield st
        finally:
            await st.close()

    async def matcher(self) -> Matcher:
        async with self._matcher_lock:
            if self._matcher is None:
                self._matcher = await asyncio.to_thread(Matcher.build, self.cfg.watchlists)
            return self._matcher

    async def extract(self, url: str) -> tuple[str, str]:
        from monitor.fetch import Fetcher
        from monitor.trywatch import load_source
        from monitor.workers import PRELOAD, CpuPool

        if self._pool is None:
            self._pool = CpuPool(1, preload=PRELOAD)
        assert isinstance(self._pool, CpuPool)
        async with Fetcher(self.cfg.fetch) as fetcher:
            return await load_source(url, fetcher, self._pool, self.cfg.extraction.timeout)

    def backend(self) -> Backend:
        return Backend(
            config=lambda: self.cfg,
            storage=self.storage,
            write=self.write,
            matcher=self.matcher,
            extract=self.extract,
            lag=lambda: self.lag.percentile(99),
            lag_label="this server's event loop (feedwatch web)",
            mode="web",
        )

    async def close(self) -> None:
        await self.lag.stop()
        if self._pool is not None:
            from monitor.workers import CpuPool

            assert isinstance(self._pool, CpuPool)
            self._pool.close()


async def serve(
    cfg: Config, stop: asyncio.Event, on_listening: Callable[[int], None] | None = None
) -> int:
    """Serve the dashboard for ``cfg``'s database until ``stop`` is set; 0 after a clean stop."""
    settings = cfg.server or ServerSettings()
    storage = open_storage(cfg.storage.url, open_timeout=10)
    await storage.open("readonly")
    web = WebBackend(cfg, storage)
    try:
        web.lag.start()

        async def health() -> tuple[bool, dict[str, object]]:
            try:
                await storage.ping()
            except StorageError as exc:
                return False, {"storage": f"not answering: {exc}"}
            return True, {"storage": "ok"}

        probes = mount(
            Probes(health=health, ready=lambda: (True, "serving the dashboard")),
            Dashboard(web.backend(), settings),
        )
        server = Server(settings, build_app(settings, probes))
        await server.start()
        try:
            assert server.port is not None
            if on_listening is not None:
                on_listening(server.port)
            await stop.wait()
        finally:
            await server.stop()
    finally:
        await web.close()
        await storage.close()
    return 0
