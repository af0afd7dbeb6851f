"""Resumable SSE streams on stateful HTTP: a bounded in-memory `EventStore` for the SDK.

Every message the server sends on a response stream is kept, with an event id, in a ring per stream;
a client whose stream dropped reconnects (GET with `Last-Event-ID` and its `Mcp-Session-Id`) and gets
what came after that id, then the rest live, up to the response. A 2025-11-25 client also gets a
priming event (an id and no data) with a `retry:` interval before anything else, so it can resume a
stream even before the first message.

Bounds (all per process; the README's resumability section mirrors them):
- a stream keeps its newest `MAX_EVENTS` events and `MAX_BYTES` bytes, dropping the oldest;
- at most `MAX_STREAMS` streams are kept, the one written least recently is dropped first;
- a stream nobody wrote to for `TTL_S` seconds is dropped (a live call writes at least every few
  seconds: progress, or the relay's heartbeat).
Resuming from an event that is no longer kept answers the request with an error that says so, rather
than a stream with a hole in it.

The SDK hands one store to every session and names streams by request id, which clients choose: two
sessions both have a request 1. So streams belong to the session that wrote them (`StreamOwners`
records which one that is for each HTTP request), and a session can only resume its own streams; the
SDK already refuses a session id presented with another caller's credentials.

Stateless HTTP (`TL_MCP_STATE_KEYS`, replicas) has no sessions, and the SDK keeps no events there; the
2026-07-28 revision removed resumability. There, job handles (`wait_s`, `wait_for_task`) are how a long
call outlives one stream.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import anyio
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    MCP_SESSION_ID_HEADER,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamId,
)
from mcp.shared.dispatcher import coerce_request_id
from mcp_types import CONNECTION_CLOSED, ErrorData, JSONRPCError, JSONRPCMessage, JSONRPCResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MAX_EVENTS = 1_000
MAX_BYTES = 512 * 1024
MAX_STREAMS = 256
TTL_S = 300.0
#: The `retry:` interval (ms) suggested to clients in the priming event.
RETRY_MS = 1_000
#: Stream ids longer than this are not carried in event ids (a resume then cannot name its request).
_MAX_TAG = 96


class _Owner:
    """One session's identity for its streams (compared by identity; weakly indexed by session id)."""


_owner: ContextVar[_Owner | None] = ContextVar("tl_mcp_stream_owner", default=None)
#: What streams written outside any HTTP request belong to (the SDK calls the store only from requests).
_UNOWNED = _Owner()


class StreamOwners:
    """ASGI middleware: tells the store which session the current request (and what it starts) belongs to.

    A request without `Mcp-Session-Id` may open a session: it gets a new owner, and the session's own
    task, started while that request is served, carries it along. The session id in the response
    headers then ties later requests of that session to the same owner.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._by_session: weakref.WeakValueDictionary[str, _Owner] = weakref.WeakValueDictionary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        session_id = Headers(scope=scope).get(MCP_SESSION_ID_HEADER)
        if session_id is not None:
            # None for a session this process does not know: the SDK answers 404 before any stream.
            token = _owner.set(self._by_session.get(session_id))
            try:
                await self._app(scope, receive, send)
            finally:
                _owner.reset(token)
            return
        owner = _Owner()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.lower() == MCP_SESSION_ID_HEADER.encode():
                        self._by_session[value.decode("latin-1")] = owner
            await send(message)

        token = _owner.set(owner)
        try:
            await self._app(scope, receive, watch)
        finally:
            _owner.reset(token)


@dataclass(frozen=True)
class _Event:
    seq: int
    message: JSONRPCMessage | None
    size: int


@dataclass(eq=False)
class _Stream:
    owner: _Owner
    stream_id: StreamId
    token: str
    tag: str
    written: float
    events: deque[_Event] = field(default_factory=deque)
    size: int = 0
    next_seq: int = 1
    changed: anyio.Event = field(default_factory=anyio.Event)

    def event_id(self, seq: int) -> EventId:
        return f"{self.token}.{seq}.{self.tag}"

    def first_kept(self) -> int:
        return self.events[0].seq if self.events else self.next_seq


def _tag(stream_id: StreamId) -> str:
    tag = base64.urlsafe_b64encode(stream_id.encode()).decode().rstrip("=")
    return tag if len(tag) <= _MAX_TAG else ""


def _parse(event_id: EventId) -> tuple[str, int, StreamId | None] | None:
    """(stream token, sequence number, stream id if the id carries it); None when it is not ours."""
    token, _, rest = event_id.partition(".")
    seq, _, tag = rest.partition(".")
    if not token or not seq.isdigit():
        return None
    try:
        stream_id = base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4)).decode() if tag else None
    except (binascii.Error, UnicodeDecodeError):
        stream_id = None
    return token, int(seq), stream_id


class BoundedEventStore(EventStore):
    """The SDK's `EventStore`: per-stream rings in memory, bounded as the module docstring says."""

    def __init__(
        self,
        *,
        max_events: int = MAX_EVENTS,
        max_bytes: int = MAX_BYTES,
        max_streams: int = MAX_STREAMS,
        ttl_s: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._max_streams = max_streams
        self._ttl_s = ttl_s
        self._clock = clock
        #: By token, least recently written first.
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._by_key: dict[tuple[_Owner, StreamId], _Stream] = {}

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        now = self._clock()
        self._expire(now)
        owner = _owner.get() or _UNOWNED
        stream = self._by_key.get((owner, stream_id))
        if stream is None:
            stream = self._open(owner, stream_id, now)
        size = len(message.model_dump_json(by_alias=True, exclude_unset=True)) if message is not None else 0
        event = _Event(stream.next_seq, message, size)
        stream.next_seq += 1
        stream.events.append(event)
        stream.size += size
        # The newest event always stays, however large: it may be the response itself.
        while len(stream.events) > 1 and (
            len(stream.events) > self._max_events or stream.size > self._max_bytes
        ):
            stream.size -= stream.events.popleft().size
        stream.written = now
        self._streams.move_to_end(stream.token)
        changed, stream.changed = stream.changed, anyio.Event()
        changed.set()
        return stream.event_id(event.seq)

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        parsed = _parse(last_event_id)
        if parsed is None:
            log.info("a client asked to resume from an event id this server never issued")
            return None
        token, cursor, stream_id = parsed
        self._expire(self._clock())
        stream = self._streams.get(token)
        # Another session's stream is refused exactly like one that is gone: it reveals nothing.
        if stream is None or stream.owner is not (_owner.get() or _UNOWNED):
            await self._refuse(stream_id, send_callback, "its events are no longer kept")
            return None
        while True:
            if stream.first_kept() > cursor + 1 or self._streams.get(token) is not stream:
                await self._refuse(stream_id, send_callback, "events after the last one it got were dropped")
                return None
            for event in [e for e in stream.events if e.seq > cursor]:
                cursor = event.seq
                if event.message is None:
                    continue
                await send_callback(EventMessage(event.message, stream.event_id(event.seq)))
                if isinstance(event.message, JSONRPCResponse | JSONRPCError):
                    return None
            if any(e.seq > cursor for e in stream.events):
                continue
            if stream.stream_id == GET_STREAM_KEY:
                # Caught up: the SDK's own live tail of the session's standalone stream takes over.
                return stream.stream_id
            # The SDK's live tail would miss what arrives while it sets itself up, so tail here.
            with anyio.move_on_after(self._ttl_s):
                await stream.changed.wait()
                continue
            return None

    async def _refuse(self, stream_id: StreamId | None, send_callback: EventCallback, why: str) -> None:
        """End a request's resumed stream with an error the caller can act on, not with silence."""
        log.info("could not resume a stream: %s", why)
        if stream_id is None or stream_id == GET_STREAM_KEY:
            return
        error = ErrorData(
            code=CONNECTION_CLOSED,
            message=(
                f"This response stream cannot be resumed: {why}. The server keeps a stream for "
                f"{self._ttl_s:.0f} s after its last event, up to {self._max_events:,} events and "
                f"{self._max_bytes // 1024:,} KiB, and at most {self._max_streams:,} streams. The call may "
                "have finished meanwhile; call the tool again (for long calls pass wait_s and follow "
                "the job_id with wait_for_task)."
            ),
        )
        answer = JSONRPCError(jsonrpc="2.0", id=coerce_request_id(stream_id), error=error)
        await send_callback(EventMessage(answer))

    def _open(self, owner: _Owner, stream_id: StreamId, now: float) -> _Stream:
        while len(self._streams) >= self._max_streams:
            _, oldest = self._streams.popitem(last=False)
            self._drop(oldest)
            log.debug("dropped the least recently written SSE stream (%d streams kept)", self._max_streams)
        stream = _Stream(owner, stream_id, secrets.token_urlsafe(12), _tag(stream_id), now)
        self._streams[stream.token] = stream
        self._by_key[(owner, stream_id)] = stream
        return stream

    def _expire(self, now: float) -> None:
        while self._streams:
            oldest = next(iter(self._streams.values()))
            if now - oldest.written <= self._ttl_s:
                return
            del self._streams[oldest.token]
            self._drop(oldest)

    def _drop(self, stream: _Stream) -> None:
        if self._by_key.get((stream.owner, stream.stream_id)) is stream:
            del self._by_key[(stream.owner, stream.stream_id)]
        # Wake a client tailing it, so it learns the stream is gone instead of waiting out the TTL.
        stream.changed.set()
