"""The dashboard: overview, feeds, alerts, articles with full-text search, watchlists.

Served by the daemon's HTTP server (``server:``) and by ``feedwatch web`` over the database
alone. ``mount`` adds it to the server's ``Probes``; ``daemon_backend`` is what a running
daemon gives it. Pages, auth and CSRF: docs/dashboard.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from monitor.web.app import Backend, Dashboard

if TYPE_CHECKING:
    from monitor.daemon import Daemon
    from monitor.match import Matcher
    from monitor.server import Probes
    from storage.base import Storage

__all__ = ["Backend", "Dashboard", "daemon_backend", "mount"]


def mount(probes: Probes, dashboard: Dashboard) -> Probes:
    """The server's probes with the dashboard's pages, open paths and session check added."""
    probes.extra_routes = [*probes.extra_routes, *dashboard.routes()]
    probes.open_paths = probes.open_paths | dashboard.open_paths
    probes.authorize = dashboard.guard.authorized
    probes.login_path = "/login"
    return probes


def daemon_backend(daemon: Daemon) -> Backend:
    """The running daemon as the dashboard sees it: its storage (it writes too), its current
    config and matcher, its fetcher and worker pool for the try box, its lag probe."""
    from monitor.trywatch import load_source

    @asynccontextmanager
    async def write() -> AsyncIterator[Storage]:
        yield daemon.storage

    async def matcher() -> Matcher:
        return daemon.matcher

    async def extract(url: str) -> tuple[str, str]:
        return await load_source(url, daemon.fetcher, daemon.pool, daemon.cfg.extraction.timeout)

    def wake() -> None:
        if daemon.outbox is not None:
            daemon.outbox.wake()

    def extra() -> dict[str, Any]:
        return {"daemon": daemon.daemon_id}

    return Backend(
        config=lambda: daemon.cfg,
        storage=daemon.storage,
        write=write,
        matcher=matcher,
        extract=extract,
        lag=lambda: daemon.lag.percentile(99),
        after_requeue=wake,
        mode="daemon",
        extra=extra(),
    )
