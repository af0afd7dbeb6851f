"""Streamable HTTP: health check, bearer tokens, Host/Origin checks, streamed progress in both eras."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.server.conftest import MODES, World, call_ok, loopback_socket, serve_app
from tl_mcp.server import build_http_app, build_server

pytestmark = pytest.mark.anyio

TOKEN = "tok-" + "s3cr3t" * 4


@asynccontextmanager
async def serving(world: World) -> AsyncIterator[str]:
    settings = world.settings(auth_tokens=[TOKEN, "second-token-xyz"], transport="http")
    app = build_http_app(build_server(settings), settings)
    async with serve_app(app, loopback_socket()) as base:
        yield base


async def test_health_auth_and_dns_rebinding_checks(world: World) -> None:
    async with serving(world) as base, httpx2.AsyncClient(base_url=base) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        missing = await http.post("/mcp", json=body, headers=headers)
        assert missing.status_code == 401 and "Bearer" in missing.headers["www-authenticate"]
        wrong = await http.post("/mcp", json=body, headers={**headers, "authorization": "Bearer nope"})
        assert wrong.status_code == 401
        auth = {**headers, "authorization": f"Bearer {TOKEN}"}
        bad_host = await http.post("/mcp", json=body, headers={**auth, "host": "evil.example:80"})
        assert bad_host.status_code == 421
        bad_origin = await http.post("/mcp", json=body, headers={**auth, "origin": "https://evil.example"})
        assert bad_origin.status_code == 403
        assert TOKEN not in missing.text + wrong.text + bad_host.text + bad_origin.text


@pytest.mark.parametrize("mode", MODES)
async def test_tools_over_http_stream_progress(
    world: World, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(world) as base:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http), mode=mode) as c:
            messages: list[str] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                if message:
                    messages.append(message)

            result = await call_ok(
                c,
                "create_response",
                {"knowledge_store_id": world.knowledge_store_id, "input": "What costs two dollars?"},
                progress_callback=on_progress,
            )
            assert result.structured_content
            assert messages and "".join(messages) == result.structured_content["text"]
            listed = await call_ok(c, "list_indexes", {})
            assert listed.structured_content and listed.structured_content["backend"] == "sandbox"
    assert TOKEN not in caplog.text and world.sandbox.api_key not in caplog.text
