"""An upstream that echoes the API key back (in error bodies, codes, stream errors, transport errors) must
not get it into a tool result, a log line or an exception message."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from tests.reliability.conftest import API_KEY, Seed, assert_actionable, faulted
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


class _Chunks(httpx2.AsyncByteStream):
    """A body that arrives as a stream (a plain `content=` would be pre-read, unlike a real SSE answer),
    optionally breaking after its first chunk with a transport error that names the key."""

    def __init__(self, body: bytes, *, break_with: str | None = None) -> None:
        self._body = body
        self._break_with = break_with

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._body
        if self._break_with is not None:
            raise httpx2.ReadError(self._break_with)


class EchoingUpstream(httpx2.AsyncBaseTransport):
    """The real sandbox, except a few routes answer with the caller's own key in them."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        key = request.headers.get("x-api-key", "")
        path, method = request.url.path, request.method
        if method == "GET" and path.endswith("/v1.3/indexes"):
            return httpx2.Response(500, json={"code": "internal_error", "message": f"bad key {key}!"})
        if method == "GET" and path.endswith("/v1.3/knowledge-stores"):
            return httpx2.Response(400, json={"code": f"key_{key}", "message": f"key={key}"})
        if method == "GET" and path.endswith("/items"):
            raise httpx2.ReadError(f"connection reset while talking with key {key}")
        if method == "GET" and path.endswith("/videos"):
            return httpx2.Response(200, content=f'{{"data": [{{"id": "{key}'.encode())
        if method == "POST" and path.endswith("/responses"):
            created = {
                "type": "response.created",
                "response": {"id": "resp_1", "status": "in_progress", "session_id": "sess_1", "output": []},
            }
            error = {"type": "error", "error": {"code": f"c_{key}", "message": f"upstream saw {key}"}}
            sse = "text/event-stream"
            if b"break" in request.content:
                only_start = f"event: response.created\ndata: {json.dumps(created)}\n\n".encode()
                stream = _Chunks(only_start, break_with=f"reset by peer holding {key}")
                return httpx2.Response(200, headers={"content-type": sse}, stream=stream)
            body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in (created, error))
            return httpx2.Response(200, headers={"content-type": sse}, stream=_Chunks(body.encode()))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_key_echoed_by_the_upstream_never_reaches_results_or_logs(
    seed: Seed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    calls = [
        ("list_indexes", {}),
        ("list_knowledge_stores", {}),
        ("list_knowledge_store_items", {"knowledge_store_id": seed.knowledge_store_id}),
        ("list_videos", {"index_id": seed.index_id}),
        ("create_response", {"knowledge_store_id": seed.knowledge_store_id, "input": "apples?"}),
        ("create_response", {"knowledge_store_id": seed.knowledge_store_id, "input": "break it"}),
    ]
    seen: list[str] = []
    with faulted(seed, tmp_path) as env:
        server = build_server(env.settings(), transport=EchoingUpstream())
        async with Client(server) as c:
            for name, args in calls:
                result = await c.call_tool(name, args)
                text = assert_actionable(name, result)
                seen.append(text + repr(result))
    joined = "\n".join(seen)
    assert API_KEY not in joined
    assert API_KEY not in caplog.text
    # The errors still say what happened, with the key masked.
    assert "***" in joined
    assert "upstream saw ***" in joined and "reset by peer holding ***" in joined
