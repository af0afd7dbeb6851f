"""What the HTTP endpoint admits: body size, argument sizes, and the per-token limits on tool calls and
on the requests they make upstream; each admitted call and upstream request is measured (`metrics.py`).

- A body over `max_body_bytes` is refused with 413 before any of it reaches the SDK, and a string
  argument over `max_argument_chars` with -32602 naming it: both are read into memory otherwise.
- A tool call over its token's budget (`limits.py`) gets an error result saying which limit and when
  to retry; the call does not run. An upstream request over budget waits its turn for up to
  `UPSTREAM_WAIT_S` (a job's next poll should not fail because the same token is busy elsewhere), then
  fails the call with the same words.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
import httpx2
from mcp import MCPError
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import INVALID_PARAMS, CallToolResult, TextContent
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tl_mcp.api.errors import RateLimitError
from tl_mcp.redaction import SECRETS, LineMasker, Redactor
from tl_mcp.server import metrics, tenants
from tl_mcp.server.limits import Limits, Refused
from tl_mcp.server.principals import current_principal
from tl_mcp.server.registry import all_tools

#: How long an upstream request waits for its token's budget before the call fails.
UPSTREAM_WAIT_S = 30.0
#: Tenants whose connection pools are kept (the least recently used beyond this are dropped).
MAX_TENANT_POOLS = 256
#: A chunked body over the limit is read on (and dropped) up to this many times the limit.
_DRAIN_FACTOR = 16
#: JSON-RPC's "invalid request" (the body is not one we will read).
_INVALID_REQUEST = -32600


class BodyLimit:
    """ASGI middleware: a request body larger than `max_bytes` gets 413 and is never handed on."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self._app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max:
            await self._refuse(scope, receive, send)
            return
        # Chunked bodies have no length up front: read up to the limit, then replay what was read.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                if message.get("more_body", False):
                    await _discard(receive, self._max * _DRAIN_FACTOR)
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            f"Request body too large: this server reads at most {self._max} bytes per request "
            "(TL_MCP_MAX_BODY_BYTES). Send less per call: pass a file path or URL instead of inline "
            "content, or split the work over several calls."
        )
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": _INVALID_REQUEST, "message": message}}
        await JSONResponse(body, status_code=413, headers={"connection": "close"})(scope, receive, send)


async def _discard(receive: Receive, budget: int) -> None:
    """Read and drop the rest of a refused body (up to `budget` bytes), so the client, still sending,
    reads the 413 instead of a reset connection."""
    dropped = 0
    while dropped <= budget:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _too_long(value: object, limit: int, where: str) -> str | None:
    """The path of the first string in `value` longer than `limit`, if any."""
    if isinstance(value, str):
        return where if len(value) > limit else None
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _too_long(item, limit, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


class CallGuard:
    """Server middleware: bounds `tools/call` arguments, applies the tool-call budget, and measures;
    with tenant keys, holds the request's key for everything it runs (`tenants.py`)."""

    def __init__(self, limits: Limits, *, max_argument_chars: int, tenant_keys: bool = False) -> None:
        self._limits = limits
        self._max_chars = max_argument_chars
        self._tenant_keys = tenant_keys
        self._catalogue = frozenset(spec.name for spec in all_tools())

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        request = ctx.request
        if not self._tenant_keys or not isinstance(request, Request):
            return await self._guarded(ctx, call_next)
        try:
            key = tenants.parse(request.headers.get(tenants.HEADER))
        except tenants.TenantKeyError as exc:
            raise MCPError(_INVALID_REQUEST, str(exc)) from None
        token = tenants.TENANT_KEY.set(key)
        try:
            return await self._guarded(ctx, call_next)
        finally:
            tenants.TENANT_KEY.reset(token)

    async def _guarded(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call" or ctx.request_id is None:
            return await call_next(ctx)
        params = ctx.params or {}
        name = params.get("name")
        # Only catalogue names become labels: anything a client sends would grow the metrics unbounded.
        tool = name if isinstance(name, str) and name in self._catalogue else "unknown"
        long = _too_long(params.get("arguments"), self._max_chars, "")
        if long is not None:
            metrics.TOOL_CALLS.labels(tool, "protocol_error").inc()
            raise MCPError(
                INVALID_PARAMS,
                f"Argument {long[:100]!r} of {tool} is longer than {self._max_chars} characters, the most "
                "this server accepts (TL_MCP_MAX_ARGUMENT_CHARS). Shorten it, or pass a file or URL.",
                data={"argument": long[:100], "max_chars": self._max_chars},
            )
        principal = current_principal()
        try:
            slot = await self._limits.enter("tool", principal)
        except Refused as refused:
            metrics.LIMITED.labels("tool", refused.reason).inc()
            metrics.TOOL_CALLS.labels(tool, "limited").inc()
            return refused_result(refused)
        started = time.perf_counter()
        outcome = "protocol_error"
        try:
            result = await call_next(ctx)
            failed = isinstance(result, CallToolResult) and result.is_error
            failed = failed or (isinstance(result, dict) and result.get("isError") is True)
            outcome = "error" if failed else "ok"
            return result
        finally:
            metrics.TOOL_CALLS.labels(tool, outcome).inc()
            metrics.TOOL_SECONDS.labels(tool).observe(time.perf_counter() - started)
            if slot is not None:
                with anyio.CancelScope(shield=True):
                    await self._limits.leave("tool", principal, slot)


def refused_result(refused: Refused) -> CallToolResult:
    seconds = math.ceil(refused.retry_after_s)
    return CallToolResult(
        content=[TextContent(type="text", text=refused.describe())],
        is_error=True,
        # Machine-readable too, for clients that back off on their own.
        _meta={"tl-mcp/retry_after_s": seconds, "tl-mcp/limit": f"{refused.kind}:{refused.reason}"},
    )


class _Releasing(httpx2.AsyncByteStream):
    """An upstream response body: its slot is given back when it closes, and a tenant's key in it is
    masked."""

    def __init__(
        self,
        inner: httpx2.AsyncByteStream,
        limits: Limits,
        principal: str,
        slot: str | None,
        key: str | None,
    ) -> None:
        self._inner = inner
        self._limits = limits
        self._principal = principal
        self._slot = slot
        self._masker = LineMasker(Redactor([key] if key else []))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            if masked := self._masker.feed(chunk):
                yield masked
        if tail := self._masker.flush():
            yield tail

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            slot, self._slot = self._slot, None
            if slot is not None:
                with anyio.CancelScope(shield=True):
                    await self._limits.leave("upstream", self._principal, slot)


class UpstreamTransport(httpx2.AsyncBaseTransport):
    """The API client's transport: each request counts against its caller's upstream budget, and is
    measured. With tenant keys, an authenticated request carries its tenant's key instead of the
    server's, over that tenant's own connection pool, and its answer is masked for that key."""

    def __init__(
        self,
        pool: Callable[[], httpx2.AsyncBaseTransport],
        limits: Limits,
        *,
        tenant_keys: bool = False,
    ) -> None:
        self._pool = pool
        self._shared = pool()
        self._limits = limits
        self._tenant_keys = tenant_keys
        #: tenant id -> its pool, least recently used first.
        self._tenants: OrderedDict[str, httpx2.AsyncBaseTransport] = OrderedDict()

    def _route(self, request: httpx2.Request) -> tuple[httpx2.AsyncBaseTransport, str | None]:
        if not self._tenant_keys or "x-api-key" not in request.headers:
            return self._shared, None
        key = tenants.TENANT_KEY.get()
        if key is None:
            raise tenants.missing_key()
        SECRETS.add(key)
        request.headers["x-api-key"] = key
        # Plain bytes, so the masking below sees what the API said (not a compressed form of it).
        request.headers["accept-encoding"] = "identity"
        name = tenants.tenant_id(key)
        pool = self._tenants.pop(name, None) or self._pool()
        self._tenants[name] = pool
        while len(self._tenants) > MAX_TENANT_POOLS:
            # Not closed here: a request may still be on it; its connections close when it is collected.
            self._tenants.popitem(last=False)
        return pool, key

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        method = request.method.upper()
        pool, key = self._route(request)
        principal = current_principal()
        slot = await self._admit(method, principal)
        started = time.perf_counter()
        response: httpx2.Response | None = None
        try:
            response = await pool.handle_async_request(request)
        finally:
            metrics.observe_upstream(method, started, response)
            if slot is not None and response is None:
                with anyio.CancelScope(shield=True):
                    await self._limits.leave("upstream", principal, slot)
        if slot is None and key is None:
            return response
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_Releasing(response.stream, self._limits, principal, slot, key),
            extensions=response.extensions,
            request=request,
        )

    async def _admit(self, method: str, principal: str) -> str | None:
        deadline = time.monotonic() + UPSTREAM_WAIT_S
        while True:
            try:
                return await self._limits.enter("upstream", principal)
            except Refused as refused:
                metrics.LIMITED.labels("upstream", refused.reason).inc()
                left = deadline - time.monotonic()
                if left <= 0:
                    metrics.UPSTREAM_REQUESTS.labels(method, "limited").inc()
                    raise RateLimitError(
                        refused.describe(), code="tl_mcp_token_limit", retry_after=refused.retry_after_s
                    ) from None
                # A slot frees when some request of this token ends: check again soon, not at once.
                await anyio.sleep(min(left, refused.retry_after_s if refused.reason == "rate" else 0.05))

    async def aclose(self) -> None:
        pools = {id(pool): pool for pool in (self._shared, *self._tenants.values())}
        for pool in pools.values():
            await pool.aclose()
