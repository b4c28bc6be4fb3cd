"""Refuse to deliver to loopback, private and other non-public addresses unless allowed.

Which addresses count as non-public is decided in one place, ``monitor.netguard`` (the
fetcher's SSRF guard). This checks what the name resolves to before sending, so SMTP and
Apprise targets, which do not go through an aiohttp session, are covered too; in the daemon the
webhook/Slack session's resolver also applies the guard at connect time, which closes the DNS
rebinding gap. Channel destinations come from the operator's own config, so this
check is about honouring ``allow_private_networks`` rather than about hostile input.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from monitor.netguard import non_public_reason

_HINT = "set fetch.allow_private_networks: true to allow"


async def destination_refusal(
    host: str, port: int, *, allow_private_networks: bool, resolve_timeout: float = 10.0
) -> str | None:
    """A one-line refusal when ``host`` is (or resolves to) a non-public address, else None.

    Raises OSError (or TimeoutError) when the name cannot be resolved: a retryable problem.
    """
    if allow_private_networks:
        return None
    literal = host.strip("[]").split("%", 1)[0]
    try:
        addresses = [ipaddress.ip_address(literal)]
    except ValueError:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(resolve_timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = []
        for info in infos:
            try:
                addresses.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            except ValueError:
                continue
    for ip in addresses:
        reason = non_public_reason(ip)
        if reason:
            shown = host if str(ip) == literal else f"{host} ({ip})"
            return f"refused: {shown} is a {reason} (private address) destination; {_HINT}"
    return None
