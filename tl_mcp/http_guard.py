"""uvicorn hardened against slow and numerous clients, for the MCP HTTP server and the standalone sandbox.

uvicorn (h11) keeps a connection open for as long as its request headers or body are still coming, and
accepts connections until the process runs out of file descriptors; asyncio then logs a traceback for
every failed ``accept()``. :func:`uvicorn_config` closes both holes:

- **read timeout**: a request's headers must be complete within ``read_timeout_s`` of its first byte (or
  of the connection), and its body may not stall longer than that while the application waits for it
  (a stall the application causes, by not reading, does not count).
- **connection cap**: at most ``max_connections`` at once, never more than the file-descriptor limit
  leaves room for. A new connection over the cap closes the one that has waited longest for request
  headers (an idle keep-alive or a slow client), so a flood of slow connections cannot lock out a
  client that sends its request at once; with every connection busy in a request, the new one gets
  ``503`` and is closed.
- **log volume**: warnings and errors of ``asyncio`` and ``uvicorn.error`` (accept errors such as EMFILE,
  malformed requests) are let through once per :data:`LOG_INTERVAL_S` per kind, with the count of the
  ones held back.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

#: File descriptors kept free of connections: the database, media files, worker threads, the log.
FD_RESERVE = 64
LOG_INTERVAL_S = 10.0
_NOISY_LOGGERS = ("asyncio", "uvicorn.error")
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    read_timeout_s: float

    def effective_max_connections(self) -> int:
        """The cap, lowered to what the process's file-descriptor limit allows."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or soft - FD_RESERVE >= self.max_connections:
            return self.max_connections
        fitted = max(1, soft - FD_RESERVE)
        log.warning(
            "at most %d connections (not %d): the open-file limit is %d; raise it (ulimit -n) to allow more",
            fitted,
            self.max_connections,
            soft,
        )
        return fitted


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """An h11 protocol class enforcing ``limits``; its connections share one cap."""
    cap = limits.effective_max_connections()
    timeout = limits.read_timeout_s

    class GuardedH11Protocol(H11Protocol):
        _read_timer: asyncio.TimerHandle | None = None
        #: When this connection started waiting for request headers; None while a request is in flight.
        _waiting_since: float | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= cap and not self._evict_one():
                transport.write(_BUSY)
                transport.close()
                return
            super().connection_made(transport)
            self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self.transport is not None:  # refused connections never made it past connection_made
                super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._track(data_arrived=True)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._track(data_arrived=False)

        def _track(self, *, data_arrived: bool) -> None:
            """Follow the request's state: which timer runs, and whether the connection may be evicted."""
            if self.transport.is_closing():
                self._disarm()
                return
            state = self.conn.their_state
            if state is h11.IDLE:
                if self._waiting_since is None:
                    self._waiting_since = time.monotonic()
                # An idle keep-alive connection is uvicorn's to close (timeout_keep_alive); once the next
                # request's first byte arrives, its headers are ours to time.
                if data_arrived and self._read_timer is None:
                    self._arm(self._headers_late)
            elif state is h11.SEND_BODY:
                self._waiting_since = None
                self._arm(self._body_stalled)
            else:
                self._waiting_since = None
                self._disarm()

        def _await_headers(self) -> None:
            self._waiting_since = time.monotonic()
            self._arm(self._headers_late)

        def _arm(self, callback: Callable[[], None]) -> None:
            self._disarm()
            self._read_timer = self.loop.call_later(timeout, callback)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _headers_late(self) -> None:
            self._read_timer = None
            if self.conn.their_state is h11.IDLE:
                self.transport.close()

        def _body_stalled(self) -> None:
            self._read_timer = None
            if self.conn.their_state is not h11.SEND_BODY:
                return
            if self.flow.read_paused:  # the application is not reading: not the client's fault
                self._arm(self._body_stalled)
                return
            self.transport.close()

        def _evict_one(self) -> bool:
            waiting = [
                c
                for c in self.connections
                if isinstance(c, GuardedH11Protocol) and c._waiting_since is not None
            ]
            if not waiting:
                return False
            oldest = min(waiting, key=lambda c: c._waiting_since or 0.0)
            oldest.transport.close()
            # connection_lost runs on a later loop turn: leave the set now so the count is right at once.
            self.connections.discard(oldest)
            oldest._waiting_since = None
            return True

    return GuardedH11Protocol


class RateLimitFilter(logging.Filter):
    """One record per ``interval_s`` for each kind (logger, level, first line of the message, exception
    type); the next one let through says how many were held back."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._interval, self._clock = interval_s, clock
        self._last: dict[tuple[str, int, str, str], float] = {}
        self._held: dict[tuple[str, int, str, str], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        kind = (record.name, record.levelno, str(record.msg).split("\n", 1)[0][:200], exc_type)
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._held[kind] = self._held.get(kind, 0) + 1
                return False
            if len(self._last) > 1000:  # kinds seen long ago: forget them rather than grow
                self._last = {k: t for k, t in self._last.items() if now - t < self._interval}
            self._last[kind] = now
            held = self._held.pop(kind, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {self._interval:.0f} s not logged]"
        return True


_filter = RateLimitFilter()


def uvicorn_config(app: Any, limits: ConnectionLimits, **options: Any) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app`` enforcing ``limits``, with the noisy loggers rate-limited."""
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
    return uvicorn.Config(app, http=guarded_protocol(limits), **options)
