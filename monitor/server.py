"""The daemon's HTTP server: ``/metrics`` (Prometheus), ``/healthz``, ``/readyz``, and the
dashboard's routes (``monitor/web``) when it is mounted.

Opt-in with a ``server:`` block. It listens on 127.0.0.1 unless told otherwise; listening on
any other address needs ``server.token``, sent as ``Authorization: Bearer <token>``. The two
probes stay open without it (they say only "ok" or why not), so a container healthcheck or an
orchestrator can use them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from monitor.logs import get_logger
from monitor.settings import ServerSettings, split_listen

log = get_logger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
PROBE_TIMEOUT = 3.0  # seconds storage gets to answer a health probe


@dataclass
class Probes:
    """What the server asks the daemon (or `feedwatch web`) it serves."""

    health: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
    ready: Callable[[], tuple[bool, str]]
    metrics: Callable[[], Awaitable[bytes]] | None = None
    extra_routes: list[web.RouteDef] = field(default_factory=list)
    # The dashboard's second way in, for browsers: paths open without the token (its login
    # page and stylesheet), a check of its signed session cookie, and where to send a browser
    # that has neither (instead of a bare 401).
    open_paths: frozenset[str] = frozenset()
    authorize: Callable[[web.Request], bool] | None = None
    login_path: str | None = None


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json"
    )


def build_app(settings: ServerSettings, probes: Probes) -> web.Application:
    token = settings.token.get_secret_value().encode() if settings.token else None

    @web.middleware
    async def auth(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if (
            token is not None
            and request.path not in OPEN_PATHS
            and request.path not in probes.open_paths
        ):
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            bearer = scheme.lower() == "bearer" and hmac.compare_digest(
                value.strip().encode(), token
            )
            if not bearer and not (probes.authorize is not None and probes.authorize(request)):
                if probes.login_path and request.method == "GET" and request.path != "/metrics":
                    raise web.HTTPSeeOther(f"{probes.login_path}?next={quote(request.path_qs)}")
                return web.Response(
                    status=401,
                    text="a bearer token is required (Authorization: Bearer <server.token>)\n",
                    headers={"WWW-Authenticate": 'Bearer realm="feedwatch"'},
                )
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def healthz(request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                ok, detail = await probes.health()
        except TimeoutError:
            ok, detail = False, {"storage": f"no answer within {PROBE_TIMEOUT:g}s"}
        return _json(200 if ok else 503, {"status": "ok" if ok else "failing", **detail})

    async def readyz(request: web.Request) -> web.Response:
        ok, why = probes.ready()
        return _json(200 if ok else 503, {"status": "ready" if ok else "not ready", "reason": why})

    async def metrics(request: web.Request) -> web.Response:
        assert probes.metrics is not None
        body = await probes.metrics()
        return web.Response(
            body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    app = web.Application(middlewares=[auth], client_max_size=1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if probes.metrics is not None:
        app.router.add_get("/metrics", metrics)
    app.add_routes(probes.extra_routes)
    return app


class Server:
    """Runs an app on ``settings.listen`` until ``stop``."""

    def __init__(self, settings: ServerSettings, app: web.Application) -> None:
        self.settings = settings
        self.app = app
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        host, port = split_listen(self.settings.listen)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise OSError(
                f"cannot listen on {self.settings.listen}: {exc.strerror or exc}"
            ) from exc
        sockets = getattr(site._server, "sockets", None) or []  # the real port when 0 was asked
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("http server listening", listen=f"{host}:{self.port}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
