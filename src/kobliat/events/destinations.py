"""Where HTTP subscriptions may point: public addresses only, unless allowed for development.

A subscription URL is checked twice: when it is created (an address written in the URL, in any
of the forms resolvers accept, such as `0x7f000001`, `2130706433`, `127.1` or `[::ffff:7f00:1]`,
and `localhost` names), and on every new connection, where the host name is resolved once, every
address it resolves to is checked, and the connection is made to that very address (the URL's
host still goes in `Host` and in TLS SNI). A name that resolves to a public address when the
subscription is created and to an internal one later is so refused too.

The address rules are the standard library's (`ipaddress`); the resolve-once-and-pin part is
written here because httpx offers no hook between name resolution and connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def refusal(address: IPAddress) -> str | None:
    """The rule that forbids delivering to `address` (`loopback`, `private`, ...), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal(address.ipv4_mapped)
    rules = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("reserved", not address.is_global),  # shared (100.64/10), documentation ranges, ...
    )
    return next((name for name, applies in rules if applies), None)


def literal_address(host: str) -> IPAddress | None:
    """The address written as `host`, in the standard forms and in the legacy IPv4 forms
    resolvers accept (hexadecimal, octal, one integer, fewer than four parts); None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def url_refusal(url: str) -> str | None:
    """Why a subscription URL may not be used (a sentence naming the rule), or None."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"host {host} is a loopback name"
    address = literal_address(host)
    rule = refusal(address) if address is not None else None
    return None if rule is None else f"host {host} is a {rule} address ({address})"


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves each connection's host once, refuses internal addresses, and connects to the
    address it checked (so a second resolution cannot swap in another)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first address `host` resolves to, when every one is allowed."""
        addresses = await _resolve(host, port)
        if not self._allow_private:
            for address in addresses:
                rule = refusal(address)
                if rule is not None:
                    raise httpcore.ConnectError(f"{host} resolves to a {rule} address")
        failure: Exception = httpcore.ConnectError(f"{host} did not resolve")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        """Sleep (httpcore's retries use it)."""
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except OSError as exc:
        raise httpcore.ConnectError(f"{host} did not resolve: {exc}") from exc
    unique: dict[IPAddress, None] = {}
    for *_, sockaddr in found:
        unique[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return list(unique)
