"""Tenant keys (TL_MCP_TENANT_KEYS) on a real loopback port against a sandbox that accepts two tenants'
keys besides the server's: each request's key is the one upstream sees, over its own pool; a request
without one never borrows the server's; job ids belong to the (token, key) pair; no key is shown."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from tests.server.conftest import call_ok, loopback_socket, sandbox_settings, seed_library, serve_app, text_of
from tests.server.sse import HEADERS, events, rpc
from tl_mcp.samples import make_sample_video
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_http_app, build_server
from tl_mcp.server.guard import UpstreamTransport
from tl_mcp.server.limits import Budget, Limits, MemoryLimits
from tl_mcp.server.tenants import TENANT_KEY

pytestmark = pytest.mark.anyio

TOKEN_1 = "tok-1-" + "tenants" * 3
TOKEN_2 = "tok-2-" + "tenants" * 3
KEY_A = "tlk_tenantA_" + "a1" * 12
KEY_B = "tlk_tenantB_" + "b2" * 12
SERVER_KEY = "tlk_server_" + "c3" * 12


@dataclass
class Place:
    sandbox: EmbeddedSandbox
    root: Path
    knowledge_store_id: str


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    root = tmp_path_factory.mktemp("tenants")
    media = root / "media"
    media.mkdir()
    sample = make_sample_video(media / "clip.mp4", speech=False)
    keys = tuple(SecretStr(k) for k in (SERVER_KEY, KEY_A, KEY_B))
    sandbox = EmbeddedSandbox.start_in_thread(
        root / "sandbox-data", api_key=SERVER_KEY, analyzers="none", api_keys=keys
    )
    try:

        async def setup() -> dict[str, str]:
            async with Client(build_server(sandbox_settings(sandbox, root / "state", media))) as c:
                return await seed_library(c, sample.path, "tenants")

        ids = anyio.run(setup)
        yield Place(sandbox, root, ids["knowledge_store_id"])
    finally:
        sandbox.stop()


class Recording(httpx2.AsyncBaseTransport):
    """The network boundary, observed: which key each request to the API carried."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.keys: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.keys.append(request.headers.get("x-api-key", ""))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def serving(place: Place, wire: Recording) -> AsyncIterator[str]:
    settings = sandbox_settings(
        place.sandbox,
        place.root / "state",
        None,
        transport="http",
        auth_tokens=[TOKEN_1, TOKEN_2],
        tenant_keys=True,
    )
    app = build_http_app(build_server(settings, transport=wire), settings)
    async with serve_app(app, loopback_socket()) as base:
        yield base


@asynccontextmanager
async def client(base: str, token: str, key: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["X-TwelveLabs-Api-Key"] = key
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
        yield c


async def test_each_request_uses_its_own_key_and_never_the_servers(
    place: Place, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wire = Recording()
    shown: list[str] = []
    async with serving(place, wire) as base:
        async with client(base, TOKEN_1, KEY_A) as a:
            wire.keys.clear()
            shown.append(text_of(await call_ok(a, "list_indexes", {})))
            assert wire.keys and set(wire.keys) == {KEY_A}
        async with client(base, TOKEN_1, KEY_B) as b:
            wire.keys.clear()
            shown.append(text_of(await call_ok(b, "list_indexes", {})))
            assert wire.keys and set(wire.keys) == {KEY_B}
        async with client(base, TOKEN_2, None) as nobody:
            wire.keys.clear()
            refused = await nobody.call_tool("list_indexes", {})
            shown.append(text_of(refused))
            assert refused.is_error and "X-TwelveLabs-Api-Key" in text_of(refused)
            assert wire.keys == [], "nothing was sent, and never with the server's key"
        # A header that cannot be a key is refused on every request, initialize included.
        async with httpx2.AsyncClient(timeout=30) as http:
            init = rpc(
                "initialize",
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
                1,
            )
            headers = {**HEADERS, "authorization": f"Bearer {TOKEN_2}", "x-twelvelabs-api-key": "not a key!"}
            async with http.stream("POST", f"{base}/mcp", json=init, headers=headers) as answer:
                replies = [json.loads(e.data) async for e in events(answer) if e.data]
            message = replies[0]["error"]["message"]
            assert "X-TwelveLabs-Api-Key" in message and "not a key" not in message
    everything = caplog.text + "".join(shown)
    for key in (KEY_A, KEY_B, SERVER_KEY):
        assert key not in everything


async def test_a_job_id_belongs_to_its_token_and_key(place: Place) -> None:
    wire = Recording()
    async with serving(place, wire) as base:
        async with client(base, TOKEN_1, KEY_A) as owner:
            started = await call_ok(
                owner,
                "create_response",
                {"knowledge_store_id": place.knowledge_store_id, "input": "Summarize.", "wait_s": 0},
            )
            assert started.structured_content is not None
            job_id = started.structured_content["job_id"]
        for token, key in ((TOKEN_1, KEY_B), (TOKEN_2, KEY_A)):
            async with client(base, token, key) as stranger:
                other = await stranger.call_tool("wait_for_task", {"id": job_id, "wait_s": 1})
                assert other.is_error, text_of(other)
                assert "Summar" not in text_of(other)
        async with client(base, TOKEN_1, KEY_A) as owner:
            done = await call_ok(owner, "wait_for_task", {"id": job_id, "wait_s": 30})
            assert done.structured_content and done.structured_content["status"] == "completed"


async def test_each_tenant_has_its_own_connection_pool(place: Place) -> None:
    made: list[httpx2.AsyncHTTPTransport] = []

    def pool() -> httpx2.AsyncHTTPTransport:
        made.append(httpx2.AsyncHTTPTransport())
        return made[-1]

    off = Budget(0, 0, 0)
    transport = UpstreamTransport(pool, Limits(MemoryLimits(), tool=off, upstream=off), tenant_keys=True)
    url = f"{place.sandbox.base_url}/indexes"
    async with httpx2.AsyncClient(transport=transport) as http:
        for key in (KEY_A, KEY_B, KEY_A):
            token = TENANT_KEY.set(key)
            try:
                answer = await http.get(url, headers={"x-api-key": SERVER_KEY})
            finally:
                TENANT_KEY.reset(token)
            assert answer.status_code == 200
    assert len(made) == 3, "the server's own pool, then one for each of the two tenants (A reused)"
