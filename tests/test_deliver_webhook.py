"""Webhook channel against a real loopback receiver; signatures checked independently."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from monitor.clock import FakeClock
from monitor.deliver.base import make_sender
from monitor.deliver.retry import RetryPolicy
from monitor.deliver.webhook import WebhookSender
from monitor.settings import WebhookChannel
from tests.receivers import ReceivedRequest, Reply, WebhookReceiver, sample_alert

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def verify_standard_webhook(
    secret: str, req: ReceivedRequest, tolerance: int = 300, now: float | None = None
) -> None:
    """An independent Standard Webhooks verifier (spec: standardwebhooks.com), raising on failure.

    ``now``: the receiver's time in unix seconds (default: the machine's)."""
    msg_id = req.headers["webhook-id"]
    ts = req.headers["webhook-timestamp"]
    assert ts.isdigit(), "timestamp must be integer unix seconds"
    now = time.time() if now is None else now
    assert abs(now - int(ts)) <= tolerance, "timestamp outside tolerance"
    key = base64.b64decode(secret.split("_", 1)[1])
    to_sign = msg_id.encode() + b"." + ts.encode() + b"." + req.body
    expected = base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest()).decode()
    candidates = req.headers["webhook-signature"].split(" ")
    for candidate in candidates:
        version, _, sig = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return
    raise AssertionError("no valid v1 signature")


def channel(url: str, **extra: object) -> WebhookChannel:
    return WebhookChannel.model_validate({"type": "webhook", "url": url, **extra})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_signed_payload_is_byte_exact_and_verifiable(session: aiohttp.ClientSession) -> None:
    payload = sample_alert(title="Évacuation à Lisboa — “quoted” 火事")
    async with WebhookReceiver() as r:
        ch = channel(r.url, secret=SECRET, headers={"X-Team": "news"})
        sender = make_sender("ops-hook", ch, session, allow_private_networks=True)
        result = await sender.send([payload])
        assert result.ok and result.status == 200 and result.error is None
        (req,) = await r.wait_for(1)
    assert req.method == "POST" and req.path == "/hook"
    expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert req.body == expected
    assert "火事".encode() in req.body  # raw UTF-8, not \\u escapes
    assert req.json() == payload
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"].startswith("feedwatch/")
    assert req.headers["x-team"] == "news"
    assert req.headers["webhook-id"] == payload["id"]
    verify_standard_webhook(SECRET, req)


async def test_tampered_body_fails_independent_verification(
    session: aiohttp.ClientSession,
) -> None:
    async with WebhookReceiver() as r:
        sender = make_sender(
            "h", channel(r.url, secret=SECRET), session, allow_private_networks=True
        )
        await sender.send([sample_alert()])
        (req,) = await r.wait_for(1)
    forged = ReceivedRequest(req.method, req.path, req.headers, req.body + b" ", req.at)
    with pytest.raises(AssertionError, match="no valid v1 signature"):
        verify_standard_webhook(SECRET, forged)


async def test_retries_keep_id_and_refresh_timestamp(session: aiohttp.ClientSession) -> None:
    """503, 503, 200 with the real policy's waits on a fake clock: the same webhook-id, and each
    attempt signed with the time it was made."""
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = FakeClock(start)
    policy = RetryPolicy()
    async with WebhookReceiver(script=[503, 503, 200], clock=clock) as r:
        sender = WebhookSender(
            "h",
            channel(r.url, secret=SECRET),
            session,
            allow_private_networks=True,
            clock=lambda: clock.now().timestamp(),
        )
        results = []
        for attempt in range(1, 6):
            result = await sender.send([sample_alert()])
            results.append(result)
            if result.ok or not result.retryable:
                break
            clock.advance(policy.next_delay(attempt, result.retry_after))  # 1-5 s, then 1-10 s
        reqs = list(r.requests)
    assert [x.ok for x in results] == [False, False, True]
    assert [x.status for x in results] == [503, 503, 200]
    assert all(x.retryable for x in results[:2])
    assert "503" in (results[0].error or "")
    assert len({q.headers["webhook-id"] for q in reqs}) == 1
    stamps = [int(q.headers["webhook-timestamp"]) for q in reqs]
    assert stamps == [int(q.at) for q in reqs]  # fresh: the time of each attempt
    assert stamps[0] == int(start.timestamp())
    assert len(set(stamps)) == 3 and len({q.headers["webhook-signature"] for q in reqs}) == 3
    for q in reqs:
        verify_standard_webhook(SECRET, q, now=q.at)
        assert q.body == reqs[0].body


async def test_no_secret_means_no_signature(session: aiohttp.ClientSession) -> None:
    async with WebhookReceiver() as r:
        sender = make_sender("h", channel(r.url), session, allow_private_networks=True)
        assert (await sender.send([sample_alert()])).ok
        (req,) = await r.wait_for(1)
    assert "webhook-signature" not in req.headers
    assert req.headers["webhook-id"] == sample_alert()["id"]
    assert req.headers["webhook-timestamp"].isdigit()


async def test_digest_envelope_has_stable_id(session: aiohttp.ClientSession) -> None:
    a, b = sample_alert(id="wl_a"), sample_alert(id="wl_b", watchlist="storms")
    async with WebhookReceiver() as r:
        sender = make_sender(
            "h", channel(r.url, secret=SECRET), session, allow_private_networks=True
        )
        assert (await sender.send([a, b])).ok
        assert (await sender.send([b, a])).ok
        first, second = await r.wait_for(2)
    body = first.json()
    assert body["type"] == "digest" and body["alerts"] == [a, b]
    assert body["id"].startswith("digest_") and first.headers["webhook-id"] == body["id"]
    assert second.json()["id"] == body["id"]  # same alerts, same id, whatever the order
    verify_standard_webhook(SECRET, first)


async def test_429_retry_after_is_reported(session: aiohttp.ClientSession) -> None:
    async with WebhookReceiver(script=[Reply(429, "slow down", {"Retry-After": "17"})]) as r:
        sender = make_sender("h", channel(r.url), session, allow_private_networks=True)
        result = await sender.send([sample_alert()])
    assert not result.ok and result.retryable
    assert result.status == 429 and result.retry_after == 17
    assert "slow down" in (result.error or "")


async def test_4xx_fails_permanently(session: aiohttp.ClientSession) -> None:
    async with WebhookReceiver(script=[Reply(404, "no such hook")]) as r:
        sender = make_sender("h", channel(r.url), session, allow_private_networks=True)
        result = await sender.send([sample_alert()])
    assert not result.ok and not result.retryable and result.status == 404
    assert result.error and "404" in result.error and "\n" not in result.error


async def test_redirect_is_not_followed(session: aiohttp.ClientSession) -> None:
    async with WebhookReceiver() as target:
        redirect = Reply(301, headers={"Location": target.url})
        async with WebhookReceiver(script=[redirect]) as r:
            sender = make_sender("h", channel(r.url), session, allow_private_networks=True)
            result = await sender.send([sample_alert()])
            assert len(r.requests) == 1
        assert target.requests == []
    assert not result.ok and not result.retryable and result.status == 301
    assert "redirect" in (result.error or "")


async def test_connection_refused_is_retryable(session: aiohttp.ClientSession) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    sender = make_sender("h", channel(url), session, allow_private_networks=True)
    result = await sender.send([sample_alert()])
    assert not result.ok and result.retryable and result.status is None
    assert "connect" in (result.error or "")


async def test_slow_receiver_times_out_retryably(session: aiohttp.ClientSession) -> None:
    """The channel's own (real) timeout ends a send the receiver never answers."""
    never = asyncio.Event()  # the answer comes only when the receiver closes
    async with WebhookReceiver(script=[Reply(200, hold=never)]) as r:
        sender = make_sender(
            "h", channel(r.url, timeout="0.3s"), session, allow_private_networks=True
        )
        result = await asyncio.wait_for(sender.send([sample_alert()]), 30)  # a hang fails
        assert len(r.requests) == 1 and not never.is_set()
    assert not result.ok and result.retryable and result.status is None
    assert "0.3s" in (result.error or "")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_private_destinations_refused_unless_allowed(
    session: aiohttp.ClientSession, host: str
) -> None:
    async with WebhookReceiver() as r:
        url = f"http://{host}:{r.port}/hook"
        sender = make_sender("h", channel(url), session, allow_private_networks=False)
        result = await sender.send([sample_alert()])
        assert r.requests == []
    assert not result.ok and not result.retryable
    assert result.error and result.error.startswith("refused:") and "private" in result.error


async def test_secrets_never_appear_in_errors(session: aiohttp.ClientSession) -> None:
    token = "tok_supersecret_123"

    def echo_headers(req: ReceivedRequest) -> Reply:
        return Reply(400, f"bad auth header {req.headers.get('authorization')}")

    async with WebhookReceiver(script=[echo_headers], path=f"/hook/{token}") as r:
        ch = channel(r.url, headers={"Authorization": f"Bearer {token}"})
        sender = make_sender("h", ch, session, allow_private_networks=True)
        result = await sender.send([sample_alert()])
    assert not result.ok and result.error
    assert "bad auth header" in result.error
    assert token not in result.error


async def test_bad_input_gives_permanent_readable_errors(session: aiohttp.ClientSession) -> None:
    async with WebhookReceiver() as r:
        sender = WebhookSender("h", channel(r.url), session, allow_private_networks=True)
        no_id = sample_alert()
        del no_id["id"]
        result = await sender.send([no_id])
        assert not result.ok and not result.retryable and "id" in (result.error or "")
        result = await sender.send([])
        assert not result.ok and not result.retryable
        bad_header = channel(r.url, headers={"X-Evil": "a\r\nInjected: yes"})
        result = await make_sender("h", bad_header, session, allow_private_networks=True).send(
            [sample_alert()]
        )
        assert not result.ok and not result.retryable and "X-Evil" in (result.error or "")
        assert r.requests == []


def test_make_sender_rejects_unknown_type() -> None:
    class Odd:
        type = "carrier-pigeon"

    with pytest.raises(ValueError, match="carrier-pigeon"):
        make_sender("x", Odd(), None, allow_private_networks=True)  # type: ignore[arg-type]
