"""Cancellation over stateless HTTP (TL_MCP_STATE_KEYS): a client's notifications/cancelled stops the call.

Every stateless POST gets a dispatcher of its own, so the cancel has to go through the process-wide
registry of in-flight requests, keyed by who the caller is. The upload is slowed by sandbox latency on
the asset poll: a call that was really stopped never indexes its asset, one that ran on does within
seconds. Static bearer tokens name the caller, which also binds a stateful session to its token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http import REQUEST_CANCELLED
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS
from pydantic import SecretStr

from tests.server.conftest import call_ok, loopback_socket, sandbox_settings, serve_app
from tests.server.sse import HEADERS, events, open_session, rpc, tool_call
from tl_mcp.samples import make_sample_video
from tl_mcp.sandbox.config import FaultConfig, FaultRule
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_http_app, build_server

pytestmark = pytest.mark.anyio

TOKEN_A, TOKEN_B = "tok-a-" + "x" * 24, "tok-b-" + "y" * 24
#: Every asset poll takes this long, so an upload that is not stopped finishes a few seconds later.
POLL_LATENCY_S = 2.5
#: Long enough for a call that ran on to have indexed its asset (asset poll + index + item).
SETTLE_S = POLL_LATENCY_S * 2 + 1.5


@dataclass(frozen=True)
class Slow:
    sandbox: EmbeddedSandbox
    media: Path
    video: Path
    state_dir: Path


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slow]:
    root = tmp_path_factory.mktemp("cancel")
    media = root / "media"
    media.mkdir()
    video = make_sample_video(media / "clip.mp4", speech=False).path
    poll = FaultRule(kind="latency", path=r"^/assets/[^/]+$", methods=("GET",), latency_s=POLL_LATENCY_S)
    faults = FaultConfig(rules=(poll,))
    sandbox = EmbeddedSandbox.start_in_thread(root / "sandbox-data", analyzers="none", faults=faults)
    try:
        yield Slow(sandbox=sandbox, media=media, video=video, state_dir=root / "state")
    finally:
        sandbox.stop()


@asynccontextmanager
async def http_server(slow: Slow, *, stateless: bool = True) -> AsyncIterator[str]:
    settings = sandbox_settings(
        slow.sandbox, slow.state_dir, slow.media, transport="http", auth_tokens=[TOKEN_A, TOKEN_B]
    )
    if stateless:
        settings = settings.model_copy(update={"state_keys": (SecretStr("k" * 40),)})
    app = build_http_app(build_server(settings), settings)
    async with serve_app(app, loopback_socket()) as base:
        yield f"{base}/mcp"


@asynccontextmanager
async def session(url: str, token: str, version: str) -> AsyncIterator[ClientSession]:
    """The SDK's client session at `version`: a 2025-03-26 client asks for that one in its handshake."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    async with http:
        if version in MODERN_PROTOCOL_VERSIONS:
            async with Client(streamable_http_client(url, http_client=http), mode=version) as c:
                yield c.session
            return
        async with (
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write) as s,
        ):
            if version == LATEST_HANDSHAKE_VERSION:
                await s.initialize()
            else:
                init = types.InitializeRequest(
                    params=types.InitializeRequestParams(
                        protocol_version=version,
                        capabilities=types.ClientCapabilities(),
                        client_info=types.Implementation(name="old-client", version="1.0"),
                    )
                )
                s.adopt(await s.send_request(init, types.InitializeResult))
                await s.send_notification(types.InitializedNotification())
            assert s.protocol_version == version
            yield s


async def videos_in(s: ClientSession, index_id: str) -> list[dict[str, Any]]:
    listed = await s.call_tool("list_videos", {"index_id": index_id})
    assert not listed.is_error and listed.structured_content
    videos: list[dict[str, Any]] = listed.structured_content["videos"]
    return videos


@pytest.mark.parametrize(
    ("stateless", "version"),
    [(True, "2025-03-26"), (True, "2025-11-25"), (True, "2026-07-28"), (False, "2025-11-25")],
    ids=["stateless-2025-03-26", "stateless-2025-11-25", "stateless-2026-07-28", "stateful-2025-11-25"],
)
async def test_sdk_client_cancel_stops_the_upload(
    slow: Slow, stateless: bool, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tl_mcp.server.inflight")
    async with http_server(slow, stateless=stateless) as url, session(url, TOKEN_A, version) as s:
        name = f"cancel-{version}-{'stateless' if stateless else 'stateful'}"
        index = (await call_ok(s, "create_index", {"name": name})).structured_content
        assert index
        asset_created = anyio.Event()
        outcome: list[types.CallToolResult] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if message and message.startswith("Asset "):
                asset_created.set()

        async with anyio.create_task_group() as tg:

            async def upload() -> None:
                args = {"path": str(slow.video), "index_id": index["id"], "wait": True, "wait_s": 60}
                outcome.append(await s.call_tool("upload_asset", args, progress_callback=on_progress))

            tg.start_soon(upload)
            with anyio.fail_after(30):
                await asset_created.wait()
            # The SDK client sends notifications/cancelled when its caller stops waiting.
            tg.cancel_scope.cancel()
        assert outcome == []
        await anyio.sleep(SETTLE_S)
        assert await videos_in(s, index["id"]) == [], "the cancelled upload went on and indexed its asset"
    # Only stateless 2025-era calls need the registry: the others are cancelled by their own session.
    assert ("cancelled request" in caplog.text) == (stateless and version in HANDSHAKE_PROTOCOL_VERSIONS)


async def test_a_cancel_reaches_only_its_own_callers_call(
    slow: Slow, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tl_mcp.server.inflight")
    async with (
        http_server(slow) as url,
        session(url, TOKEN_A, LATEST_HANDSHAKE_VERSION) as s,
        httpx2.AsyncClient(timeout=60) as http,
    ):
        index = (await call_ok(s, "create_index", {"name": "cancel-principals"})).structured_content
        assert index
        args = {"path": str(slow.video), "index_id": index["id"], "wait": True, "wait_s": 60}

        async def call_cancelled_by(canceller: str, request_id: int) -> list[dict[str, Any]]:
            """Token B's upload under `request_id`; `canceller` cancels that id once the asset exists."""
            seen: list[dict[str, Any]] = []
            own = {**HEADERS, "authorization": f"Bearer {TOKEN_B}", "mcp-protocol-version": "2025-11-25"}
            cancel = rpc("notifications/cancelled", {"requestId": request_id, "reason": "test"})
            body = tool_call(request_id, "upload_asset", args)
            async with http.stream("POST", url, json=body, headers=own) as response:
                assert response.status_code == 200
                sent = False
                async for event in events(response):
                    # Stateless streams have no session to resume in, so they carry no event ids.
                    assert event.id is None and event.retry is None
                    if (message := event.message) is None:
                        continue
                    seen.append(message)
                    note = message.get("params", {}).get("message") or ""
                    if not sent and note.startswith("Asset "):
                        sent = True
                        headers = {**own, "authorization": f"Bearer {canceller}"}
                        accepted = await http.post(url, json=cancel, headers=headers)
                        assert accepted.status_code == 202
            return seen

        with anyio.fail_after(60):
            # Token A names B's request id: B's call must run to its result.
            other = await call_cancelled_by(TOKEN_A, 5)
        finished = other[-1].get("result", {}).get("structuredContent", {})
        assert finished.get("status") == "completed", other[-1]
        assert len(await videos_in(s, index["id"])) == 1
        assert "no such call is in flight" in caplog.text

        with anyio.fail_after(60):
            own = await call_cancelled_by(TOKEN_B, 6)
        # The stream ends with the cancellation, never with the upload's result.
        assert own[-1] == {
            "jsonrpc": "2.0",
            "id": 6,
            "error": {"code": REQUEST_CANCELLED, "message": "Request cancelled by the client"},
        }
        assert not any("result" in m for m in own)
        await anyio.sleep(SETTLE_S)
        assert len(await videos_in(s, index["id"])) == 1, "the cancelled upload went on and indexed its asset"


async def test_a_stateful_session_stays_with_the_token_that_opened_it(slow: Slow) -> None:
    async with http_server(slow, stateless=False) as url, httpx2.AsyncClient(timeout=30) as http:
        session = await open_session(http, url, TOKEN_A)
        probe = rpc("tools/list", {}, 9)
        stolen = await http.post(url, json=probe, headers={**session, "authorization": f"Bearer {TOKEN_B}"})
        assert stolen.status_code == 404, stolen.text
        own = await http.post(url, json=probe, headers=session)
        assert own.status_code == 200 and "list_indexes" in own.text
