"""Resumable SSE on stateful HTTP: event ids, a priming event with `retry:`, and `Last-Event-ID` replay.

The client here is httpx2 reading the raw stream, so the test sees exactly what a client gets: it
drops the connection in the middle of a streaming Jockey answer and reconnects with the last id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server.streamable_http import EventMessage
from mcp_types import CONNECTION_CLOSED, JSONRPCNotification

from tests.server.conftest import World, loopback_socket, serve_app
from tests.server.sse import Event, events, open_session, tool_call
from tl_mcp.server import build_http_app, build_server
from tl_mcp.server.events import RETRY_MS, BoundedEventStore

pytestmark = pytest.mark.anyio

TOKEN = "tok-resume-" + "z" * 20
#: Pause before each upstream Jockey event, so the answer is still streaming when the client is back.
PACE_S = 0.05


class _Paced(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        buffered = b""
        async for chunk in self._inner:
            buffered += chunk
            *whole, buffered = buffered.split(b"\n\n")
            for event in whole:
                await anyio.sleep(PACE_S)
                yield event + b"\n\n"
        if buffered:
            yield buffered

    async def aclose(self) -> None:
        await self._inner.aclose()


class PacedJockey(httpx2.AsyncBaseTransport):
    """The real HTTP transport to the sandbox; only the /responses stream is slowed, event by event."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        if not request.url.path.endswith("/responses"):
            return response
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_Paced(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def stateful_server(world: World) -> AsyncIterator[str]:
    settings = world.settings(auth_tokens=[TOKEN], transport="http")
    app = build_http_app(build_server(settings, transport=PacedJockey()), settings)
    async with serve_app(app, loopback_socket()) as base:
        yield f"{base}/mcp"


def text_of(seen: list[Event]) -> str:
    return "".join(
        (m.get("params") or {}).get("message") or ""
        for e in seen
        if (m := e.message) is not None and m.get("method") == "notifications/progress"
    )


def ask(request_id: int, world: World) -> dict[str, Any]:
    question = "What costs two dollars? Describe every moment that shows it."
    return tool_call(
        request_id, "create_response", {"knowledge_store_id": world.knowledge_store_id, "input": question}
    )


async def test_a_dropped_jockey_stream_resumes_mid_answer_with_no_text_lost_or_repeated(world: World) -> None:
    async with stateful_server(world) as url, httpx2.AsyncClient(timeout=60) as http:
        session = await open_session(http, url, TOKEN)
        first: list[Event] = []
        async with http.stream("POST", url, json=ask(1, world), headers=session) as response:
            assert response.status_code == 200
            async for event in events(response):
                first.append(event)
                if len(text_of(first)) and sum(1 for e in first if e.message) >= 3:
                    break
        # Leaving the block closed the connection in the middle of the answer.
        priming = first[0]
        assert priming.id and priming.data == "" and priming.retry == RETRY_MS
        assert all(e.id for e in first)

        second: list[Event] = []
        resume = {**session, "last-event-id": first[-1].id or ""}
        with anyio.fail_after(60):
            async with http.stream("GET", url, headers=resume) as response:
                assert response.status_code == 200
                async for event in events(response):
                    second.append(event)
                    if (m := event.message) is not None and "id" in m:
                        break
        result = second[-1].message
        assert result is not None and result["id"] == 1 and "result" in result, result
        answer = result["result"]["structuredContent"]["text"]
        assert text_of(second), "nothing of the answer was left to stream after the reconnect"
        assert text_of(first) + text_of(second) == answer
        ids = [e.id for e in first + second if e.message is not None]
        assert all(ids) and len(set(ids)) == len(ids)


async def test_a_session_cannot_resume_another_sessions_stream(world: World) -> None:
    async with stateful_server(world) as url, httpx2.AsyncClient(timeout=60) as http:
        owner, other = await open_session(http, url, TOKEN), await open_session(http, url, TOKEN)
        async with http.stream("POST", url, json=ask(1, world), headers=owner) as response:
            seen = [e async for e in events(response)]
        theirs = next(e.id for e in seen if e.message is not None)
        assert theirs
        async with http.stream("GET", url, headers={**other, "last-event-id": theirs}) as response:
            refused = [e.message async for e in events(response) if e.message is not None]
        # The same request id, but the other session's answer is not replayed: an error says why.
        assert len(refused) == 1 and refused[0]["id"] == 1, refused
        error = refused[0]["error"]
        assert error["code"] == CONNECTION_CLOSED and "cannot be resumed" in error["message"]
        assert "call the tool again" in error["message"] and "result" not in refused[0]


def progress(n: int, text: str) -> JSONRPCNotification:
    params = {"progressToken": 1, "progress": n, "message": text}
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params=params)


async def replayed(store: BoundedEventStore, after: str) -> list[dict[str, Any]]:
    """What a resume after `after` sends until it would wait for live events (bounded here)."""
    sent: list[dict[str, Any]] = []

    async def send(event: EventMessage) -> None:
        sent.append(event.message.model_dump(by_alias=True, exclude_none=True))

    with anyio.move_on_after(0.3):
        await store.replay_events_after(after, send)
    return sent


def texts(sent: list[dict[str, Any]]) -> list[str]:
    return [m["params"]["message"] for m in sent if "params" in m]


async def test_the_store_is_bounded_by_events_bytes_streams_and_age() -> None:
    now = [0.0]
    store = BoundedEventStore(max_events=3, max_bytes=10_000, max_streams=2, ttl_s=60, clock=lambda: now[0])
    ids = [await store.store_event("1", progress(i, f"part {i}")) for i in range(5)]
    # The newest three are kept: a resume after any of them, or just before them, loses nothing...
    assert texts(await replayed(store, ids[2])) == ["part 3", "part 4"]
    assert texts(await replayed(store, ids[1])) == ["part 2", "part 3", "part 4"]
    # ...one from further back would leave a hole, so the request is answered with an error instead.
    [refused] = await replayed(store, ids[0])
    assert refused["id"] == 1 and "dropped" in refused["error"]["message"]

    small = BoundedEventStore(max_events=100, max_bytes=300, max_streams=2, ttl_s=60)
    sizes = [await small.store_event("1", progress(i, "x" * 100)) for i in range(4)]
    [refused] = await replayed(small, sizes[0])
    assert "dropped" in refused["error"]["message"]
    assert texts(await replayed(small, sizes[2])) == ["x" * 100]

    # A third stream drops the one written least recently...
    await store.store_event("2", progress(1, "two"))
    now[0] = 30.0
    three = await store.store_event("3", progress(1, "three"))
    [refused] = await replayed(store, ids[4])
    assert "no longer kept" in refused["error"]["message"]
    # ...and a stream nobody wrote to for the TTL is gone.
    assert await replayed(store, three) == []
    now[0] = 100.0
    await store.store_event("4", progress(1, "four"))
    [refused] = await replayed(store, three)
    assert refused["id"] == 3 and "no longer kept" in refused["error"]["message"]
