"""The fetch layer against real loopback servers: limits, redirects, errors, SSRF guard."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor.fetch import FEED_ACCEPT, Fetcher, format_size
from monitor.models import FetchError
from monitor.retry_after import parse_retry_after
from monitor.settings import FetchSettings

try:
    from tests.hostile_server import BOMB_SIZE, HostileServer, Traffic
except ImportError:  # tests/ run as a rootless directory
    from hostile_server import BOMB_SIZE, HostileServer, Traffic  # type: ignore[no-redef]

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
HANG_LIMIT = 30.0  # real seconds before a fetch that should have ended is called a hang


def settings(**kw: object) -> FetchSettings:
    base: dict[str, object] = {"allow_private_networks": True, "timeout": 5, "idle_timeout": 3}
    base.update(kw)
    return FetchSettings(**base)


@pytest.fixture
async def srv() -> AsyncIterator[HostileServer]:
    async with HostileServer() as server:
        yield server


async def fetch_error(fetcher: Fetcher, url: str, **kw: object) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetcher.get(url, **kw)  # type: ignore[arg-type]
    return info.value


class MapResolver(AbstractResolver):
    """Test DNS: names from a table; anything else does not exist. Records every lookup."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        addr = self.table[host]
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        return [
            {"hostname": host, "host": addr, "port": port, "family": fam, "proto": 0, "flags": 0}
        ]

    async def close(self) -> None:
        return None


# --------------------------------------------------------------------------- basics


async def test_plain_get_sends_user_agent_and_feed_accept(srv: HostileServer) -> None:
    async with Fetcher(settings(user_agent="feedwatch-test/1.0 (+https://x.test)")) as f:
        resp = await f.get(srv.url("/headers"))
    sent = json.loads(resp.body)
    assert resp.status == 200
    assert sent["User-Agent"] == "feedwatch-test/1.0 (+https://x.test)"
    assert sent["Accept"] == FEED_ACCEPT
    assert "gzip" in sent["Accept-Encoding"] and "br" in sent["Accept-Encoding"]
    assert resp.content_type.startswith("application/json")
    assert resp.permanent_url is None and not resp.not_modified


async def test_gzip_and_brotli_bodies_are_decoded(srv: HostileServer) -> None:
    import brotli

    payload = RSS * 200

    async def gz(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(payload), headers={"Content-Encoding": "gzip"})

    async def br(request: web.Request) -> web.Response:
        return web.Response(body=brotli.compress(payload), headers={"Content-Encoding": "br"})

    srv.route("/gz", gz)
    srv.route("/br", br)
    async with Fetcher(settings()) as f:
        assert (await f.get(srv.url("/gz"))).body == payload
        assert (await f.get(srv.url("/br"))).body == payload


async def test_conditional_get_with_etag(srv: HostileServer) -> None:
    srv.feed("/feed", RSS, etag='"v1"')
    async with Fetcher(settings()) as f:
        first = await f.get(srv.url("/feed"))
        assert first.body == RSS and first.headers["etag"] == '"v1"'
        second = await f.get(srv.url("/feed"), etag=first.headers["etag"])
    assert second.not_modified and second.status == 304 and second.body == b""
    assert srv.requests[1].headers["If-None-Match"] == '"v1"'


async def test_conditional_get_with_last_modified(srv: HostileServer) -> None:
    stamp = "Wed, 03 Jan 2024 10:00:00 GMT"
    srv.feed("/feed", RSS, last_modified=stamp)
    async with Fetcher(settings()) as f:
        first = await f.get(srv.url("/feed"))
        second = await f.get(srv.url("/feed"), last_modified=first.headers["last-modified"])
        third = await f.get(srv.url("/feed"), last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    assert not first.not_modified
    assert second.not_modified and second.body == b""
    assert srv.requests[1].headers["If-Modified-Since"] == stamp
    assert not third.not_modified and third.body == RSS


# --------------------------------------------------------------------------- redirects


async def test_301_chain_sets_permanent_url(srv: HostileServer) -> None:
    async with Fetcher(settings()) as f:
        resp = await f.get(srv.url("/chain/3?code=301"))
    assert resp.url == srv.url("/chain/0?code=301")
    assert resp.permanent_url == resp.url
    assert srv.hits["/chain/3"] == 1 and srv.hits["/chain/0"] == 1


async def test_308_is_permanent_302_and_307_are_not(srv: HostileServer) -> None:
    target = srv.url("/slow?delay=0")
    async with Fetcher(settings()) as f:
        r308 = await f.get(srv.url(f"/redirect/308?to={target}"))
        r302 = await f.get(srv.url(f"/redirect/302?to={target}"))
        r307 = await f.get(srv.url(f"/redirect/307?to={target}"))
        # permanent then temporary: the request URL did not move permanently
        mixed = srv.url("/redirect/302?to=" + target.replace("?", "%3F").replace("=", "%3D"))
        r_mixed = await f.get(srv.url("/redirect/301?to=") + mixed.replace("?", "%3F"))
    assert r308.permanent_url == target
    assert r302.permanent_url is None and r302.url == target
    assert r307.permanent_url is None
    assert r_mixed.url == target and r_mixed.permanent_url is None


async def test_redirect_loop_is_an_error(srv: HostileServer) -> None:
    async with Fetcher(settings()) as f:
        err = await fetch_error(f, srv.url("/loop/a"))
    assert err.kind == "redirect" and "loop" in err.message
    assert srv.hits["/loop/a"] == 1 and srv.hits["/loop/b"] == 1


async def test_ten_redirects_ok_eleven_too_many(srv: HostileServer) -> None:
    async with Fetcher(settings()) as f:
        ok = await f.get(srv.url("/chain/10?code=302"))
        err = await fetch_error(f, srv.url("/chain/11?code=302"))
    assert ok.status == 200 and ok.body == b"end of chain"
    assert err.kind == "redirect" and err.message == "more than 10 redirects"


async def test_redirect_to_non_http_scheme(srv: HostileServer) -> None:
    async with Fetcher(settings()) as f:
        err = await fetch_error(f, srv.url("/redirect/302?to=file:///etc/passwd"))
    assert err.kind == "redirect" and "non-http" in err.message


# --------------------------------------------------------------------------- SSRF guard


async def test_guard_refuses_literal_loopback_before_connecting(srv: HostileServer) -> None:
    async with Fetcher(settings(allow_private_networks=False)) as f:
        err = await fetch_error(f, srv.url("/feed"))
        err6 = await fetch_error(f, f"http://[::ffff:127.0.0.1]:{srv.port}/feed")
    assert err.kind == "blocked"
    assert err.message == (
        "refused: 127.0.0.1 is a loopback address (set fetch.allow_private_networks: true to allow)"
    )
    assert err6.kind == "blocked" and "loopback" in err6.message
    assert srv.hits.total() == 0


async def test_guard_checks_resolved_address_not_the_name(srv: HostileServer) -> None:
    dns = MapResolver({"feeds.example.test": "127.0.0.1", "meta.example.test": "169.254.169.254"})
    async with Fetcher(settings(allow_private_networks=False), resolver=dns) as f:
        err = await fetch_error(f, f"http://feeds.example.test:{srv.port}/feed")
        meta = await fetch_error(f, "http://meta.example.test/latest/meta-data/")
        missing = await fetch_error(f, "http://nowhere.example.test/")
    assert err.kind == "blocked" and "feeds.example.test resolves to 127.0.0.1" in err.message
    assert meta.kind == "blocked" and "169.254.169.254, a link-local address" in meta.message
    assert missing.kind == "dns" and "nowhere.example.test" in missing.message
    assert srv.hits.total() == 0
    assert "feeds.example.test" in dns.lookups


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/admin",
        "http://[fd00::5]/",
        "http://internal.example.test/",  # resolves to 10.0.0.5
        "http://127.0.0.2:{port2}/",  # a live loopback server that must see no request
    ],
)
async def test_redirect_from_allowed_host_to_private_is_refused(target: str) -> None:
    # 127.0.0.1 stands in for a public host (allow_networks); every other non-public address
    # stays refused, and nothing is sent to a non-loopback address.
    dns = MapResolver({"public.example.test": "127.0.0.1", "internal.example.test": "10.0.0.5"})
    async with HostileServer() as public, HostileServer(host="127.0.0.2") as private:
        target = target.format(port2=private.port)
        s = settings(allow_private_networks=False)
        async with Fetcher(s, resolver=dns, allow_networks=("127.0.0.1/32",)) as f:
            ok = await f.get(f"http://public.example.test:{public.port}/slow?delay=0")
            err = await fetch_error(
                f, f"http://public.example.test:{public.port}/redirect/302?to={target}"
            )
        assert ok.status == 200
        assert err.kind == "blocked", err.message
        assert "set fetch.allow_private_networks: true" in err.message
        assert private.hits.total() == 0


async def test_private_allowed_when_configured(srv: HostileServer) -> None:
    async with Fetcher(settings(allow_private_networks=True)) as f:
        assert (await f.get(srv.url("/slow?delay=0"))).status == 200


# --------------------------------------------------------------------------- statuses


async def test_429_with_retry_after_seconds(srv: HostileServer) -> None:
    async with Fetcher(settings()) as f:
        err = await fetch_error(f, srv.url("/status/429?retry_after=120"))
    assert (err.kind, err.status, err.retry_after) == ("rate_limited", 429, 120.0)
    assert err.message.startswith("HTTP 429 Too Many Requests")


async def test_429_with_retry_after_http_date(srv: HostileServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=300), usegmt=True)
    async with Fetcher(settings()) as f:
        err = await fetch_error(f, srv.url("/status/429?retry_after=" + when.replace(" ", "%20")))
    assert err.kind == "rate_limited" and err.retry_after is not None
    assert 290 <= err.retry_after <= 301


async def test_503_is_rate_limited_with_or_without_retry_after(srv: HostileServer) -> None:
    async with Fetcher(settings()) as f:
        plain = await fetch_error(f, srv.url("/status/503"))
        hinted = await fetch_error(f, srv.url("/status/503?retry_after=30"))
    assert (plain.kind, plain.status, plain.retry_after) == ("rate_limited", 503, None)
    assert plain.message == "HTTP 503 Service Unavailable"
    assert hinted.retry_after == 30.0


async def test_410_gone_and_404(srv: HostileServer) -> None:
    async with Fetcher(settings()) as f:
        gone = await fetch_error(f, srv.url("/status/410"))
        missing = await fetch_error(f, srv.url("/status/404"))
        teapot = await fetch_error(f, srv.url("/status/500"))
    assert (gone.kind, gone.status, gone.message) == ("gone", 410, "HTTP 410 Gone")
    assert (missing.kind, missing.status, missing.message) == ("http", 404, "HTTP 404 Not Found")
    assert (teapot.kind, teapot.status) == ("http", 500)


def test_parse_retry_after_forms() -> None:
    now = datetime(2024, 1, 3, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after("Wed, 03 Jan 2024 10:05:00 GMT", now) == 300.0
    assert parse_retry_after("Wed, 03 Jan 2024 09:00:00 GMT", now) == 0.0  # past
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after("soon", now) is None


# --------------------------------------------------------------------------- hostile bodies


# Real network timeouts are the behaviour under test here: the waits are real, but short, and
# only the outcome is asserted (a bound of HANG_LIMIT catches a timeout that never fires).


async def test_timeout_on_server_that_never_answers(srv: HostileServer) -> None:
    async with Fetcher(settings(timeout=0.3, idle_timeout=10)) as f:
        err = await asyncio.wait_for(fetch_error(f, srv.url("/hang")), HANG_LIMIT)
    assert err.kind == "timeout" and err.message == "no complete response within 0.3s"
    assert srv.hits["/hang"] == 1


async def test_slow_drip_hits_idle_timeout(srv: HostileServer) -> None:
    async with Fetcher(settings(timeout=HANG_LIMIT, idle_timeout=0.3)) as f:
        err = await asyncio.wait_for(fetch_error(f, srv.url("/drip?every=5&count=5")), HANG_LIMIT)
    assert err.kind == "idle_timeout" and err.message == "no data for 0.3s"


async def test_steady_drip_hits_whole_request_timeout(srv: HostileServer) -> None:
    # A byte every 0.02 s: only a gap of 0.9 s (the idle timeout) could end it another way.
    async with Fetcher(settings(timeout=1.0, idle_timeout=0.9)) as f:
        err = await fetch_error(f, srv.url("/drip?every=0.02&count=5000"))
    assert err.kind == "timeout" and err.message == "no complete response within 1s"


async def test_endless_chunked_body_stops_at_max_bytes(srv: HostileServer) -> None:
    async with Fetcher(settings(max_bytes="1MB")) as f:
        err = await fetch_error(f, srv.url("/endless"))
        small = await fetch_error(f, srv.url("/endless"), max_bytes=100_000)
    assert err.kind == "too_large" and err.message == "response larger than 1.0 MB"
    assert small.message == "response larger than 98 KB"


async def test_content_length_over_limit_refused(srv: HostileServer) -> None:
    srv.feed("/big", b"x" * 300_000)
    async with Fetcher(settings(max_bytes=200_000)) as f:
        err = await fetch_error(f, srv.url("/big"))
        ok = await f.get(srv.url("/big"), max_bytes=300_000)
    assert err.kind == "too_large"
    assert len(ok.body) == 300_000


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
async def test_compression_bomb_limited_after_decompression(
    srv: HostileServer, coding: str
) -> None:
    async with Fetcher(settings(max_bytes="5MB")) as f:
        err = await fetch_error(f, srv.url(f"/bomb/{coding}"))
        under = await f.get(srv.url(f"/bomb/{coding}"), max_bytes=BOMB_SIZE)
    assert err.kind == "too_large" and err.message == "response larger than 5.0 MB"
    assert len(under.body) == BOMB_SIZE  # exactly at the limit is fine


async def test_broken_gzip_is_decode_error(srv: HostileServer) -> None:
    async with Fetcher(settings()) as f:
        err = await fetch_error(f, srv.url("/badgzip"))
    assert err.kind == "decode" and "gzip" in err.message


async def test_connection_refused_and_reset(srv: HostileServer) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    async with Fetcher(settings()) as f:
        refused = await fetch_error(f, f"http://127.0.0.1:{port}/")
        reset = await fetch_error(f, srv.url("/reset"))
    assert refused.kind == "connection" and "refused" in refused.message
    assert reset.kind == "connection"


async def test_invalid_urls(srv: HostileServer) -> None:
    async with Fetcher(settings()) as f:
        for bad in ("ftp://example.org/x", "not a url", "http://"):
            err = await fetch_error(f, bad)
            assert err.kind == "invalid_url", bad


async def test_tls_errors_and_trusted_ca(tmp_path: object) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="secure")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with Fetcher(settings()) as f:
            err = await fetch_error(f, f"https://127.0.0.1:{port}/")
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        async with Fetcher(settings(), ssl_context=client_ctx) as f:
            ok = await f.get(f"https://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()
    assert err.kind == "tls" and "certificate" in err.message
    assert ok.body == b"secure"


# --------------------------------------------------------------------------- limits


async def fill_slots(traffic: Traffic, gets: list[asyncio.Task[object]], slots: int) -> None:
    """Answer held requests one at a time, each time once every free slot is taken again (or
    nothing is left to take it): the most requests the limit lets in at once are then open."""
    for answered in range(len(gets)):
        await traffic.wait_until(
            lambda answered=answered: traffic.in_flight >= min(slots, len(gets) - answered)
        )
        traffic.let_go()
    await asyncio.wait_for(asyncio.gather(*gets), HANG_LIMIT)


async def test_per_host_concurrency_is_limited(srv: HostileServer) -> None:
    async with Fetcher(settings(per_host=2, concurrency=10)) as f:
        gets = [asyncio.create_task(f.get(srv.url("/held"))) for _ in range(6)]
        await fill_slots(srv.traffic, gets, 2)
    assert all(g.result().status == 200 for g in gets)
    assert srv.max_in_flight == 2 and srv.hits["/held"] == 6


async def test_global_concurrency_is_limited() -> None:
    traffic = Traffic()  # counted across the three hosts
    servers = [HostileServer(host=f"127.0.0.{i}", traffic=traffic) for i in (1, 2, 3)]
    for s in servers:
        await s.start()
    try:
        async with Fetcher(settings(per_host=5, concurrency=2)) as f:
            gets = [asyncio.create_task(f.get(s.url("/held"))) for s in servers for _ in range(2)]
            await fill_slots(traffic, gets, 2)
        # all three hosts together never had more than 2 requests open
        assert sum(s.hits["/held"] for s in servers) == 6
        assert traffic.max_in_flight == 2
    finally:
        for s in servers:
            await s.close()


async def test_slow_host_does_not_stall_other_hosts() -> None:
    async with HostileServer() as slow, HostileServer(host="127.0.0.2") as fast:
        async with Fetcher(settings(per_host=2, concurrency=4)) as f:
            stuck = [asyncio.create_task(f.get(slow.url("/held"))) for _ in range(10)]
            await slow.traffic.wait_until(lambda: slow.in_flight >= 2)  # its per-host slots
            # Answered while the slow host holds all its requests: nothing waited for them.
            resp = await asyncio.wait_for(f.get(fast.url("/slow?delay=0")), HANG_LIMIT)
            assert slow.in_flight == 2 and not any(t.done() for t in stuck)
            for t in stuck:
                t.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
    assert resp.status == 200


async def test_timeout_does_not_count_time_queued(srv: HostileServer) -> None:
    # per_host=1: sixteen requests of 0.05 s each in a row; the last waits 0.75 s or more for its
    # slot (more than the 0.6 s timeout) but runs for only 0.05 s.
    start = time.monotonic()
    async with Fetcher(settings(per_host=1, timeout=0.6)) as f:
        results = await asyncio.gather(*(f.get(srv.url("/slow?delay=0.05")) for _ in range(16)))
    assert [r.status for r in results] == [200] * 16
    last_start = max(t for _, t in srv.starts)
    assert last_start - start > 0.6  # the premise: the last one was queued beyond the timeout


async def test_per_host_delay_spaces_request_starts(srv: HostileServer) -> None:
    start = time.monotonic()
    async with Fetcher(settings(per_host=4, per_host_delay=0.25)) as f:
        await asyncio.gather(*(f.get(srv.url("/slow?delay=0")) for _ in range(3)))
    # The k-th request cannot start before k delays have passed (a load can only delay it more).
    arrivals = sorted(t - start for _, t in srv.starts)
    assert len(arrivals) == 3
    assert all(at >= k * 0.25 - 1e-3 for k, at in enumerate(arrivals)), arrivals


def test_format_size() -> None:
    assert format_size(5 * 1024 * 1024) == "5.0 MB"
    assert format_size(512 * 1024) == "512 KB"
    assert format_size(300) == "300 bytes"


async def test_retry_after_holds_for_the_whole_host(srv: HostileServer) -> None:
    srv.feed("/other.xml", b"<rss/>")
    async with Fetcher(settings()) as f:
        with pytest.raises(FetchError) as first:
            await f.get(srv.url("/status/429?retry_after=120"))
        assert first.value.kind == "rate_limited" and first.value.retry_after == 120
        # Another feed on the same host is not requested until then.
        with pytest.raises(FetchError) as second:
            await f.get(srv.url("/other.xml"))
        assert second.value.kind == "rate_limited"
        assert "asked us to wait" in str(second.value)
        assert second.value.retry_after is not None and 100 < second.value.retry_after <= 120
        assert srv.hits["/other.xml"] == 0
    async with HostileServer(host="127.0.0.2") as other, Fetcher(settings()) as f:
        # A 503 without Retry-After does not block the host.
        with pytest.raises(FetchError):
            await f.get(other.url("/status/503"))
        other.feed("/ok.xml", b"<rss/>")
        assert (await f.get(other.url("/ok.xml"))).status == 200
