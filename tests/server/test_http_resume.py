"""Resumable SSE on stateful HTTP: event ids, a priming event with `retry:`, and `Last-Event-ID` replay.

The first tests read the raw stream with httpx2, so they see exactly what a client gets: they drop the
connection in the middle of a streaming Jockey answer and reconnect with the last id. The last ones do the
same with real MCP clients: the Python SDK's own reconnect, and the TypeScript SDK's resumption token on a
new transport (tests/clients/ts/resume.mjs, when node and npm are on PATH).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http import EventMessage
from mcp_types import CONNECTION_CLOSED, JSONRPCNotification

from tests.newcomer.newcomer_support import CLIENTS, clean_env, npm_ci
from tests.server.conftest import ProgressRecorder, World, loopback_socket, serve_app
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


# ------------------------------------------------------------------ real MCP clients resuming

QUESTION = "What costs two dollars? Describe every moment that shows it."
#: Progress messages with text a client sees before its connection drops.
DROP_AFTER = 3


#: The blank line that ends an SSE event, in each line-ending the spec allows (the SDK server sends CRLF).
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class _CutAfterProgress(httpx2.AsyncByteStream):
    """An SSE body that breaks like a dropped connection once `after` progress events with text are out."""

    def __init__(self, inner: httpx2.AsyncByteStream, after: int, dropped: list[str]) -> None:
        self._inner, self._after, self._dropped = inner, after, dropped

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen, buffered = 0, b""
        async for chunk in self._inner:
            buffered += chunk
            while (end := _EVENT_END.search(buffered)) is not None:
                raw, buffered = buffered[: end.end()], buffered[end.end() :]
                yield raw
                data = b"".join(line[5:] for line in raw.splitlines() if line.startswith(b"data:"))
                message = json.loads(data) if data.strip() else {}
                if message.get("method") == "notifications/progress" and message["params"].get("message"):
                    seen += 1
                    if seen == self._after:
                        self._dropped.append("dropped")
                        await self._inner.aclose()
                        raise httpx2.ReadError("connection reset by peer (the test drops it)")
        if buffered:
            yield buffered

    async def aclose(self) -> None:
        await self._inner.aclose()


class DroppingNetwork(httpx2.AsyncBaseTransport):
    """The client's network: the stream answering the tool call breaks mid-answer, once; every request
    is recorded, so the test sees how the client came back."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.dropped: list[str] = []
        self.requests: list[tuple[str, str | None]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append((request.method, request.headers.get("last-event-id")))
        response = await self._inner.handle_async_request(request)
        cut = request.method == "POST" and b'"tools/call"' in request.content and not self.dropped
        if not cut or "text/event-stream" not in response.headers.get("content-type", ""):
            return response
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_CutAfterProgress(response.stream, DROP_AFTER, self.dropped),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_the_python_sdk_client_resumes_a_dropped_answer_by_itself(world: World) -> None:
    network = DroppingNetwork()
    progress = ProgressRecorder()
    http = httpx2.AsyncClient(transport=network, headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
    async with (
        stateful_server(world) as url,
        http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as c,
    ):
        args = {"knowledge_store_id": world.knowledge_store_id, "input": QUESTION}
        with anyio.fail_after(120):
            result = await c.call_tool("create_response", args, progress_callback=progress)
    assert network.dropped == ["dropped"], "the answer's stream was cut once"
    assert not result.is_error and isinstance(result.structured_content, dict)
    answer = result.structured_content["text"]
    # The client came back on its own with a GET carrying the last event id it had seen.
    resumed = [last for method, last in network.requests if method == "GET" and last]
    assert len(resumed) == 1, network.requests
    texts = [m for _, _, m in progress.calls if m]
    assert len(texts) > DROP_AFTER, "nothing of the answer was left to stream after the reconnect"
    assert "".join(texts) == answer


@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None, reason="needs node and npm")
async def test_the_typescript_sdk_client_resumes_with_its_token_on_a_new_transport(world: World) -> None:
    npm_ci(CLIENTS / "ts")
    async with stateful_server(world) as url:
        plan = {
            "url": url,
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "name": "create_response",
            "arguments": {"knowledge_store_id": world.knowledge_store_id, "input": QUESTION},
            "dropAfter": DROP_AFTER,
        }
        with anyio.fail_after(240):
            proc = await anyio.run_process(
                ["node", "resume.mjs", json.dumps(plan)], cwd=CLIENTS / "ts", env=clean_env(), check=False
            )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    seen = json.loads(proc.stdout)
    assert seen["error"] is None, seen
    assert seen["sessionId"] and seen["token"]
    assert len(seen["before"]) == DROP_AFTER
    assert seen["after"], "nothing of the answer was left to stream after the reconnect"
    result = seen["result"]
    assert result["isError"] is False
    assert "".join(seen["before"] + seen["after"]) == result["structuredContent"]["text"]
