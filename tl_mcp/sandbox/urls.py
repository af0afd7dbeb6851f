"""Outbound fetches of caller-supplied URLs (URL assets, legacy tasks, embed and analyze sources, image
queries), guarded against server-side request forgery.

Only http(s) is fetched. Unless ``SandboxConfig.allow_private_urls`` (``TL_MCP_SANDBOX_ALLOW_PRIVATE_URLS=1``)
is set, a host is refused when ANY address it resolves to is loopback, private, link-local, multicast,
reserved or otherwise not globally routable, so a sandbox reachable by others cannot be used to probe its own
network. IPv6 spellings of IPv4 addresses (mapped, translated, compatible, NAT64, 6to4, Teredo, ISATAP) are
judged by the IPv4 addresses they embed. The check runs on the request (a clear 400 at once) and again in the
transport on every hop the HTTP client makes, so a redirect to a private address is refused too; redirects are
capped at ``MAX_REDIRECTS``.

DNS rebinding: the transport connects to the very address it vetted (the URL's host is swapped for that
address; the ``Host`` header and, for https, the TLS server name and certificate check keep the original
name), so a DNS answer that changes between the check and the connection cannot reach a refused address.
Name resolution goes through a :data:`Resolver` (``SandboxConfig.resolver``; the system resolver by default).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import anyio
import httpx2

from tl_mcp.redaction import display_url, redact_logger
from tl_mcp.sandbox.config import ALLOW_PRIVATE_URLS_ENV, Resolver

MAX_REDIRECTS = 5
_HOW_TO_ALLOW = (
    f"To let the sandbox fetch from local or private networks (e.g. a test server), set "
    f"{ALLOW_PRIVATE_URLS_ENV}=1 (or SandboxConfig(allow_private_urls=True))."
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class UrlRefused(Exception):
    """The URL may not be fetched; ``message`` says why and what to do."""

    def __init__(self, url: str, reason: str, *, fixable_by_opt_in: bool) -> None:
        message = f"The sandbox will not fetch {display_url(url)[:200]!r}: {reason}."
        if fixable_by_opt_in:
            message += " " + _HOW_TO_ALLOW
        super().__init__(message)
        self.message = message


# IPv6 ranges that are only IPv4 written in IPv6 notation: a packet to one goes to the embedded IPv4 host
# (through the kernel's IPv4 stack or a NAT64 gateway), so that address alone decides. The IPv4-translated
# range (RFC 2765) is ::ffff:0:a.b.c.d, one group left of the IPv4-mapped ::ffff:a.b.c.d.
_TRANSLATED = (
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64 well-known prefix (RFC 6052)
)
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated (RFC 4291); :: and ::1 are not in it
# ISATAP (RFC 5214): any prefix, then the interface id 0000:5efe or 0200:5efe and the router's IPv4 address.
_ISATAP_IDS = (0x00005EFE, 0x02005EFE)
# Local-use NAT64 (RFC 8215): the operator picks the prefix length, so where the IPv4 address sits (and
# hence where a packet goes) cannot be known from the address; refused whole.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address a packet to ``ip`` may be delivered to (6to4 relay, Teredo server and client,
    ISATAP router…): an ISATAP interface id can sit under a 6to4 or Teredo prefix, so all of them count."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _TRANSLATED):
        return [low32]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return [low32]
    found = [] if ip.sixtofour is None else [ip.sixtofour]
    if ip.teredo is not None:
        found += ip.teredo
    if (int(ip) >> 32) & 0xFFFFFFFF in _ISATAP_IDS:
        found.append(low32)
    return found


def _own_category(ip: IPAddress) -> str | None:
    for name, hit in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        # Last: Python counts loopback, link-local and unspecified ranges as private too.
        ("private", ip.is_private),
    ):
        if hit:
            return name
    # Shared (CGNAT), documentation and similar ranges are neither private nor global.
    return None if ip.is_global else "non-global"


def _refusal(ip: IPAddress) -> str | None:
    """What ``ip`` is, when refused (``"a loopback address"``), or ``None``. An IPv6 address embedding
    IPv4 ones (mapped, translated, compatible, NAT64, 6to4, Teredo, ISATAP) is judged by the IPv4 policy on
    each of them too, so no IPv6 spelling reaches an IPv4 address the filter refuses."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64:
            return "a local-use NAT64 address"
        for inner in _embedded_ipv4(ip):
            category = _own_category(inner)
            if category is not None:
                return f"an IPv6 form of {inner}, a {category} address"
        if any(ip in net for net in _TRANSLATED):
            return None
    category = _own_category(ip)
    return None if category is None else f"a {category} address"


def _split(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL, or :class:`UrlRefused`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(url, f"it is not a valid URL ({exc})", fixable_by_opt_in=False) from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        reason = f"only http and https URLs are fetched (got {parts.scheme or 'no'} scheme)"
        raise UrlRefused(url, reason, fixable_by_opt_in=False)
    if not parts.hostname:
        raise UrlRefused(url, "it has no host", fixable_by_opt_in=False)
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def _vet(url: str, host: str, addresses: Sequence[str], *, allow_private: bool) -> IPAddress:
    """The address to connect to: the first one, once every one of them has passed."""
    vetted: list[IPAddress] = []
    for raw in addresses:
        try:
            ip = ipaddress.ip_address(str(raw).split("%", 1)[0])
        except ValueError as exc:
            raise UrlRefused(url, f"its host {host!r} resolved to {raw!r}", fixable_by_opt_in=False) from exc
        refusal = None if allow_private else _refusal(ip)
        if refusal is not None:
            raise UrlRefused(url, f"its host {host!r} resolves to {ip}, {refusal}", fixable_by_opt_in=True)
        vetted.append(ip)
    if not vetted:
        raise UrlRefused(url, f"its host {host!r} resolves to no address", fixable_by_opt_in=False)
    return vetted[0]


def _lookup(host: str, port: int, resolver: Resolver | None) -> Sequence[str]:
    """Addresses of ``host`` (an IP literal is its own answer); ``OSError`` when it does not resolve."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        return (resolver or system_resolver)(host, port)
    except UnicodeError as exc:  # an unencodable name cannot resolve either
        raise OSError(str(exc)) from exc


def _unresolved(url: str, host: str, exc: OSError) -> UrlRefused:
    return UrlRefused(url, f"its host {host!r} does not resolve ({exc})", fixable_by_opt_in=False)


def check_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> None:
    """Raise :class:`UrlRefused` unless ``url`` is http(s) and (unless allowed) only resolves publicly.
    Blocking (DNS); async code calls :func:`acheck_url`. The fetch itself vets again (see module doc)."""
    _, host, port = _split(url)
    if allow_private:
        return
    try:
        addresses = _lookup(host, port, resolver)
    except OSError as exc:
        raise _unresolved(url, host, exc) from exc
    _vet(url, host, addresses, allow_private=False)


async def acheck_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> None:
    await anyio.to_thread.run_sync(lambda: check_url(url, allow_private=allow_private, resolver=resolver))


def pin(request: httpx2.Request, *, allow_private: bool, resolver: Resolver | None) -> httpx2.Request:
    """A copy of ``request`` addressed to its host's vetted IP, keeping the name for ``Host`` and TLS."""
    url = str(request.url)
    scheme, host, port = _split(url)
    try:
        addresses = _lookup(host, port, resolver)
    except OSError as exc:
        refused = _unresolved(url, host, exc)
        if allow_private:
            # Opted in, nothing is refused: an unknown host is an ordinary connection failure.
            raise httpx2.ConnectError(refused.message, request=request) from exc
        raise refused from exc
    address = _vet(url, host, addresses, allow_private=allow_private)
    extensions = dict(request.extensions)
    if scheme == "https":
        extensions["sni_hostname"] = host
    return httpx2.Request(
        request.method,
        request.url.copy_with(host=str(address)),
        headers=request.headers,  # already carries Host: <original name>
        stream=request.stream,
        extensions=extensions,
    )


class PinnedTransport(httpx2.BaseTransport):
    """Vets each request's host and connects to the vetted address (one resolution per hop)."""

    def __init__(
        self, inner: httpx2.BaseTransport, *, allow_private: bool, resolver: Resolver | None
    ) -> None:
        self._inner, self._allow_private, self._resolver = inner, allow_private, resolver

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        pinned = pin(request, allow_private=self._allow_private, resolver=self._resolver)
        return self._inner.handle_request(pinned)

    def close(self) -> None:
        self._inner.close()


class AsyncPinnedTransport(httpx2.AsyncBaseTransport):
    def __init__(
        self, inner: httpx2.AsyncBaseTransport, *, allow_private: bool, resolver: Resolver | None
    ) -> None:
        self._inner, self._allow_private, self._resolver = inner, allow_private, resolver

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        pinned = await anyio.to_thread.run_sync(
            lambda: pin(request, allow_private=self._allow_private, resolver=self._resolver)
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()


# No kept-alive connections: a connection opened for one name (SNI, certificate) must not serve another
# name that happens to resolve to the same address.
_NO_REUSE = httpx2.Limits(max_keepalive_connections=0)


def _mask_request_log() -> None:
    # httpx2 logs each request's whole URL; a caller's URL may carry a password or a signature.
    redact_logger("httpx2")


def client(
    *,
    allow_private: bool,
    timeout: float,
    transport: httpx2.BaseTransport | None = None,
    resolver: Resolver | None = None,
) -> httpx2.Client:
    """A client that vets and pins every request it sends, redirects included."""
    _mask_request_log()
    inner = transport or httpx2.HTTPTransport(limits=_NO_REUSE)
    return httpx2.Client(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        transport=PinnedTransport(inner, allow_private=allow_private, resolver=resolver),
    )


def async_client(
    *,
    allow_private: bool,
    timeout: float,
    transport: httpx2.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
) -> httpx2.AsyncClient:
    _mask_request_log()
    inner = transport or httpx2.AsyncHTTPTransport(limits=_NO_REUSE)
    return httpx2.AsyncClient(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        transport=AsyncPinnedTransport(inner, allow_private=allow_private, resolver=resolver),
    )
