"""MCP logging: the server's own log records also reach the client that made the request.

Records of the `tl_mcp` loggers emitted while a request runs go to that request's client as
`notifications/message`, at or above the level the client asked for: `logging/setLevel` on the
handshake eras (per connection; nothing is sent before the client sets a level), the request's
`_meta` log-level opt-in on 2026-07-28. Every message is masked with the process-wide redactor
(`tl_mcp.redaction.SECRETS`) first. stderr logging is untouched: this handler only adds a copy.
"""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, get_args

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.connection import allowed_log_levels
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.session import ServerSession
from mcp.types import (
    EmptyResult,
    LoggingLevel,
    LoggingMessageNotification,
    LoggingMessageNotificationParams,
    RequestId,
    SetLevelRequestParams,
)
from mcp.types.version import MODERN_PROTOCOL_VERSIONS

from tl_mcp.redaction import SECRETS

#: RFC 5424 order, least severe first (the SDK's own ordering source).
LEVELS: Final[tuple[LoggingLevel, ...]] = get_args(LoggingLevel)
#: The logger tree whose records are forwarded: the server's own, not the SDK's or httpx's.
FORWARDED_LOGGER = "tl_mcp"
#: Where a handshake-era connection keeps the level its client asked for.
_LEVEL_KEY = "tl_mcp.client_log_level"
#: Log lines held for one request while the client reads slowly; beyond that they are dropped.
_BUFFER = 256


def mcp_level(levelno: int) -> LoggingLevel:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def _connection_state(session: ServerSession) -> dict[str, Any]:
    # `Connection.state` is the SDK's per-connection scratch space, but SDK 2.3 gives a request
    # context no public path to its connection yet (its TODO L54 "Context rework").
    state: dict[str, Any] = session._connection.state
    return state


@dataclass
class _RequestLog:
    """Where the log lines of one running request go, and which levels may go there."""

    levels: frozenset[LoggingLevel]
    send: MemoryObjectSendStream[tuple[LoggingLevel, str, str]]
    token: anyio.lowlevel.EventLoopToken
    thread: int = field(default_factory=threading.get_ident)

    def offer(self, level: LoggingLevel, logger: str, text: str) -> None:
        item = (level, logger, SECRETS.mask(text))
        try:
            if threading.get_ident() == self.thread:
                self.send.send_nowait(item)
            else:
                anyio.from_thread.run_sync(self.send.send_nowait, item, token=self.token)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError, RuntimeError):
            # Best effort, like the notification itself: a full buffer, a finished request (a
            # background job outliving its call) or a closed loop costs this line, never the call.
            pass


_current: ContextVar[_RequestLog | None] = ContextVar("tl_mcp_client_log", default=None)


class ClientLogHandler(logging.Handler):
    """Copies each record to the client of the request it was logged in, if that client asked."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = _current.get()
        if sink is None:
            return
        level = mcp_level(record.levelno)
        if level not in sink.levels:
            return
        try:
            text = record.getMessage()
        except Exception:  # a broken %-format must not break the request that logged it
            self.handleError(record)
            return
        sink.offer(level, record.name, text)


_HANDLER = ClientLogHandler()


def _requested_levels(ctx: ServerRequestContext[Any, Any]) -> frozenset[LoggingLevel]:
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return allowed_log_levels(ctx.protocol_version, ctx.meta)
    chosen = _connection_state(ctx.session).get(_LEVEL_KEY)
    if chosen not in LEVELS:
        return frozenset()
    return frozenset(LEVELS[LEVELS.index(chosen) :])


async def _deliver(
    session: ServerSession,
    request_id: RequestId,
    lines: MemoryObjectReceiveStream[tuple[LoggingLevel, str, str]],
) -> None:
    async with lines:
        async for level, logger, text in lines:
            # The notification itself, not the deprecated `send_log_message` (which warns on every
            # call): the level gate above already applied that method's rules for both eras, and a
            # request-scoped notification rides that request's stream on HTTP as the spec requires.
            message = LoggingMessageNotificationParams(level=level, data=text, logger=logger)
            await session.send_notification(
                LoggingMessageNotification(params=message), related_request_id=request_id
            )


def install_client_log(server: Server[Any]) -> None:
    """Serve `logging/setLevel` (which also declares the capability) and forward log records."""

    async def set_level(ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
        _connection_state(ctx.session)[_LEVEL_KEY] = params.level
        return EmptyResult()

    async def forward_logs(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is None or ctx.method == "initialize":
            return await call_next(ctx)
        levels = _requested_levels(ctx)
        if not levels:
            return await call_next(ctx)
        send, receive = anyio.create_memory_object_stream[tuple[LoggingLevel, str, str]](_BUFFER)
        sink = _RequestLog(
            levels=levels,
            send=send,
            token=anyio.lowlevel.current_token(),
        )
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            # Started before the sink is set, so what the delivery itself logs is not forwarded.
            tg.start_soon(_deliver, ctx.session, ctx.request_id, receive)
            reset = _current.set(sink)
            try:
                result = await call_next(ctx)
            except Exception as exc:
                # Raised inside the task group it would leave wrapped in an ExceptionGroup, which the
                # SDK answers as `code: 0`; the handler's own error (an MCPError's code, a tool's
                # isError) must reach the SDK unchanged, after the lines logged before it.
                failure = exc
            finally:
                _current.reset(reset)
                # Lines logged so far still go out, before the response (the task group waits).
                send.close()
        if failure is not None:
            raise failure
        return result

    server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    server.middleware.append(forward_logs)
    forwarded = logging.getLogger(FORWARDED_LOGGER)
    if _HANDLER not in forwarded.handlers:
        forwarded.addHandler(_HANDLER)
