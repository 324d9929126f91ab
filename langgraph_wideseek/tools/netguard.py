"""The SSRF guard of the web reader: which URLs the agent may make this machine fetch.

The model chooses the URLs the web reader fetches, and a page it reads may redirect anywhere, so a fetch must
never reach this machine, its private network or a cloud metadata service. The guard

- accepts only ``http`` and ``https`` URLs with a host;
- resolves the host (through an injectable resolver, so tests never touch real DNS) and refuses the URL if
  **any** address is loopback, private, link-local, shared (CGNAT), multicast, reserved, unspecified, a
  documentation/benchmark range or a known metadata address, looking through IPv4-mapped, IPv4-compatible,
  6to4 and NAT64 IPv6 forms to the IPv4 address inside;
- returns the address it checked, so the caller connects to exactly that address (pinning: a second DNS
  answer,
  as in DNS rebinding, is never used).

The web reader calls :meth:`NetGuard.check` before the first request and again on every redirect hop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

from ..errors import URLRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: ``resolver(host, port) -> [address, ...]``; the default asks the operating system (``getaddrinfo``).
Resolver = Callable[[str, int], Awaitable[list[str]]]

_SHARED = ipaddress.ip_network("100.64.0.0/10")
# The networks that "private" means to a reader (RFC 1918, unique-local IPv6, "this network"); the other
# ranges Python counts as private (documentation, benchmarking, ...) are reported as special-purpose.
_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "0.0.0.0/8", "fc00::/7")
)
_HOSTNAME = re.compile(
    r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$"
)  # carrier-grade NAT; is_private is False for it
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
# Metadata services that do not already fall in a refused range get a named reason in the message.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"): "a cloud metadata address",  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"): "a cloud metadata address",  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"): "a cloud metadata address",  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"): "a cloud metadata address",  # AWS over IPv6
}


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses the operating system resolves ``host`` to (no network access for IP literals)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, for the forms that route to it."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    packed = int(ip)
    if packed >> 32 == 0 and packed > 1:  # deprecated IPv4-compatible form ::a.b.c.d (not :: or ::1)
        return ipaddress.IPv4Address(packed)
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """Why a connection to ``ip`` is refused, or None when the address is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = refusal_reason(inner)
            return f"{reason} (inside an IPv6 address)" if reason else None
    if ip in _METADATA:
        return _METADATA[ip]
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if ip.is_reserved:
        return "a reserved address"
    if any(ip.version == net.version and ip in net for net in _PRIVATE):
        return "a private address"
    if ip.is_private or not ip.is_global:  # documentation, benchmarking and other special-purpose ranges
        return "a special-purpose address"
    return None


def _parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes without DNS, including legacy IPv4 forms (``2130706433``,
    ``0x7f.1``, ``0177.0.0.1``) that ``getaddrinfo`` would silently accept."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed the guard, with the address to connect to."""

    url: httpx.URL  # as requested (host name kept: for the Host header, TLS SNI and relative redirects)
    address: str  # the checked IP address the connection must go to

    @property
    def host(self) -> str:
        """The host in ASCII (IDNA) form, as DNS and TLS see it."""
        return self.url.raw_host.decode("ascii")

    @property
    def pinned_url(self) -> httpx.URL:
        """The same URL with the host replaced by the checked address."""
        return self.url.copy_with(host=self.address)

    @property
    def host_header(self) -> str:
        return self.url.netloc.decode("ascii")


class NetGuard:
    """Checks URLs before every fetch and every redirect hop.

    ``allow_private=True`` turns the address checks off (for intranet use and tests against local servers);
    ``allowed_networks`` lets specific networks through while everything else stays guarded.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        allowed_networks: Iterable[str | IPNetwork] = (),
        resolver: Resolver | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.allowed_networks = tuple(ipaddress.ip_network(n) for n in allowed_networks)
        self._resolve = resolver or system_resolver

    def _allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allowed_networks)

    async def check(self, url: str | httpx.URL) -> CheckedURL:
        """Return the URL with the address to connect to, or raise :class:`URLRefused`."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise URLRefused("the URL is not valid") from None
        if parsed.scheme not in ("http", "https"):
            raise URLRefused(f"only http and https URLs can be read, not {parsed.scheme or 'this'!r}")
        host = parsed.raw_host.decode("ascii", errors="replace")  # IDNA form: what DNS is asked
        if not host:
            raise URLRefused("the URL has no host")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)

        literal = _parse_ip_literal(host)
        if literal is None and not _HOSTNAME.match(host):
            raise URLRefused("the URL's host name is not valid")
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                raw = await self._resolve(host.rstrip("."), port)
            except (OSError, UnicodeError, ValueError):
                raise URLRefused(f"the host {host!r} could not be resolved") from None
            addresses = []
            for a in raw:
                try:
                    addresses.append(ipaddress.ip_address(a.split("%", 1)[0]))
                except ValueError:
                    raise URLRefused(f"the host {host!r} resolved to an invalid address") from None
            if not addresses:
                raise URLRefused(f"the host {host!r} has no address")

        if not self.allow_private:
            # Every address must pass: a name with one public and one private record is refused, since the
            # connection could go to either.
            for ip in addresses:
                reason = None if self._allowed(ip) else refusal_reason(ip)
                if reason:
                    raise URLRefused(f"refused to read {host!r}: it points to {reason}")
        return CheckedURL(url=parsed, address=str(addresses[0]))
