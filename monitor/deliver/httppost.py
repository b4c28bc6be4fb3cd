"""One JSON POST to a webhook-like receiver, turned into a ``SendResult``.

Shared by the webhook and Slack channels so both classify answers, read Retry-After, refuse
private destinations and describe errors the same way. Redirects are never followed: a
receiver that moved answers 3xx and the alert fails with a message naming the new location.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from monitor import __version__
from monitor.configtypes import mask_url
from monitor.deliver.base import SendResult, delivered, fail, retry
from monitor.deliver.guard import destination_refusal
from monitor.deliver.render import clean_line, scrub
from monitor.deliver.retry import classify_status
from monitor.retry_after import parse_retry_after

log = logging.getLogger(__name__)

USER_AGENT = f"feedwatch/{__version__}"
_MAX_READ = 16 * 1024  # of a response body, for the error message


@dataclass(frozen=True, slots=True)
class PostOutcome:
    result: SendResult
    body: str = ""  # the start of the response body, decoded leniently


async def _read_some(resp: aiohttp.ClientResponse) -> str:
    chunks: list[bytes] = []
    size = 0
    while size < _MAX_READ:
        chunk = await resp.content.read(_MAX_READ - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _blocked_by_shared_guard(exc: BaseException) -> str | None:
    """The refusal text when the session's resolver (``monitor.netguard``) refused the host."""
    os_error = getattr(exc, "os_error", None)
    text = str(os_error) if os_error is not None else ""
    return text if text.startswith("refused:") else None


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    time_limit: float,
    allow_private_networks: bool,
    secrets: Sequence[str] = (),
) -> PostOutcome:
    """POST ``body``; never raises for network or HTTP problems."""
    shown = mask_url(url)
    secrets = [*secrets, url]
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return PostOutcome(fail(f"invalid URL {shown}"))
    if parts.scheme not in ("http", "https") or not host:
        return PostOutcome(fail(f"invalid URL {shown}: expected http(s)://host/..."))
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\0") or not name.strip():
            return PostOutcome(
                fail(f"header {clean_line(name, 60)!r} has an invalid name or value")
            )
    try:
        refusal = await destination_refusal(
            host, port, allow_private_networks=allow_private_networks, resolve_timeout=time_limit
        )
    except (OSError, TimeoutError) as exc:
        return PostOutcome(retry(f"cannot resolve {host}: {scrub(str(exc), secrets, 120)}"))
    if refusal:
        return PostOutcome(fail(refusal))
    try:
        async with asyncio.timeout(time_limit):
            async with session.post(
                url,
                data=body,
                headers=dict(headers),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=time_limit),
            ) as resp:
                status = resp.status
                text = await _read_some(resp)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                location = resp.headers.get("Location")
                reason = resp.reason or ""
    except TimeoutError:
        return PostOutcome(retry(f"no answer from {shown} within {time_limit:g}s"))
    except aiohttp.ClientConnectorCertificateError as exc:
        msg = scrub(str(getattr(exc, "certificate_error", exc)), secrets, 160)
        return PostOutcome(retry(f"TLS certificate of {host} not trusted: {msg}"))
    except aiohttp.ClientSSLError as exc:
        return PostOutcome(retry(f"TLS error with {host}: {scrub(str(exc), secrets, 160)}"))
    except aiohttp.ClientConnectorError as exc:
        blocked = _blocked_by_shared_guard(exc)
        if blocked:
            return PostOutcome(fail(blocked))
        why = getattr(exc.os_error, "strerror", None) or str(exc.os_error) or str(exc)
        return PostOutcome(retry(f"cannot connect to {shown}: {scrub(why, secrets, 160)}"))
    except aiohttp.InvalidURL:
        return PostOutcome(fail(f"invalid URL {shown}"))
    except (aiohttp.ClientError, OSError) as exc:
        detail = scrub(str(exc), secrets, 160) or type(exc).__name__
        return PostOutcome(retry(f"request to {shown} failed: {detail}"))
    except ValueError as exc:  # e.g. a header aiohttp refuses
        return PostOutcome(fail(f"request to {shown} not sent: {scrub(str(exc), secrets, 160)}"))

    verdict = classify_status(status)
    if verdict == "ok":
        return PostOutcome(delivered(status), text)
    excerpt = scrub(text, secrets, 200)
    message = f"HTTP {status} {clean_line(reason, 60)}".rstrip()
    if 300 <= status < 400:
        target = f" to {mask_url(location)}" if location else ""
        message += f" (redirect{target} not followed: update the channel URL)"
    elif excerpt:
        message += f": {excerpt}"
    if verdict == "retry":
        return PostOutcome(retry(message, status, retry_after), text)
    return PostOutcome(fail(message, status), text)
