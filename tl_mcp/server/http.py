"""Streamable HTTP: `/mcp` (progress streamed as SSE), `/healthz`, bearer tokens, Host/Origin checks.

Authentication is one of two modes. Static tokens only: `BearerAuth` below. OAuth (any
TL_MCP_OAUTH_* setting): the SDK's bearer middleware with our JWT verifier (`auth.py`), which also
accepts the static tokens, and the SDK serves the RFC 9728 metadata route.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import UNSUPPORTED_PROTOCOL_VERSION
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tl_mcp import __version__
from tl_mcp.config import Settings
from tl_mcp.server.events import RETRY_MS, BoundedEventStore, StreamOwners
from tl_mcp.server.guard import BodyLimit
from tl_mcp.server.metrics import METRICS_PATH, StreamGauge, metrics_endpoint
from tl_mcp.server.principals import StaticTokens, principal_key

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
#: Every `MCP-Protocol-Version` this server answers, oldest first.
SUPPORTED_VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
#: OAuth discovery documents (RFC 9728, RFC 8414, OpenID) live under this prefix.
WELL_KNOWN = "/.well-known/"
#: How much of a rejected body is read to find the request id for the error reply.
_ID_PEEK_BYTES = 1 << 20


class BearerAuth:
    """Requires `Authorization: Bearer <token>` (one of the static tokens) on everything but the health check.

    The caller's principal goes where the SDK's own auth middleware puts it (`scope["user"]` and the auth
    context), so MCP sessions are bound to the token that opened them and tools can tell callers apart.
    """

    def __init__(
        self, app: ASGIApp, tokens: StaticTokens, *, public_paths: Sequence[str] = (HEALTH_PATH,)
    ) -> None:
        self._app = AuthContextMiddleware(app)
        self._tokens = tokens
        self._public = frozenset(public_paths)

    def _verify(self, header: str | None) -> AccessToken | None:
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self._tokens.verify(value)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self._public:
            await self._app(scope, receive, send)
            return
        if str(scope.get("path", "")).startswith(WELL_KNOWN):
            # Static tokens are not OAuth: a 401 here would send clients (the Inspector) into an
            # authorization flow that cannot succeed; "no such document" lets them use the token.
            response = JSONResponse(
                {
                    "error": "not_found",
                    "error_description": "This server does not use OAuth: send the bearer token you "
                    "were given as 'Authorization: Bearer <token>'.",
                },
                status_code=404,
            )
            await response(scope, receive, send)
            return
        request = Request(scope)
        token = self._verify(request.headers.get("authorization"))
        if token is None:
            response = JSONResponse(
                {"error": "invalid_token", "error_description": "Missing or invalid bearer token."},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="tl-mcp", error="invalid_token"'},
            )
            await response(scope, receive, send)
            return
        scope["user"] = AuthenticatedUser(token)
        await self._app(scope, receive, send)


class ProtocolVersionCheck:
    """Rejects an `MCP-Protocol-Version` header this server does not speak, naming the ones it does.

    The SDK sends every unknown value down its 2026-07-28 path, whose first check is the `_meta`
    envelope, so a client that merely sent a bad version was told about envelope keys.
    """

    def __init__(self, app: ASGIApp, *, path: str = MCP_PATH) -> None:
        self._app = app
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != self._path:
            await self._app(scope, receive, send)
            return
        requested = Request(scope).headers.get("mcp-protocol-version")
        if requested is None or requested in SUPPORTED_VERSIONS:
            await self._app(scope, receive, send)
            return
        shown = requested[:40]
        message = (
            f"Unsupported MCP-Protocol-Version {shown!r}: this server speaks "
            f"{', '.join(SUPPORTED_VERSIONS)}. Send one of these; a client on the handshake protocol "
            "sends the version that initialize negotiated (or no header before it)."
        )
        body = {
            "jsonrpc": "2.0",
            "id": await _request_id(scope, receive) if scope.get("method") == "POST" else None,
            "error": {
                "code": UNSUPPORTED_PROTOCOL_VERSION,
                "message": message,
                "data": {"supported": list(SUPPORTED_VERSIONS), "requested": shown},
            },
        }
        await JSONResponse(body, status_code=400)(scope, receive, send)


async def _request_id(scope: Scope, receive: Receive) -> str | int | None:
    """The JSON-RPC id of a (bounded) POST body, so the error correlates; None if there is none."""
    chunks: list[bytes] = []
    size = 0
    while size <= _ID_PEEK_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    else:
        return None
    try:
        decoded = json.loads(b"".join(chunks))
    except ValueError:
        return None
    found = decoded.get("id") if isinstance(decoded, dict) else None
    return found if isinstance(found, str | int) and not isinstance(found, bool) else None


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection from the allow-lists; `*` in the host list turns the check off on purpose."""
    if "*" in settings.allowed_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(settings.allowed_hosts),
        allowed_origins=list(settings.allowed_origins),
    )


def build_http_app(server: MCPServer[Any], settings: Settings) -> ASGIApp:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__, "backend": settings.effective_backend})

    server.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)(healthz)
    # Behind the same authentication as /mcp: a scraper sends a bearer token like any client.
    server.custom_route(METRICS_PATH, methods=["GET"], include_in_schema=False)(metrics_endpoint)
    # Replicas: a legacy (2025-11-25) client's Mcp-Session-Id would pin it to one process.
    # Stateless HTTP's cancel registry is built with the server (`app.build_server`).
    stateless = bool(settings.state_keys)

    app: ASGIApp = server.streamable_http_app(
        # Sessions keep each stream's events so a dropped stream can be resumed (stateless mode has none).
        event_store=None if stateless else BoundedEventStore(),
        retry_interval=None if stateless else RETRY_MS,
        streamable_http_path=MCP_PATH,
        # Plain JSON bodies would hold back every progress notification until the end.
        json_response=False,
        transport_security=transport_security(settings),
        host=settings.host,
        stateless_http=stateless,
    )
    if not stateless:
        app = StreamOwners(app)
    app = StreamGauge(BodyLimit(app, settings.max_body_bytes))
    app = ProtocolVersionCheck(app)
    if settings.oauth_enabled:
        log.info(
            "OAuth resource server for %s (static bearer tokens accepted too)", settings.oauth_resource_url
        )
    elif settings.auth_tokens:
        tokens = StaticTokens([t.get_secret_value() for t in settings.auth_tokens], principal_key(settings))
        app = BearerAuth(app, tokens)
    elif settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "HTTP on %s without bearer tokens or OAuth: anyone who can reach it can use it", settings.host
        )
    return app


async def serve_http(server: MCPServer[Any], settings: Settings) -> None:
    import uvicorn

    from tl_mcp.http_guard import ConnectionLimits, uvicorn_config

    app = build_http_app(server, settings)
    config = uvicorn_config(
        app,
        ConnectionLimits(settings.max_connections, settings.read_timeout_s),
        host=settings.host,
        port=settings.port,
        # Our stderr logging handles uvicorn's loggers; its default config writes access logs to stdout.
        log_config=None,
        log_level=settings.log_level.lower(),
        lifespan="on",
    )
    log.info(
        "tl-mcp %s: streamable HTTP on http://%s:%s%s", __version__, settings.host, settings.port, MCP_PATH
    )
    await uvicorn.Server(config).serve()
