"""A loopback aiohttp server with ready-made hostile and broken endpoints, for tests.

Usage::

    async with HostileServer() as srv:
        srv.feed("/feed.xml", b"<rss ...>", etag='"v1"')
        url = srv.url("/feed.xml")
        ...
        assert srv.hits["/feed.xml"] == 1

Built-in routes (all bounded in time so no test can hang on them):

- ``/status/{code}?retry_after=...&body=...``  a status with optional Retry-After
- ``/redirect/{code}?to=URL``                  one redirect hop
- ``/chain/{n}?code=301``                      n redirects, then 200 at ``/chain/0``
- ``/loop/a``, ``/loop/b``                     redirect to each other forever
- ``/hang``                                    accepts, never answers (until the server
                                               closes, 60 s at most)
- ``/held``                                    answers once the test lets it go
                                               (``traffic.let_go()``) or the server closes
- ``/drip?every=0.5&count=40``                 one byte every ``every`` seconds
- ``/endless``                                 endless chunked body, fast (bounded at 1 GB)
- ``/bomb/gzip``, ``/bomb/deflate``, ``/bomb/br``  small bodies that inflate to ``BOMB_SIZE``
- ``/badgzip``                                 Content-Encoding: gzip with a broken stream
- ``/reset``                                   closes the connection without answering
- ``/slow?delay=0.3``                          answers after a real delay (for real timeouts)
- ``/headers``                                 echoes the request headers as JSON

Requests in flight are counted per server and in ``traffic``, which several servers may share
(``HostileServer(traffic=t)``): a test waits for ``traffic.wait_until(lambda: t.in_flight == 2)``
and reads ``t.max_in_flight`` across hosts, with no sleeping.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import socket
import struct
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType

import brotli
from aiohttp import web

from monitor.clock import wait_event

BOMB_SIZE = 16 * 1024 * 1024  # bytes after decompression: over 3x the default 5 MB limit

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.lru_cache(maxsize=4)
def bomb(coding: str, size: int = BOMB_SIZE) -> bytes:
    """``size`` zero bytes compressed with ``coding`` (gzip, deflate, br): a few KB on the wire."""
    data = b"\0" * size
    if coding == "gzip":
        return gzip.compress(data, compresslevel=9, mtime=0)
    if coding == "deflate":
        return zlib.compress(data, 9)
    if coding == "br":
        return brotli.compress(data, quality=5)
    raise ValueError(coding)


def attribute_trap(n: int = 60_000) -> bytes:
    """One element with tens of thousands of attributes: lxml's time grows quadratically."""
    attrs = " ".join(f'a{i}="v"' for i in range(n))
    return (
        f"<html><body><article><h1>Evacuation order</h1><p {attrs}>An evacuation order "
        "was issued for the hills.</p></article></body></html>"
    ).encode()


class Traffic:
    """Requests in flight on one or more servers, and the gate ``/held`` requests wait at."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.changed = asyncio.Condition()  # notified on every arrival and answer
        self._tickets = asyncio.Semaphore(0)

    async def _note(self, delta: int) -> None:
        async with self.changed:
            self.in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.changed.notify_all()

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait (``timeout`` real seconds at most) until ``condition()`` holds."""
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(condition)

    def let_go(self, n: int = 1) -> None:
        """Let ``n`` held requests (waiting now or arriving later) answer."""
        for _ in range(n):
            self._tickets.release()

    async def _pass_gate(self, closing: asyncio.Event) -> None:
        ticket = asyncio.ensure_future(self._tickets.acquire())
        closed = asyncio.ensure_future(closing.wait())
        try:
            await asyncio.wait([ticket, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not ticket.done():
                ticket.cancel()


class HostileServer:
    """A real HTTP server on a loopback address; records hits and requests in flight."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, traffic: Traffic | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.hits: Counter[str] = Counter()
        self.requests: list[web.Request] = []  # every request received, in order
        self.starts: list[tuple[str, float]] = []  # (path, monotonic time) per request
        self.in_flight = 0
        self.max_in_flight = 0
        self.traffic = traffic or Traffic()
        self._closing = asyncio.Event()
        self.app = web.Application()
        self._runner: web.AppRunner | None = None
        self._routes: dict[str, Handler] = {}
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    # -- lifecycle
    async def start(self) -> HostileServer:
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sock: socket.socket = server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        return self

    async def close(self) -> None:
        self._closing.set()  # held and hanging requests end now
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> HostileServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    # -- custom routes
    def route(self, path: str, handler: Handler) -> None:
        """Serve ``path`` (exact, without query) with ``handler``; overrides built-ins."""
        self._routes[path] = handler

    def feed(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml",
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        """Serve a fixed body with validators; answers 304 to a matching conditional GET."""

        async def handler(request: web.Request) -> web.StreamResponse:
            headers = {"Content-Type": content_type}
            if etag:
                headers["ETag"] = etag
            if last_modified:
                headers["Last-Modified"] = last_modified
            inm = request.headers.get("If-None-Match")
            ims = request.headers.get("If-Modified-Since")
            if (etag and inm == etag) or (not inm and last_modified and ims == last_modified):
                return web.Response(status=304, headers=headers)
            return web.Response(body=body, headers=headers)

        self.route(path, handler)

    # -- dispatch
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        self.requests.append(request)
        self.starts.append((path, time.monotonic()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await self.traffic._note(+1)
        try:
            handler = self._routes.get(path) or self._builtin(path)
            if handler is None:
                return web.Response(status=404, text="not found")
            return await handler(request)
        finally:
            self.in_flight -= 1
            await self.traffic._note(-1)

    def _builtin(self, path: str) -> Handler | None:
        parts = path.strip("/").split("/")
        table: dict[str, Handler] = {
            "status": self._status,
            "redirect": self._redirect,
            "chain": self._chain,
            "loop": self._loop,
            "hang": self._hang,
            "held": self._held,
            "drip": self._drip,
            "endless": self._endless,
            "bomb": self._bomb,
            "badgzip": self._badgzip,
            "reset": self._reset,
            "slow": self._slow,
            "headers": self._headers,
        }
        return table.get(parts[0])

    # -- built-in handlers
    async def _status(self, request: web.Request) -> web.StreamResponse:
        code = int(request.path.rstrip("/").rsplit("/", 1)[1])
        headers = {}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        return web.Response(status=code, text=request.query.get("body", ""), headers=headers)

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        code = int(request.path.rstrip("/").rsplit("/", 1)[1])
        return web.Response(status=code, headers={"Location": request.query["to"]})

    async def _chain(self, request: web.Request) -> web.StreamResponse:
        n = int(request.path.rstrip("/").rsplit("/", 1)[1])
        code = int(request.query.get("code", "301"))
        if n <= 0:
            return web.Response(text="end of chain", content_type="text/plain")
        return web.Response(status=code, headers={"Location": f"/chain/{n - 1}?code={code}"})

    async def _loop(self, request: web.Request) -> web.StreamResponse:
        other = "/loop/b" if request.path.endswith("/a") else "/loop/a"
        return web.Response(status=302, headers={"Location": other})

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        await wait_event(self._closing, 60)
        return web.Response(text="too late")

    async def _held(self, request: web.Request) -> web.StreamResponse:
        await self.traffic._pass_gate(self._closing)
        return web.Response(text="held answer", content_type="text/plain")

    async def _drip(self, request: web.Request) -> web.StreamResponse:
        every = float(request.query.get("every", "0.5"))
        count = min(int(request.query.get("count", "40")), 10_000)
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        await resp.prepare(request)
        for _ in range(count):
            await resp.write(b"<")
            await asyncio.sleep(every)
        await resp.write_eof()
        return resp

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        block = b"<item>" + b"x" * 65_530
        for _ in range(16_384):  # at most 1 GB, far beyond any test limit
            await resp.write(block)
        await resp.write_eof()
        return resp

    async def _bomb(self, request: web.Request) -> web.StreamResponse:
        coding = request.path.rstrip("/").rsplit("/", 1)[1]
        return web.Response(
            body=bomb(coding),
            headers={"Content-Encoding": coding, "Content-Type": "application/rss+xml"},
        )

    async def _badgzip(self, request: web.Request) -> web.StreamResponse:
        good = gzip.compress(b"<rss>" + b"a" * 5000 + b"</rss>")
        broken = good[:10] + bytes(b ^ 0x5A for b in good[10:40]) + good[40:]
        return web.Response(
            body=broken,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"},
        )

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:  # RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.close()
        return web.Response(text="unreachable")

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(min(float(request.query.get("delay", "0.3")), 10))
        return web.Response(text="slow answer", content_type="text/plain")

    async def _headers(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=json.dumps(dict(request.headers)), content_type="application/json")
