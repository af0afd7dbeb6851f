"""What the SDK leaves to us: logging, unknown tools, version headers, OAuth discovery, stdio lines."""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
    ResourceTemplateReference,
)
from mcp.types import LoggingMessageNotificationParams as LogParams

from tests.server.conftest import MODES, loopback_socket, sandbox_settings, serve_app
from tl_mcp.config import Settings
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_http_app, build_server
from tl_mcp.server.http import SUPPORTED_VERSIONS
from tl_mcp.server.prompts import PERSONAS

pytestmark = [
    pytest.mark.anyio,
    # The client half of MCP logging warns that 2026-07-28 deprecates it; testing it is the point.
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "proto-" + "t0ken" * 4
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSandbox]:
    sb = EmbeddedSandbox.start_in_thread(tmp_path_factory.mktemp("proto-sandbox"), analyzers="none")
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def settings(sandbox: EmbeddedSandbox, tmp_path: Path) -> Settings:
    return sandbox_settings(sandbox, tmp_path, None)


class Logs:
    def __init__(self) -> None:
        self.received: list[LogParams] = []

    async def __call__(self, params: LogParams) -> None:
        self.received.append(params)

    def texts(self) -> list[str]:
        return [str(p.data) for p in self.received]


def with_probe(server: MCPServer[Any], api_key: str) -> MCPServer[Any]:
    """Adds a tool that logs through the server's own logger tree, once per level, with the key in it."""
    probe_log = logging.getLogger("tl_mcp.server.probe")

    async def log_probe() -> str:
        probe_log.debug("debug line")
        probe_log.info("info line, key %s", api_key)
        probe_log.warning("warning line")
        return "logged"

    server.add_tool(log_probe, name="log_probe", description="Logs one line per level.")
    return server


async def test_logging_capability_is_declared_and_set_level_filters_what_the_client_gets(
    settings: Settings, sandbox: EmbeddedSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tl_mcp")
    logs = Logs()
    server = with_probe(build_server(settings), sandbox.api_key)
    async with Client(server, mode="legacy", logging_callback=logs) as c:
        assert c.server_capabilities is not None and c.server_capabilities.logging is not None
        await c.call_tool("log_probe", {})
        assert logs.received == [], "nothing is sent before the client chooses a level"
        await c.set_logging_level("info")
        await c.call_tool("log_probe", {})
        assert [p.level for p in logs.received] == ["info", "warning"]
        assert {p.logger for p in logs.received} == {"tl_mcp.server.probe"}
        await c.set_logging_level("debug")
        logs.received.clear()
        await c.call_tool("list_indexes", {})
        # A real server line: the API client's request log, at debug.
        api = [(p.level, str(p.data)) for p in logs.received if p.logger == "tl_mcp.api"]
        assert ("debug", "GET /indexes -> 200") in api
    # stderr logging is as it was: every record still reaches the ordinary handlers.
    assert "warning line" in caplog.text and "debug line" in caplog.text


async def test_log_lines_to_the_client_never_carry_a_secret(
    settings: Settings, sandbox: EmbeddedSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tl_mcp")
    logs = Logs()
    server = with_probe(build_server(settings), sandbox.api_key)
    async with Client(server, mode="legacy", logging_callback=logs) as c:
        await c.set_logging_level("info")
        await c.call_tool("log_probe", {})
    info = [t for p, t in zip(logs.received, logs.texts(), strict=True) if p.level == "info"]
    assert info == ["info line, key ***"]
    assert sandbox.api_key not in "".join(logs.texts())


async def test_modern_era_sends_logs_only_at_the_level_the_request_opted_into(
    settings: Settings, sandbox: EmbeddedSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tl_mcp")
    quiet, warned = Logs(), Logs()
    async with Client(with_probe(build_server(settings), sandbox.api_key), logging_callback=quiet) as c:
        assert c.protocol_version == "2026-07-28"
        await c.call_tool("log_probe", {})
    assert quiet.received == []
    server = with_probe(build_server(settings), sandbox.api_key)
    async with Client(server, logging_callback=warned, log_level="warning") as c:
        await c.call_tool("log_probe", {})
    assert [(p.level, p.data) for p in warned.received] == [("warning", "warning line")]


@asynccontextmanager
async def logging_client(
    how: str, settings: Settings, sandbox: EmbeddedSandbox, logs: Logs, tmp_path: Path
) -> AsyncIterator[Client]:
    """A client that asked for debug log lines: by `logging/setLevel` (in memory, over HTTP, over stdio),
    or by the 2026-07-28 per-request opt-in."""
    if how == "modern":
        async with Client(build_server(settings), logging_callback=logs, log_level="debug") as c:
            yield c
        return
    if how == "memory":
        target: Any = build_server(settings)
    elif how == "http":
        http_settings = settings.model_copy(update={"transport": "http"})
        target = None
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            TWELVELABS_API_KEY=sandbox.api_key,
            TWELVELABS_BASE_URL=sandbox.base_url,
            TL_MCP_BACKEND="sandbox",
            TL_MCP_SANDBOX_DIR=str(tmp_path / "stdio-state"),
        )
        args = ["-m", "tl_mcp.cli", "serve", "--log-level", "DEBUG"]
        target = stdio_client(StdioServerParameters(command=sys.executable, args=args, env=env, cwd=ROOT))
    if target is None:
        async with (
            serving(http_settings) as base,
            Client(streamable_http_client(f"{base}/mcp"), mode="legacy", logging_callback=logs) as c,
        ):
            await c.set_logging_level("debug")
            yield c
        return
    async with Client(target, mode="legacy", logging_callback=logs) as c:
        await c.set_logging_level("debug")
        yield c


@pytest.mark.parametrize("how", ["memory", "http", "stdio", "modern"])
async def test_errors_keep_their_code_while_log_lines_go_to_the_client(
    how: str, settings: Settings, sandbox: EmbeddedSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Forwarding a request's log lines once wrapped the handler's error in an ExceptionGroup: every
    # prompt and resource error became `code: 0`, "unhandled errors in a TaskGroup".
    caplog.set_level(logging.DEBUG, logger="tl_mcp")
    logs = Logs()
    missing = "0" * 24
    async with logging_client(how, settings, sandbox, logs, tmp_path) as c:
        with pytest.raises(MCPError) as prompt:
            await c.get_prompt("corpus_overview", {"knowledge_store_id": "k", "persona": "pirate"})
        assert prompt.value.code == INVALID_PARAMS, prompt.value.message
        assert "'pirate'" in prompt.value.message
        assert all(f"'{persona}'" in prompt.value.message for persona in PERSONAS)
        with pytest.raises(MCPError) as unknown:
            await c.read_resource("twelvelabs://thumbnails/zzz")
        assert unknown.value.code == INVALID_PARAMS
        assert unknown.value.message == "Unknown resource: twelvelabs://thumbnails/zzz"
        with pytest.raises(MCPError) as absent:
            await c.read_resource(f"twelvelabs://indexes/{missing}")
        assert absent.value.code == INVALID_PARAMS
        assert (
            f"Reading index {missing} failed" in absent.value.message
            and "list_indexes" in absent.value.message
        )
        ref = ResourceTemplateReference(type="ref/resource", uri="twelvelabs://indexes/{index_id}")
        assert (await c.complete(ref, {"name": "index_id", "value": ""})).completion.values is not None
        bad_tool = await c.call_tool("get_video", {"video_id": "x"})
        assert bad_tool.is_error and "index_id: Field required" in str(bad_tool.content)
        assert not (await c.call_tool("list_indexes", {})).is_error
    # The log lines still reach the client (the completion's and list_indexes' API requests).
    lines = [(p.level, p.logger, str(p.data)) for p in logs.received]
    assert lines.count(("debug", "tl_mcp.api", "GET /indexes -> 200")) == 2, lines
    assert "TaskGroup" not in caplog.text


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_tool_is_a_json_rpc_invalid_params_error(settings: Settings, mode: str) -> None:
    async with Client(build_server(settings), mode=mode) as c:
        with pytest.raises(MCPError) as unknown:
            await c.call_tool("search_vidoes", {"query": "x"})
        assert unknown.value.code == INVALID_PARAMS
        assert "Unknown tool: 'search_vidoes'" in unknown.value.message
        assert "search_videos" in unknown.value.message, "the error lists the tools that exist"
        with pytest.raises(MCPError) as off:
            await c.call_tool("delete_index", {"index_id": "x"})
        assert off.value.code == INVALID_PARAMS
        assert "toolset 'admin' is off" in off.value.message and "--toolsets" in off.value.message
        assert not (await c.call_tool("list_indexes", {})).is_error


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    app = build_http_app(build_server(settings), settings)
    async with serve_app(app, loopback_socket()) as base:
        yield base


async def test_unsupported_protocol_version_header_names_the_supported_versions(settings: Settings) -> None:
    http_settings = settings.model_copy(update={"transport": "http"})
    async with serving(http_settings) as base, httpx2.AsyncClient(base_url=base) as http:
        body = {"jsonrpc": "2.0", "id": 41, "method": "tools/list", "params": {}}
        for bad in ("2099-01-01", "2025-13-01", "latest"):
            response = await http.post(
                "/mcp", json=body, headers={**MCP_HEADERS, "mcp-protocol-version": bad}
            )
            assert response.status_code == 400
            reply = response.json()
            assert reply["id"] == 41
            assert reply["error"]["code"] == UNSUPPORTED_PROTOCOL_VERSION
            message = reply["error"]["message"]
            assert f"Unsupported MCP-Protocol-Version '{bad}'" in message and "_meta" not in message
            assert all(v in message for v in SUPPORTED_VERSIONS)
            assert reply["error"]["data"] == {"supported": list(SUPPORTED_VERSIONS), "requested": bad}
        # Each supported version still gets through to the SDK (which then asks for what it needs).
        for good in SUPPORTED_VERSIONS:
            response = await http.post(
                "/mcp", json=body, headers={**MCP_HEADERS, "mcp-protocol-version": good}
            )
            assert "Unsupported MCP-Protocol-Version" not in response.text
        async with Client(streamable_http_client(f"{base}/mcp"), mode="legacy") as c:
            assert (await c.list_tools()).tools


async def test_static_token_mode_has_no_oauth_discovery_documents(settings: Settings) -> None:
    http_settings = settings.model_copy(update={"transport": "http"})
    http_settings = Settings.model_validate({**http_settings.model_dump(), "auth_tokens": [TOKEN]})
    async with serving(http_settings) as base, httpx2.AsyncClient(base_url=base) as http:
        for path in (
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-authorization-server",
        ):
            response = await http.get(path)
            assert response.status_code == 404, path
            assert "www-authenticate" not in response.headers
            assert "Authorization: Bearer" in response.json()["error_description"]
        assert (await http.post("/mcp", json={}, headers=MCP_HEADERS)).status_code == 401
        authed = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
        async with (
            authed,
            Client(streamable_http_client(f"{base}/mcp", http_client=authed), mode="legacy") as c,
        ):
            assert (await c.list_tools()).tools


def stdio_exchange(tmp_path: Path, lines: list[bytes], *, version: str, expect: int) -> list[dict[str, Any]]:
    """Writes raw lines to `tl-mcp serve` over stdio after a handshake; returns the first `expect` replies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        TL_MCP_SANDBOX_DIR=str(tmp_path / "sandbox"),
        TL_MCP_SANDBOX_ANALYZERS="none",
    )
    initialize = {
        "jsonrpc": "2.0",
        "id": "init",
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tl_mcp.cli", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdin is not None
    read_line = LineReader(proc)
    try:
        proc.stdin.write(json.dumps(initialize).encode() + b"\n")
        proc.stdin.flush()
        assert json.loads(read_line())["result"]["protocolVersion"] == version
        proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        for line in lines:
            proc.stdin.write(line + b"\n")
        proc.stdin.flush()
        return [json.loads(read_line()) for _ in range(expect)]
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class LineReader:
    """stdout lines of a subprocess, failing the test when one does not come in time (a dropped reply)."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._timeout = timeout
        self._buffered = bytearray()

    def __call__(self) -> bytes:
        deadline = time.monotonic() + self._timeout
        while b"\n" not in self._buffered:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._fd], [], [], remaining)[0]:
                pytest.fail(
                    f"no reply within {self._timeout:.0f} s (so far: {bytes(self._buffered)[:200]!r})"
                )
            chunk = os.read(self._fd, 65536)
            if not chunk:
                pytest.fail(f"the server closed stdout (so far: {bytes(self._buffered)[:200]!r})")
            self._buffered.extend(chunk)
        line, _, rest = bytes(self._buffered).partition(b"\n")
        self._buffered[:] = rest
        return line


def test_stdio_answers_lines_that_are_not_json_rpc_messages(tmp_path: Path) -> None:
    lines = [
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping"',  # cut short
        b"\xff\xfe not utf-8",
        b"",  # blank: nothing to answer
        b'"just a string"',
        b'{"jsonrpc": "2.0", "id": 7, "method": 5}',
        b'[{"jsonrpc": "2.0", "id": 8, "method": "ping"}]',
        b'{"jsonrpc": "2.0", "id": 9, "method": "ping"}',
    ]
    replies = stdio_exchange(tmp_path, lines, version="2025-11-25", expect=6)
    codes = [(r.get("id"), r.get("error", {}).get("code")) for r in replies]
    assert codes == [
        (None, PARSE_ERROR),
        (None, PARSE_ERROR),
        (None, INVALID_REQUEST),
        (7, INVALID_REQUEST),
        (None, INVALID_REQUEST),
        (9, None),
    ]
    assert "one JSON-RPC message per line" in replies[0]["error"]["message"]
    assert "batches are not supported at protocol version 2025-11-25" in replies[4]["error"]["message"]
    assert replies[5]["result"] == {}


def test_stdio_runs_a_batch_for_a_2025_03_26_session(tmp_path: Path) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 10, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}},
        {
            "jsonrpc": "2.0",
            "id": 11,
            "method": "tools/call",
            "params": {"name": "list_indexes", "arguments": {}},
        },
        {"jsonrpc": "2.0", "id": 12, "method": "tools/call", "params": {"name": "nope"}},
        42,
    ]
    (reply,) = stdio_exchange(tmp_path, [json.dumps(batch).encode()], version="2025-03-26", expect=1)
    assert isinstance(reply, list), "a batch is answered with one array"
    by_id = {r["id"]: r for r in reply}
    assert set(by_id) == {None, 10, 11, 12}, (
        "one reply per request and per invalid element, none for notifications"
    )
    assert by_id[None]["error"]["code"] == INVALID_REQUEST
    assert by_id[10]["result"] == {}
    assert by_id[11]["result"]["structuredContent"]["backend"] == "sandbox"
    assert by_id[12]["error"]["code"] == INVALID_PARAMS
