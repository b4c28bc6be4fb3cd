"""SSRF guard: refuse to connect to loopback, private, link-local and other non-public addresses.

A feed URL (or a redirect it answers with) must not make the daemon talk to the machine it runs
on, the local network or a cloud metadata service (169.254.169.254). The check runs on the
addresses a name resolves to, inside the resolver the HTTP connector uses, so the address that
is actually connected to is the one that was checked (no DNS-rebinding gap); literal-IP URLs
never reach a resolver and are checked by :func:`check_literal_host` before any connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HINT = "set fetch.allow_private_networks: true to allow"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")


class BlockedAddressError(OSError):
    """A destination the SSRF guard refuses; ``str()`` is a readable one-line reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in an IPv4-mapped, NAT64 or 6to4 IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def non_public_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public internet address ("loopback", "private", ...), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = non_public_reason(inner)
            if reason:
                return reason
        if ip.scope_id:
            return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:  # shared address space (100.64/10), documentation ranges, ...
        return "non-public"
    return None


class AddressPolicy:
    """Decides which addresses may be connected to."""

    def __init__(self, allow_private: bool = False, allow_networks: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        # Explicit exceptions (for example one internal host) even when private ones are refused.
        self.allow_networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allow_networks
        )

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be used ("private", "loopback", ...), or None when it may."""
        if self.allow_private:
            return None
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "unparseable"
        reason = non_public_reason(ip)
        if reason is None or any(ip in net for net in self.allow_networks):
            return None
        return reason

    def check_literal_host(self, host: str) -> None:
        """Raise BlockedAddressError when ``host`` is an IP literal that is not allowed."""
        literal = host.strip("[]")
        try:
            ipaddress.ip_address(literal.split("%", 1)[0])
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        reason = self.refusal(literal)
        if reason:
            raise BlockedAddressError(f"refused: {literal} is {_a(reason)} address ({_HINT})")


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


class GuardedResolver(AbstractResolver):
    """Wraps a resolver and drops every address the policy refuses; none left -> refused."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refused: tuple[str, str] | None = None
        for res in results:
            reason = self.policy.refusal(res["host"])
            if reason is None:
                allowed.append(res)
            elif refused is None:
                refused = (res["host"], reason)
        if not allowed:
            if refused is None:
                raise BlockedAddressError(f"{host} has no usable address")
            address, reason = refused
            raise BlockedAddressError(
                f"refused: {host} resolves to {address}, {_a(reason)} address ({_HINT})"
            )
        return allowed

    async def close(self) -> None:
        await self.inner.close()
