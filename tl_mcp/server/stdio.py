"""stdio that answers every line: the SDK's reader silently drops a line it cannot parse as one message.

A line that is not JSON gets `-32700 Parse error`; JSON that is not a JSON-RPC message gets `-32600
Invalid Request`, both with id null unless the id could be read. A batch (a JSON array) is run
when the session negotiated 2025-03-26, the one revision that has batches, and its responses go
back as one array; at any other version it gets `-32600` saying so.
"""

from __future__ import annotations

import abc
import logging
from collections import deque
from contextvars import Context
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self, cast

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    jsonrpc_message_adapter,
)
from pydantic import RootModel, ValidationError

from tl_mcp.server.app import lowlevel

log = logging.getLogger(__name__)

#: The only protocol revision with JSON-RPC batches (added in it, removed in 2025-06-18).
BATCH_VERSION: Final = "2025-03-26"
ONE_PER_LINE: Final = "Send one JSON-RPC message per line (UTF-8 JSON, no newline inside it)."


class _BatchReply(RootModel[list[JSONRPCResponse | JSONRPCError]]):
    """The array answer to a batch; the SDK's stdout writer only calls `model_dump_json` on it."""


def _error(code: int, message: str, request_id: RequestId | None = None) -> JSONRPCError:
    # Every field given explicitly: the stdout writer drops fields that were left unset.
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))


def _id_of(value: object) -> RequestId | None:
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, str | int) and not isinstance(found, bool) else None


@dataclass
class _Batch:
    waiting: set[RequestId]
    replies: list[JSONRPCResponse | JSONRPCError] = field(default_factory=list)


class _Guard:
    """What the reader and the writer share: the negotiated version and the open batches."""

    def __init__(self, out: WriteStream[SessionMessage]) -> None:
        self.out = out
        self.version: str | None = None
        self.initialize_ids: set[RequestId] = set()
        self.batches: list[_Batch] = []


class _Closing(abc.ABC):
    """`async with` closes the stream, as the SDK's memory streams do."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None


class GuardedReader(_Closing):
    """The SDK's stdin stream, with the lines it could not parse answered instead of dropped."""

    def __init__(self, inner: ReadStream[SessionMessage | Exception], guard: _Guard) -> None:
        self._inner = inner
        self._guard = guard
        self._queued: deque[SessionMessage] = deque()

    @property
    def last_context(self) -> Context | None:
        # The SDK's dispatcher runs each message in its sender's context when the stream has one.
        context: Context | None = getattr(self._inner, "last_context", None)
        return context

    async def receive(self) -> SessionMessage | Exception:
        while not self._queued:
            item = await self._inner.receive()
            if isinstance(item, SessionMessage):
                self._queued.append(item)
            else:
                await self._answer(item)
        item = self._queued.popleft()
        if isinstance(item.message, JSONRPCRequest) and item.message.method == "initialize":
            self._guard.initialize_ids.add(item.message.id)
        return item

    async def _answer(self, exc: Exception) -> None:
        if not isinstance(exc, ValidationError):
            await self._send(_error(PARSE_ERROR, f"Parse error: the line could not be read. {ONE_PER_LINE}"))
            return
        errors = exc.errors()
        first = errors[0] if errors else None
        raw: object = first.get("input") if first else None
        if first is not None and first["type"] == "json_invalid":
            if isinstance(raw, str) and not raw.strip():
                return  # an empty line carries nothing to answer
            await self._send(
                _error(
                    PARSE_ERROR, f"Parse error: the line is not valid JSON ({first['msg']}). {ONE_PER_LINE}"
                )
            )
            return
        if isinstance(raw, list):
            await self._batch(raw)
            return
        await self._send(
            _error(
                INVALID_REQUEST,
                "Invalid Request: not a JSON-RPC 2.0 request, notification or response "
                f'(each needs "jsonrpc": "2.0" and a "method" or a "result"/"error"). {ONE_PER_LINE}',
                next((_id_of(e["input"]) for e in errors if isinstance(e.get("input"), dict)), None),
            )
        )

    async def _batch(self, elements: list[Any]) -> None:
        if self._guard.version != BATCH_VERSION:
            era = f"protocol version {self._guard.version}" if self._guard.version else "this session"
            await self._send(
                _error(
                    INVALID_REQUEST,
                    f"Invalid Request: JSON-RPC batches are not supported at {era}; only {BATCH_VERSION} "
                    f"has them. {ONE_PER_LINE}",
                )
            )
            return
        if not elements:
            await self._send(_error(INVALID_REQUEST, "Invalid Request: an empty batch."))
            return
        batch = _Batch(waiting=set())
        for element in elements:
            try:
                message = jsonrpc_message_adapter.validate_python(element, by_name=False)
            except ValidationError:
                batch.replies.append(
                    _error(INVALID_REQUEST, "Invalid Request: a batch element is not a JSON-RPC message.")
                )
                continue
            if isinstance(message, JSONRPCRequest):
                batch.waiting.add(message.id)
            self._queued.append(SessionMessage(message))
        if batch.waiting:
            self._guard.batches.append(batch)
        elif batch.replies:
            await self._guard.out.send(SessionMessage(cast(JSONRPCMessage, _BatchReply(batch.replies))))

    async def _send(self, error: JSONRPCError) -> None:
        log.info("answered an unreadable stdin line with %s", error.error.code)
        await self._guard.out.send(SessionMessage(error))

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class GuardedWriter(_Closing):
    """The SDK's stdout stream, learning the negotiated version and gathering batch responses."""

    def __init__(self, guard: _Guard) -> None:
        self._guard = guard

    async def send(self, item: SessionMessage, /) -> None:
        message = item.message
        if isinstance(message, JSONRPCResponse) and message.id in self._guard.initialize_ids:
            self._guard.initialize_ids.discard(message.id)
            negotiated = message.result.get("protocolVersion")
            self._guard.version = negotiated if isinstance(negotiated, str) else None
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
            for batch in self._guard.batches:
                if message.id in batch.waiting:
                    batch.waiting.discard(message.id)
                    batch.replies.append(message)
                    if not batch.waiting:
                        self._guard.batches.remove(batch)
                        reply = _BatchReply(batch.replies)
                        await self._guard.out.send(SessionMessage(cast(JSONRPCMessage, reply)))
                    return
        await self._guard.out.send(item)

    async def aclose(self) -> None:
        await self._guard.out.aclose()


async def run_stdio(server: MCPServer[Any]) -> None:
    """`server.run_stdio_async()`, with every stdin line answered (see the module docstring)."""
    low = lowlevel(server)
    async with stdio_server() as (read_stream, write_stream):
        guard = _Guard(write_stream)
        await low.run(
            GuardedReader(read_stream, guard), GuardedWriter(guard), low.create_initialization_options()
        )
