"""HTTP fetch layer: one aiohttp session, limits, conditional GET, manual redirects, SSRF guard.

Returns a complete, decompressed body within ``max_bytes`` (a :class:`FetchResponse`) or raises a
:class:`FetchError` whose ``kind`` is a stable short code and whose message is plain words.

Why things are done by hand here:

- Redirects are followed manually so every hop is counted, loop-checked and re-checked by the SSRF
  guard, and so a permanent move (every hop 301/308) can be reported to the caller.
- Decompression is done here (``auto_decompress=False``) so ``max_bytes`` bounds the decompressed
  size while streaming: a 100 KB gzip bomb is stopped after ``max_bytes`` of output, not after
  it has filled memory.
- Concurrency slots are taken before the timeout clock starts: ``timeout`` measures connect to
  last byte, never time spent queued behind other requests. The per-host slot is taken before the
  global one, so requests queued for one slow host never hold global slots others need.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import ssl
import time
import zlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol

import aiohttp
import brotli
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict
from yarl import URL

from monitor.models import FetchError, FetchResponse
from monitor.netguard import AddressPolicy, BlockedAddressError, GuardedResolver
from monitor.retry_after import parse_retry_after
from monitor.settings import FetchSettings

log = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, text/html;q=0.5, */*;q=0.1"
)
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"  # article pages
ACCEPT_ENCODING = "gzip, deflate, br"
_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}
_CHUNK = 64 * 1024
HOST_WAIT_CAP = 86400.0  # a host's Retry-After is honoured for a day at most


def format_size(n: int) -> str:
    """Bytes as a person reads them: ``5.0 MB``, ``512 KB``, ``300 bytes``."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


def _seconds(value: float) -> str:
    return f"{value:g}s"


# --------------------------------------------------------------------------- decompression


class _Decoder(Protocol):
    """Undoes one Content-Encoding; never returns much more than ``limit`` bytes per call."""

    @property
    def pending(self) -> bool: ...  # output is still held back: call feed(b"", ...) again
    def feed(self, data: bytes, limit: int) -> bytes: ...
    def flush(self) -> bytes: ...


class _Identity:
    pending = False

    def feed(self, data: bytes, limit: int) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Zlib:
    """gzip or deflate (zlib-wrapped or raw, as servers send both), output bounded per call."""

    def __init__(self, gzip: bool) -> None:
        self._d: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        self._tail = b""

    @property
    def pending(self) -> bool:
        return self._d is not None and bool(self._tail)

    def feed(self, data: bytes, limit: int) -> bytes:
        buf = self._tail + data
        if self._d is None:  # deflate: sniff a zlib header, else raw deflate
            if len(buf) < 2:
                self._tail = buf
                return b""
            zlib_header = (buf[0] & 0x0F) == 8 and ((buf[0] << 8) | buf[1]) % 31 == 0
            self._d = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        # limit + 1 so exceeding the budget is detectable without inflating everything
        out = self._d.decompress(buf, max(limit, 0) + 1)
        self._tail = self._d.unconsumed_tail
        return out

    def flush(self) -> bytes:
        return self._d.flush() if self._d is not None else b""


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    @property
    def pending(self) -> bool:
        return not self._d.can_accept_more_data()

    def feed(self, data: bytes, limit: int) -> bytes:
        return self._d.process(data, output_buffer_limit=max(limit, 0) + 1)

    def flush(self) -> bytes:
        return b""


def _decoder_for(content_encoding: str) -> _Decoder:
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return _Identity()
    if len(codings) > 1:
        raise FetchError("decode", f"unsupported content encoding {content_encoding!r}")
    coding = codings[0]
    if coding in ("gzip", "x-gzip"):
        return _Zlib(gzip=True)
    if coding == "deflate":
        return _Zlib(gzip=False)
    if coding == "br":
        return _Brotli()
    raise FetchError("decode", f"unsupported content encoding {coding!r}")


# --------------------------------------------------------------------------- limits


class _HostGate:
    """Per-host slots plus a minimum gap between request starts to that host."""

    __slots__ = ("last_start", "lock", "sem", "users")

    def __init__(self, per_host: int) -> None:
        self.sem = asyncio.Semaphore(per_host)
        self.lock = asyncio.Lock()
        self.last_start = 0.0
        self.users = 0


class _Limits:
    def __init__(self, settings: FetchSettings) -> None:
        self._global = asyncio.Semaphore(settings.concurrency)
        self._per_host = settings.per_host
        self._delay = settings.per_host_delay
        self._hosts: dict[str, _HostGate] = {}

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = _HostGate(self._per_host)
        gate.users += 1
        try:
            async with gate.sem:
                if self._delay > 0:
                    async with gate.lock:
                        wait = gate.last_start + self._delay - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                        gate.last_start = time.monotonic()
                async with self._global:
                    yield
        finally:
            gate.users -= 1
            if gate.users == 0 and time.monotonic() - gate.last_start >= self._delay:
                self._hosts.pop(host, None)  # keep the table small over thousands of hosts
            if len(self._hosts) > 4096:
                self._sweep()

    def _sweep(self) -> None:
        now = time.monotonic()
        for name, g in list(self._hosts.items()):
            if g.users == 0 and now - g.last_start >= self._delay:
                del self._hosts[name]


# --------------------------------------------------------------------------- fetcher


class Fetcher:
    """The daemon's single HTTP client: one aiohttp session shared by every feed and page."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        resolver: AbstractResolver | None = None,
        allow_networks: tuple[str, ...] = (),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``resolver``: the DNS resolver to wrap (tests map names); ``allow_networks``: CIDRs
        allowed even when private networks are refused; ``ssl_context``: extra trust roots."""
        self.settings = settings
        self.policy = AddressPolicy(settings.allow_private_networks, allow_networks)
        self._inner_resolver = resolver
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._limits: _Limits | None = None
        self._host_wait: dict[
            str, float
        ] = {}  # "host:port" -> monotonic time it may be asked again

    async def __aenter__(self) -> Fetcher:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,  # our own slots limit concurrency (they exclude queue time from timeout)
                limit_per_host=0,
                resolver=GuardedResolver(self.policy, self._inner_resolver),
                ttl_dns_cache=60,
                ssl=self._ssl_context if self._ssl_context is not None else True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                trust_env=False,  # never route through an environment proxy around the guard
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self.settings.timeout,
                    sock_read=self.settings.idle_timeout,
                ),
                headers={"User-Agent": self.settings.user_agent},
            )
            self._limits = _Limits(self.settings)
        return self._session

    async def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
        max_bytes: int | None = None,
        truncate: bool = False,
    ) -> FetchResponse:
        """GET ``url``; conditional when ``etag``/``last_modified`` are given (304 -> not_modified).

        ``truncate``: a body larger than the limit is cut there and returned with ``truncated``
        set, instead of failing with ``too_large`` (a sitemap is still useful in part)."""
        session = self._ensure_session()
        assert self._limits is not None
        limit = max_bytes if max_bytes is not None else self.settings.max_bytes
        headers = CIMultiDict({"Accept": accept or FEED_ACCEPT, "Accept-Encoding": ACCEPT_ENCODING})
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        current = _parse_url(url)
        seen = {str(current)}
        permanent = True
        hops = 0
        budget = self.settings.timeout
        active = 0.0
        while True:
            host = current.host or ""
            try:
                self.policy.check_literal_host(host)
            except BlockedAddressError as exc:
                raise FetchError("blocked", str(exc), url=str(current)) from None
            self._check_host_wait(current)
            async with self._limits.slot(host):
                started = time.monotonic()
                try:
                    result = await self._hop(
                        session, current, headers, limit, budget - active, truncate
                    )
                except FetchError as exc:
                    if exc.kind == "rate_limited" and exc.retry_after:
                        self._note_host_wait(current, exc.retry_after)
                    raise
                finally:
                    active += time.monotonic() - started
            if isinstance(result, FetchResponse):
                result.elapsed = active
                if hops and permanent:
                    result.permanent_url = result.url
                return result
            status, location = result
            hops += 1
            if hops > self.settings.max_redirects:
                raise FetchError(
                    "redirect",
                    f"more than {self.settings.max_redirects} redirects",
                    url=url,
                    status=status,
                )
            nxt = _redirect_target(current, location, status)
            if str(nxt) in seen:
                raise FetchError("redirect", f"redirect loop at {nxt}", url=url, status=status)
            seen.add(str(nxt))
            permanent = permanent and status in _PERMANENT
            if nxt.host != current.host or nxt.port != current.port:
                headers.pop("Authorization", None)
            current = nxt

    def _check_host_wait(self, url: URL) -> None:
        """A host that answered 429/503 with Retry-After is not asked again before then, by
        any feed or page on it: one rate-limited feed must not let its neighbours hammer on."""
        key = f"{url.host}:{url.port}"
        until = self._host_wait.get(key)
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            del self._host_wait[key]
            return
        raise FetchError(
            "rate_limited",
            f"{url.host} asked us to wait (Retry-After): {left:.0f}s more",
            url=str(url),
            retry_after=left,
        )

    def _note_host_wait(self, url: URL, seconds: float) -> None:
        now = time.monotonic()
        self._host_wait[f"{url.host}:{url.port}"] = now + min(seconds, HOST_WAIT_CAP)
        if len(self._host_wait) > 4096:  # forget expired entries
            self._host_wait = {k: v for k, v in self._host_wait.items() if v > now}

    async def _hop(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        headers: CIMultiDict[str],
        limit: int,
        budget: float,
        truncate: bool = False,
    ) -> FetchResponse | tuple[int, str]:
        """One request: a response, or (status, location) for a redirect."""
        if budget <= 0:
            raise FetchError(
                "timeout",
                f"no complete response within {_seconds(self.settings.timeout)}",
                url=str(url),
            )
        started = time.monotonic()
        try:
            async with asyncio.timeout(budget):
                async with session.get(url, headers=headers, allow_redirects=False) as resp:
                    return await self._handle(resp, url, limit, started, truncate)
        except FetchError:
            raise
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.SocketTimeoutError):
                raise FetchError(
                    "idle_timeout",
                    f"no data for {_seconds(self.settings.idle_timeout)}",
                    url=str(url),
                ) from None
            raise FetchError(
                "timeout",
                f"no complete response within {_seconds(self.settings.timeout)}",
                url=str(url),
            ) from None
        except aiohttp.ClientError as exc:
            raise _classify(exc, url) from None
        except (OSError, ValueError) as exc:
            raise FetchError("connection", f"request failed: {exc}", url=str(url)) from None

    async def _handle(
        self,
        resp: aiohttp.ClientResponse,
        url: URL,
        limit: int,
        started: float,
        truncate: bool = False,
    ) -> FetchResponse | tuple[int, str]:
        status = resp.status
        headers = _headers(resp)
        if status in _REDIRECTS:
            location = resp.headers.get("Location")
            if not location:
                raise FetchError(
                    "redirect",
                    f"HTTP {status} redirect without a Location",
                    url=str(url),
                    status=status,
                )
            return status, location
        if status == 304:
            return FetchResponse(
                url=str(url), status=304, body=b"", headers=headers, not_modified=True
            )
        if status >= 400 or status < 200 or 300 <= status < 400:
            raise _status_error(status, resp.reason, headers, url)
        body, truncated = await self._read_body(resp, url, limit, truncate)
        return FetchResponse(
            url=str(url),
            status=status,
            body=body,
            headers=headers,
            elapsed=time.monotonic() - started,
            truncated=truncated,
        )

    async def _read_body(
        self, resp: aiohttp.ClientResponse, url: URL, limit: int, truncate: bool = False
    ) -> tuple[bytes, bool]:
        """(the decompressed body, whether it was cut): refused as soon as it would exceed
        ``limit`` bytes, or with ``truncate`` cut there (the rest is never read)."""
        too_large = FetchError(
            "too_large", f"response larger than {format_size(limit)}", url=str(url)
        )
        encoding = resp.headers.get("Content-Encoding", "")
        try:
            decoder = _decoder_for(encoding)
        except FetchError as exc:
            exc.url = str(url)
            raise
        if (
            not truncate
            and isinstance(decoder, _Identity)
            and resp.content_length
            and resp.content_length > limit
        ):
            raise too_large
        parts: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = await resp.content.read(_CHUNK)
                out = decoder.feed(chunk, limit - size) if chunk else decoder.flush()
                while True:
                    size += len(out)
                    if size > limit:
                        if not truncate:
                            raise too_large
                        parts.append(out[: len(out) - (size - limit)])
                        return b"".join(parts), True
                    parts.append(out)
                    # one compressed chunk may inflate to more than one bounded call returns
                    if not (decoder.pending and out):
                        break
                    out = decoder.feed(b"", limit - size)
                if not chunk:
                    break
        except (zlib.error, brotli.error) as exc:
            raise FetchError(
                "decode", f"broken {encoding or 'compressed'} data: {exc}", url=str(url)
            ) from None
        return b"".join(parts), False


def _parse_url(url: str) -> URL:
    try:
        parsed = URL(url.strip())
    except (ValueError, TypeError):
        raise FetchError("invalid_url", f"not a valid URL: {url!r}", url=url) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchError("invalid_url", f"not an http(s) URL: {url!r}", url=url)
    return parsed.with_fragment(None)


def _redirect_target(current: URL, location: str, status: int) -> URL:
    try:
        target = current.join(URL(location.strip()))
    except (ValueError, TypeError):
        raise FetchError(
            "redirect", f"HTTP {status} redirect to an invalid URL", url=str(current), status=status
        ) from None
    if target.scheme not in ("http", "https") or not target.host:
        raise FetchError(
            "redirect",
            f"HTTP {status} redirect to a non-http(s) URL",
            url=str(current),
            status=status,
        )
    return target.with_fragment(None)


def _headers(resp: aiohttp.ClientResponse) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in resp.headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _status_error(status: int, reason: str | None, headers: dict[str, str], url: URL) -> FetchError:
    try:
        phrase = reason or http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    text = f"HTTP {status} {phrase}".strip()
    if status in (429, 503):
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is not None:
            text += f" (retry after {retry_after:.0f}s)"
        return FetchError(
            "rate_limited", text, url=str(url), status=status, retry_after=retry_after
        )
    if status == 410:
        return FetchError("gone", text, url=str(url), status=status)
    return FetchError("http", text, url=str(url), status=status)


def _classify(exc: aiohttp.ClientError, url: URL) -> FetchError:
    """Map an aiohttp error to a FetchError kind and a readable message."""
    u = str(url)
    cause: BaseException | None = exc
    for _ in range(6):  # the guard's refusal arrives wrapped in aiohttp's DNS error
        if cause is None:
            break
        if isinstance(cause, BlockedAddressError):
            return FetchError("blocked", str(cause), url=u)
        cause = cause.__cause__ or getattr(cause, "os_error", None)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return FetchError(
            "tls", f"TLS certificate not accepted for {url.host}: {exc.certificate_error}", url=u
        )
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        return FetchError("tls", f"TLS handshake with {url.host} failed", url=u)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FetchError("dns", f"cannot resolve host name {url.host}", url=u)
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_err = exc.os_error
        if isinstance(os_err, ConnectionRefusedError):
            return FetchError("connection", f"connection refused by {url.host}:{url.port}", url=u)
        if isinstance(os_err, ssl.SSLError):
            return FetchError("tls", f"TLS handshake with {url.host} failed", url=u)
        return FetchError(
            "connection",
            f"cannot connect to {url.host}:{url.port}: {os_err.strerror or os_err}",
            url=u,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return FetchError("connection", "server closed the connection without a response", url=u)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return FetchError("connection", "connection closed before the response was complete", url=u)
    if isinstance(exc, aiohttp.InvalidURL):
        return FetchError("invalid_url", f"not a valid URL: {u}", url=u)
    if isinstance(exc, aiohttp.ClientResponseError):
        return FetchError(
            "http", f"invalid HTTP response: {exc.message}", url=u, status=exc.status or None
        )
    if isinstance(exc, aiohttp.ClientOSError):
        return FetchError("connection", f"connection failed: {exc.strerror or exc}", url=u)
    return FetchError("connection", f"request failed: {exc}", url=u)
