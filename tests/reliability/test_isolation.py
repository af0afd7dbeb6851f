"""Hostile: callers with different static bearer tokens, over real streamable HTTP with the SDK client.

What the review did: token A filled the whole job table in under a second and every other token was
refused; token B read A's job and continued A's Jockey session. Here A fills its own cap and B (and C)
still get jobs within the global cap; B cannot see A's job or session, and every refusal reads exactly
like the answer for an id that never existed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from tests.reliability.conftest import Seed, faulted
from tests.reliability.upstream import NeverFinishes, fake_upstream_settings
from tests.server.conftest import call_ok, loopback_socket, serve_app, text_of
from tl_mcp.config import Settings
from tl_mcp.server import build_http_app, build_server

pytestmark = pytest.mark.anyio

TOKEN_A, TOKEN_B, TOKEN_C = ("token-a-" + "a" * 32, "token-b-" + "b" * 32, "token-c-" + "c" * 32)
STATE_KEY = "s" * 64
QUESTION = "What do the videos say about apples?"
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@asynccontextmanager
async def http_server(settings: Settings) -> AsyncIterator[str]:
    sock = loopback_socket()
    app = build_http_app(build_server(settings), settings)
    async with serve_app(app, sock) as base:
        yield base


@asynccontextmanager
async def connect(base: str, token: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
        yield client


def _same_answer(mine: str, mine_id: str, other: str, other_id: str) -> None:
    """Two refusals that differ only in the id they name."""
    assert mine.replace(mine_id, "<id>") == other.replace(other_id, "<id>"), (mine, other)


async def _video_embedding(c: Client, n: int) -> Any:
    return await c.call_tool(
        "create_embedding", {"video_url": f"https://media.example/v{n}.mp4", "wait_s": 0}
    )


async def test_one_token_filling_its_cap_leaves_room_for_the_others(tmp_path: Path) -> None:
    upstream = NeverFinishes()
    async with upstream.serving() as api:
        settings = fake_upstream_settings(
            api,
            tmp_path,
            TL_MCP_TRANSPORT="http",
            TL_MCP_AUTH_TOKENS=f"{TOKEN_A},{TOKEN_B},{TOKEN_C}",
            TL_MCP_MAX_JOBS_PER_CLIENT="3",
            TL_MCP_MAX_JOBS="4",
        )
        async with http_server(settings) as base, connect(base, TOKEN_A) as a:
            for n in range(3):
                started = await _video_embedding(a, n)
                assert not started.is_error, text_of(started)
                assert started.structured_content and started.structured_content["status"] == "in_progress"
            # A's fourth job is refused, and the refusal says which bound and what to do.
            refused = await _video_embedding(a, 3)
            assert refused.is_error
            assert "TL_MCP_MAX_JOBS_PER_CLIENT=3" in text_of(refused) and "wait_for_task" in text_of(refused)
            async with connect(base, TOKEN_B) as b:
                # A's full cap does not lock B out.
                other = await _video_embedding(b, 10)
                assert not other.is_error, text_of(other)
                assert other.structured_content and other.structured_content["status"] == "in_progress"
                async with connect(base, TOKEN_C) as c:
                    # The global cap still holds: 3 + 1 jobs in progress is the whole table.
                    full = await _video_embedding(c, 20)
                    assert full.is_error and "TL_MCP_MAX_JOBS)" in text_of(full), text_of(full)
    # Nothing refused ever reached the upstream.
    assert upstream.created == 4


@pytest.mark.parametrize("replicas", [False, True], ids=["one-process", "state-keys"])
async def test_token_b_cannot_see_token_a_job_or_session(seed: Seed, tmp_path: Path, replicas: bool) -> None:
    with faulted(seed, tmp_path) as env:
        settings = env.settings(transport="http", auth_tokens=[TOKEN_A, TOKEN_B])
        if replicas:
            settings = settings.model_copy(update={"state_keys": (SecretStr(STATE_KEY),)})
        store = seed.knowledge_store_id
        async with http_server(settings) as base:
            async with connect(base, TOKEN_A) as a:
                first = await call_ok(
                    a, "create_response", {"knowledge_store_id": store, "input": QUESTION, "wait_s": 0}
                )
                data = first.structured_content
                assert data is not None and data["status"] == "in_progress", data
                job_id = data["job_id"]
                done = await call_ok(a, "wait_for_task", {"id": job_id, "wait_s": 60})
                assert done.structured_content and done.structured_content["done"]
                session = done.structured_content["result"]["session_id"]
                assert session
            async with connect(base, TOKEN_B) as b:
                # A's job: the same answer as for a job id nobody ever issued.
                seen = await b.call_tool("wait_for_task", {"id": job_id, "wait_s": 1})
                bogus_id = job_id[:-4] + ("AAAA" if not job_id.endswith("AAAA") else "BBBB")
                bogus = await b.call_tool("wait_for_task", {"id": bogus_id, "wait_s": 1})
                assert seen.is_error and bogus.is_error
                _same_answer(text_of(seen), job_id[:40], text_of(bogus), bogus_id[:40])
                assert QUESTION not in text_of(seen) and session not in text_of(seen)

                # A's session without a store: answered as for a session this server never saw.
                made_up = "sess_" + "0" * 24
                theirs = await b.call_tool("continue_session", {"session_id": session, "input": "And pears?"})
                unknown = await b.call_tool(
                    "continue_session", {"session_id": made_up, "input": "And pears?"}
                )
                assert theirs.is_error and unknown.is_error
                _same_answer(text_of(theirs), session, text_of(unknown), made_up)
                # With the store named: answered as for a session that does not exist upstream.
                args = {"input": "And pears?", "knowledge_store_id": store}
                theirs = await b.call_tool("continue_session", {"session_id": session, **args})
                unknown = await b.call_tool("continue_session", {"session_id": made_up, **args})
                assert theirs.is_error and unknown.is_error, text_of(theirs)
                _same_answer(text_of(theirs), session, text_of(unknown), made_up)
            async with connect(base, TOKEN_A) as a:
                # A still owns both.
                again = await call_ok(a, "continue_session", {"session_id": session, "input": "And pears?"})
                assert again.structured_content and again.structured_content["session_id"] == session
                mine = await call_ok(a, "wait_for_task", {"id": job_id, "wait_s": 5})
                assert mine.structured_content and mine.structured_content["done"]


async def test_token_b_cannot_use_token_a_mcp_session(seed: Seed, tmp_path: Path) -> None:
    with faulted(seed, tmp_path) as env:
        settings = env.settings(transport="http", auth_tokens=[TOKEN_A, TOKEN_B])
        async with http_server(settings) as base, httpx2.AsyncClient(base_url=base, timeout=30) as http:
            hello = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "hostile", "version": "1"},
                },
            }
            opened = await http.post(
                "/mcp", json=hello, headers={**MCP_HEADERS, "authorization": f"Bearer {TOKEN_A}"}
            )
            assert opened.status_code == 200, opened.text
            session = opened.headers["mcp-session-id"]
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            for token, expected in ((TOKEN_B, 404), (TOKEN_A, 200)):
                headers = {**MCP_HEADERS, "authorization": f"Bearer {token}", "mcp-session-id": session}
                headers["mcp-protocol-version"] = "2025-11-25"
                answer = await http.post("/mcp", json=ping, headers=headers)
                assert answer.status_code == expected, (token[:7], answer.status_code, answer.text)


async def test_the_principal_id_never_shows_the_token(seed: Seed, tmp_path: Path) -> None:
    with faulted(seed, tmp_path) as env:
        settings = env.settings(transport="http", auth_tokens=[TOKEN_A])
        async with http_server(settings) as base, connect(base, TOKEN_A) as a:
            await call_ok(
                a, "create_response", {"knowledge_store_id": seed.knowledge_store_id, "input": QUESTION}
            )
        files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
        assert any(p.name == "sessions.json" for p in files)
        for path in files:
            assert TOKEN_A not in path.read_text("utf-8", errors="replace"), path
