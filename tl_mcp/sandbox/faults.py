"""Fault injection as ASGI middleware, off unless ``FaultConfig.rules`` is set.

Kinds: ``latency`` (sleep, then serve), ``rate_limit`` (429 + Retry-After), ``server_error`` (5xx JSON),
``drop`` (headers promising a body, then the connection closes mid-body), ``truncate_stream`` (a streaming
response ends after ``after_chunks`` body chunks, with no terminal event), ``malformed_json`` (the JSON
body is cut in half; on a streamed body, SSE or NDJSON, only chunk ``after_chunks`` is broken) and ``stall``
(left to the handler, which pauses mid-response: `/responses` keeps sending keepalives meanwhile).
``every_nth`` counts matching requests per rule, so tests are deterministic. The rules that fired on a
request are in ``request.state.faults`` for handlers that act on them.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tl_mcp.sandbox.config import FaultConfig, FaultRule

log = logging.getLogger(__name__)


class DroppedConnection(Exception):
    """Raised inside the server to abort a response mid-body (uvicorn then closes the socket)."""


class FaultInjector:
    def __init__(self, app: ASGIApp, config: FaultConfig, prefix: str = "/v1.3") -> None:
        self.app = app
        self.config = config
        self.prefix = prefix
        self._patterns = [re.compile(rule.path) for rule in config.rules]
        self._counts = [0] * len(config.rules)
        self._fired = [0] * len(config.rules)
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()

    def _pick(self, method: str, path: str) -> list[FaultRule]:
        chosen: list[FaultRule] = []
        with self._lock:
            for i, rule in enumerate(self.config.rules):
                if rule.methods and method not in rule.methods:
                    continue
                if not self._patterns[i].search(path):
                    continue
                if rule.max_times is not None and self._fired[i] >= rule.max_times:
                    continue
                self._counts[i] += 1
                if rule.every_nth is not None:
                    fire = self._counts[i] % rule.every_nth == 0
                elif rule.probability is not None:
                    fire = self._rng.random() < rule.probability
                else:
                    fire = True
                if fire:
                    self._fired[i] += 1
                    chosen.append(rule)
        return chosen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(self.prefix):
            path = path[len(self.prefix) :]
        rules = self._pick(scope["method"], path)
        if not rules:
            await self.app(scope, receive, send)
            return
        log.info("fault injection on %s %s: %s", scope["method"], path, [r.kind for r in rules])
        scope.setdefault("state", {})["faults"] = tuple(rules)
        for rule in rules:
            if rule.kind == "latency":
                await anyio.sleep(rule.latency_s)
        for rule in rules:
            if rule.kind == "rate_limit":
                await _json(
                    send,
                    429,
                    {"code": "too_many_requests", "message": "Injected rate limit; retry later."},
                    [(b"retry-after", str(rule.retry_after_s).encode())],
                )
                return
            if rule.kind == "server_error":
                await _json(
                    send, rule.status, {"code": "internal_error", "message": "Injected server error."}, []
                )
                return
            if rule.kind == "drop":
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"data": [', "more_body": True})
                raise DroppedConnection("injected connection drop")
        wrapped = send
        for rule in rules:
            if rule.kind == "truncate_stream":
                wrapped = _truncating(wrapped, rule.after_chunks)
            elif rule.kind == "malformed_json":
                wrapped = _malforming(wrapped, rule.after_chunks)
        await self.app(scope, receive, wrapped)


async def _json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def _truncating(send: Send, after: int) -> Send:
    state = {"chunks": 0, "done": False}

    async def wrapped(message: Message) -> None:
        if state["done"]:
            return
        if message["type"] == "http.response.body" and message.get("body"):
            if state["chunks"] >= after:
                state["done"] = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            state["chunks"] += 1
        await send(message)

    return wrapped


_STREAM_TYPES = (b"text/event-stream", b"application/x-ndjson")


def _malforming(send: Send, stream_chunk: int) -> Send:
    start: dict[str, Message] = {}
    body = bytearray()
    state = {"streaming": False, "chunks": 0}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if content_type.startswith(_STREAM_TYPES):
                # A stream stays a stream: one event arrives broken, the rest flow as they are produced.
                state["streaming"] = True
                await send(message)
                return
            start["m"] = message
            return
        if message["type"] == "http.response.body" and state["streaming"]:
            chunk = message.get("body", b"")
            if chunk:
                if state["chunks"] == stream_chunk:
                    message = {**message, "body": _break_json(chunk)}
                state["chunks"] += 1
            await send(message)
            return
        if message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            cut = bytes(body[: max(1, len(body) // 2)])
            headers = [(k, v) for k, v in start["m"].get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(cut)).encode()))
            await send({**start["m"], "headers": headers})
            await send({"type": "http.response.body", "body": cut})
            return
        await send(message)

    return wrapped


def _break_json(chunk: bytes) -> bytes:
    """Cut the JSON of an SSE ``data:`` line (or an NDJSON line) in half, keeping the framing intact."""
    lines = chunk.split(b"\n")
    for i, line in enumerate(lines):
        payload = line[len(b"data: ") :] if line.startswith(b"data: ") else line
        if payload.startswith((b"{", b"[")) and len(payload) > 1:
            lines[i] = line[: len(line) - len(payload)] + payload[: len(payload) // 2]
            break
    return b"\n".join(lines)
