"""What every delivery channel offers the outbox: ``send(alerts) -> SendResult``.

A sender never raises for a delivery problem: it answers with a ``SendResult`` saying whether the
alerts were delivered, and if not, whether trying again can help. The outbox decides *when*
(see ``retry.RetryPolicy``); senders only decide *what happened*.

``alerts`` is one or more contract webhook payloads. One payload is an immediate alert; several
form a digest, sent as one message grouping them by watchlist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import aiohttp

    from monitor.settings import FetchSettings


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool  # delivered (2xx / SMTP accepted)
    retryable: bool  # False = permanent failure
    status: int | None = None  # HTTP status or SMTP reply code, when there was one
    error: str | None = None  # one readable line, never containing secrets
    retry_after: float | None = None  # seconds, from Retry-After


def delivered(status: int | None = None, note: str | None = None) -> SendResult:
    return SendResult(ok=True, retryable=False, status=status, error=note)


def retry(error: str, status: int | None = None, retry_after: float | None = None) -> SendResult:
    return SendResult(ok=False, retryable=True, status=status, error=error, retry_after=retry_after)


def fail(error: str, status: int | None = None) -> SendResult:
    return SendResult(ok=False, retryable=False, status=status, error=error)


def delivery_session(fetch: FetchSettings) -> aiohttp.ClientSession:
    """The HTTP session webhook and Slack senders share (the daemon's, and `test-alert`'s).

    It carries the fetcher's SSRF guard in its resolver, so a channel host that resolves, or
    re-resolves, to a non-public address is refused at connect time unless
    ``fetch.allow_private_networks`` is set.
    """
    import aiohttp

    from monitor.netguard import AddressPolicy, GuardedResolver

    policy = AddressPolicy(allow_private=fetch.allow_private_networks)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=GuardedResolver(policy), limit=256),
        timeout=aiohttp.ClientTimeout(total=60),
        headers={"User-Agent": fetch.user_agent},
    )


class Sender(Protocol):
    async def send(self, alerts: list[dict[str, Any]]) -> SendResult: ...


def make_sender(
    name: str,
    channel: Any,
    session: aiohttp.ClientSession,
    *,
    allow_private_networks: bool,
) -> Sender:
    """The sender for one configured channel (its type's entry in ``deliver/registry.py``).

    Building a sender does no I/O; problems such as an unreadable ``ca_file`` or an apprise URL
    it does not know surface as a permanent ``SendResult`` on the first send.
    """
    from monitor.deliver.channel import SenderContext
    from monitor.deliver.registry import channel_type

    ctx = SenderContext(session=session, allow_private_networks=allow_private_networks)
    return channel_type(channel).sender(name, channel, ctx)
