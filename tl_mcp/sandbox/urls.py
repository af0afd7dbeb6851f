"""Outbound fetches of caller-supplied URLs (URL assets, legacy tasks, embed and analyze sources, image
queries), guarded against server-side request forgery.

Only http(s) is fetched. Unless ``SandboxConfig.allow_private_urls`` (``TL_MCP_SANDBOX_ALLOW_PRIVATE_URLS=1``)
is set, a host is refused when ANY address it resolves to is loopback, private, link-local, multicast,
reserved or otherwise not globally routable, so a sandbox reachable by others cannot be used to probe its own
network. The check runs on the request (a clear 400 at once) and again on every hop the HTTP client makes,
so a redirect to a private address is refused too; redirects are capped at ``MAX_REDIRECTS``.

Residual risk, accepted for a local sandbox: a host whose DNS answer changes between the check and the
connection (rebinding) is not pinned to the checked address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import anyio
import httpx2

from tl_mcp.sandbox.config import ALLOW_PRIVATE_URLS_ENV

MAX_REDIRECTS = 5
_HOW_TO_ALLOW = (
    f"To let the sandbox fetch from local or private networks (e.g. a test server), set "
    f"{ALLOW_PRIVATE_URLS_ENV}=1 (or SandboxConfig(allow_private_urls=True))."
)


class UrlRefused(Exception):
    """The URL may not be fetched; ``message`` says why and what to do."""

    def __init__(self, url: str, reason: str, *, fixable_by_opt_in: bool) -> None:
        message = f"The sandbox will not fetch {url[:200]!r}: {reason}."
        if fixable_by_opt_in:
            message += " " + _HOW_TO_ALLOW
        super().__init__(message)
        self.message = message


def _category(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise :class:`UrlRefused` unless ``url`` is http(s) and (unless allowed) only resolves publicly.
    Blocking (DNS); async code calls :func:`acheck_url`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(url, f"it is not a valid URL ({exc})", fixable_by_opt_in=False) from exc
    if parts.scheme.lower() not in ("http", "https"):
        reason = f"only http and https URLs are fetched (got {parts.scheme or 'no'} scheme)"
        raise UrlRefused(url, reason, fixable_by_opt_in=False)
    host = parts.hostname
    if not host:
        raise UrlRefused(url, "it has no host", fixable_by_opt_in=False)
    if allow_private:
        return
    try:
        default_port = 443 if parts.scheme.lower() == "https" else 80
        infos = socket.getaddrinfo(host, port or default_port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused(url, f"its host {host!r} does not resolve ({exc})", fixable_by_opt_in=False) from exc
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        category = _category(ipaddress.ip_address(address))
        if category is not None:
            raise UrlRefused(
                url, f"its host {host!r} resolves to {address}, a {category} address", fixable_by_opt_in=True
            )


async def acheck_url(url: str, *, allow_private: bool) -> None:
    await anyio.to_thread.run_sync(lambda: check_url(url, allow_private=allow_private))


def client(
    *, allow_private: bool, timeout: float, transport: httpx2.BaseTransport | None = None
) -> httpx2.Client:
    """A client that re-checks every request it sends, redirects included."""

    def hook(request: httpx2.Request) -> None:
        check_url(str(request.url), allow_private=allow_private)

    return httpx2.Client(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        event_hooks={"request": [hook]},
        transport=transport,
    )


def async_client(
    *, allow_private: bool, timeout: float, transport: httpx2.AsyncBaseTransport | None = None
) -> httpx2.AsyncClient:
    async def hook(request: httpx2.Request) -> None:
        await acheck_url(str(request.url), allow_private=allow_private)

    hooks: dict[str, list[Callable[[httpx2.Request], Awaitable[None]]]] = {"request": [hook]}
    return httpx2.AsyncClient(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        event_hooks=hooks,
        transport=transport,
    )
