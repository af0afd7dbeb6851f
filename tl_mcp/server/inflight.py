"""Cancellation on stateless HTTP: a process-wide registry of the requests in flight.

With `TL_MCP_STATE_KEYS` set the server runs the SDK's stateless HTTP mode, where every POST gets a
fresh transport and dispatcher. A 2025-era client's `notifications/cancelled` arrives in a POST of
its own, on a dispatcher that never saw the request it names, so the SDK drops it and the call runs
on. This middleware keeps every in-flight request of the process under (principal, session hint,
request id) and delivers the cancel there.

- The principal is who authenticated (a static token's number or an OAuth client/issuer/subject),
  so one caller can never cancel another caller's call; without authentication everyone is the same
  anonymous principal (a loopback-only server).
- Request ids are chosen by clients, and two clients of one principal may both have a call with the
  same id in flight. A cancel that names more than one call cancels none of them, and says so in the
  log: cancelling a call its sender did not make is worse than not cancelling.
- The registry is per process. On several replicas the load balancer may send the cancel to another
  replica than the call's: with shared state (`TL_MCP_REDIS_URL`) a cancel that finds nothing here is
  published to every replica, and the one running the call applies it. Tool calls are counted in
  Redis too, so a cancel whose (caller, request id) names calls on two replicas cancels neither, as
  in one process. Without it, that is logged, and the README says what to do (close the request's stream,
  which cancels it wherever it runs).
- The 2026-07-28 era cancels by closing the stream, and stateful sessions have their own dispatcher
  that already applies cancels: neither goes through this registry.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import anyio
from mcp import MCPError
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import principal_components
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, REQUEST_CANCELLED
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.jsonrpc_dispatcher import cancelled_request_id_from_params
from mcp_types import RequestId
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request

from tl_mcp.server.shared.base import CancelKey, SharedState

log = logging.getLogger(__name__)

Principal = tuple[str, str | None, str | None] | None
#: The longest passing a cancel on to the other replicas may take.
_BUS_S = 5.0
Key = CancelKey


def principal_of(request: Request) -> Principal:
    """Who made `request`: the authenticated token's principal, or None when nobody authenticated."""
    user = request.scope.get("user")
    return principal_components(user.access_token) if isinstance(user, AuthenticatedUser) else None


class InflightRequests:
    """Server middleware: registers legacy-era requests while they run and applies cancels to them."""

    def __init__(self) -> None:
        self._calls: dict[Key, list[anyio.CancelScope]] = {}
        self._bus: SharedState | None = None

    def attach(self, shared: SharedState) -> None:
        """Pass cancels for calls not running here to the other replicas, and apply theirs here."""
        self._bus = shared
        shared.on_cancel(self._delivered)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        request = ctx.request
        if not isinstance(request, Request) or ctx.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return await call_next(ctx)
        if ctx.request_id is None:
            if ctx.method == "notifications/cancelled":
                # A stateless POST's transport closes once the 202 is out, cancelling what still runs:
                # the cancel must reach the other replicas all the same (bounded, Redis may be slow).
                with anyio.CancelScope(shield=True), anyio.move_on_after(_BUS_S):
                    await self._cancel(request, ctx.params)
            return await call_next(ctx)
        key = _key(request, ctx.request_id)
        scope = anyio.CancelScope()
        self._calls.setdefault(key, []).append(scope)
        # Tool calls are what a cancel stops; counting them over the replicas keeps the one-call rule.
        counted = self._bus is not None and self._bus.replicated and ctx.method == "tools/call"
        if counted and self._bus is not None:
            with contextlib.suppress(ToolError):  # logged where it failed; the call itself goes on
                await self._bus.enter_call(key)
        try:
            with scope:
                return await call_next(ctx)
        finally:
            self._forget(key, scope)
            if counted and self._bus is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(ToolError):
                    await self._bus.leave_call(key)
        # Only a delivered cancel gets here. The 2025-era wire ends a request's stream only with a
        # response; the client stopped waiting for this one, so it is never shown as a result.
        raise MCPError(code=REQUEST_CANCELLED, message="Request cancelled by the client")

    def _forget(self, key: Key, scope: anyio.CancelScope) -> None:
        scopes = self._calls.get(key, [])
        if scope in scopes:
            scopes.remove(scope)
        if not scopes:
            self._calls.pop(key, None)

    async def _cancel(self, request: Request, params: Mapping[str, Any] | None) -> None:
        request_id = cancelled_request_id_from_params(params)
        if request_id is None:
            return
        key = _key(request, request_id)
        if self._bus is not None and self._bus.replicated:
            try:
                everywhere = await self._bus.calls(key)
            except ToolError:
                everywhere = 0  # Redis did not answer (logged where it failed): go by this process
            if everywhere > 1:
                _ambiguous(key, everywhere)
                return
            if not self._calls.get(key):
                log.info(
                    "notifications/cancelled for request %s: not running in this process, passing it to "
                    "the other replicas",
                    str(request_id)[:64],
                )
                with contextlib.suppress(ToolError):  # Redis did not answer: logged where it failed
                    await self._bus.publish_cancel(key)
                return
        self._apply(key, "the client's notifications/cancelled")

    def _delivered(self, key: Key) -> None:
        if self._calls.get(key):
            self._apply(key, "a notifications/cancelled that reached another replica")

    def _apply(self, key: Key, why: str) -> None:
        scopes = self._calls.get(key, [])
        shown = str(key[2])[:64]
        if len(scopes) == 1:
            scopes[0].cancel()
            log.info("cancelled request %s at %s", shown, why)
        elif scopes:
            _ambiguous(key, len(scopes))
        else:
            log.info(
                "notifications/cancelled for request %s: no such call is in flight in this process. "
                "It finished already, or it runs on another replica: a cancel cannot cross replicas "
                "without a shared bus; closing the request's stream cancels it wherever it runs.",
                shown,
            )


def _ambiguous(key: Key, count: int) -> None:
    log.warning(
        "notifications/cancelled for request %s names %d calls in flight from the same caller "
        "(clients sharing one token reuse request ids): cancelling none of them. Give each "
        "client its own token, or close the request's stream to cancel it.",
        str(key[2])[:64],
        count,
    )


def _key(request: Request, request_id: RequestId) -> Key:
    # A stateless server hands out no session id, but a client that sends one anyway narrows the match.
    hint = request.headers.get(MCP_SESSION_ID_HEADER)
    return principal_of(request), hint[:128] if hint else None, coerce_request_id(request_id)
