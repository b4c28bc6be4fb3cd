"""Refuse to deliver to loopback, private and other non-public addresses unless allowed.

One function, so it can be swapped for the fetcher's shared SSRF guard (``monitor.netguard``)
later. It checks the addresses the name resolves to now; the connection resolves again, so a
rebinding DNS server could still slip through: the shared guard, wired into the session's
resolver, closes that gap. Channel destinations come from the operator's own config, so this
check is about honouring ``allow_private_networks`` rather than about hostile input.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

_HINT = "set fetch.allow_private_networks: true to allow"


def _reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_private:
        return "private"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved or not ip.is_global:
        return "non-public"
    return None


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
        reason = _reason(ip)
        if reason:
            shown = host if str(ip) == literal else f"{host} ({ip})"
            return f"refused: {shown} is a {reason} (private address) destination; {_HINT}"
    return None
