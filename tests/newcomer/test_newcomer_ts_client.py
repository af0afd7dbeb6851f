"""The TypeScript MCP SDK (`@modelcontextprotocol/sdk`, pinned in tests/clients/ts), a client not ours.

`tests/clients/ts/client.mjs` runs a plan of SDK calls and prints what it saw as JSON. These tests run
whenever `node` and `npm` are on PATH: the first run does `npm ci` (a few seconds), later runs reuse
node_modules while the lockfile is unchanged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from newcomer_support import CLIENTS, FAST_SANDBOX, ROOT, HttpServer, clean_env, npm_ci

from tl_mcp.server.prompts import PERSONAS
from tl_mcp.server.registry import all_tools
from tl_mcp.toolsets import DEFAULT_TOOLSETS

TS = CLIENTS / "ts"
DEFAULT_TOOLS = sorted(s.name for s in all_tools() if s.toolset in DEFAULT_TOOLSETS)
SUPPORTED = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("node") is None or shutil.which("npm") is None, reason="needs node and npm"
    ),
]

Plan = dict[str, Any]


@pytest.fixture(scope="session")
def ts_client() -> Callable[[Plan], dict[str, Any]]:
    npm_ci(TS)
    node = shutil.which("node")
    assert node is not None

    def run(plan: Plan) -> dict[str, Any]:
        proc = subprocess.run(
            [node, "client.mjs", json.dumps(plan)],
            cwd=TS,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    return run


def step_error(step: dict[str, Any]) -> dict[str, Any]:
    assert "error" in step, f"expected an error, got {json.dumps(step)[:500]}"
    error: dict[str, Any] = step["error"]
    return error


def test_ts_client_over_stdio_logging_and_unknown_tool(
    ts_client: Callable[[Plan], dict[str, Any]], tmp_path: Path
) -> None:
    server_env = clean_env({**FAST_SANDBOX, "TL_MCP_SANDBOX_DIR": str(tmp_path / "sandbox")})
    seen = ts_client(
        {
            "stdio": {
                "command": sys.executable,
                "args": ["-m", "tl_mcp.cli", "serve", "--log-level", "DEBUG"],
                "env": server_env,
                "cwd": str(ROOT),
            },
            "steps": [
                {"op": "listTools"},
                {"op": "setLoggingLevel", "level": "debug"},
                {"op": "callTool", "name": "list_indexes"},
                {"op": "callTool", "name": "search_vidoes", "arguments": {"query": "x"}},
                # Errors once the client has set a level keep their own code (not "code 0, TaskGroup").
                {
                    "op": "getPrompt",
                    "name": "corpus_overview",
                    "arguments": {"knowledge_store_id": "k", "persona": "pirate"},
                },
                {"op": "readResource", "uri": "twelvelabs://thumbnails/zzz"},
                {"op": "callTool", "name": "get_video", "arguments": {"video_id": "x"}},
            ],
        }
    )
    assert seen["connect"]["protocolVersion"] == "2025-11-25"
    assert seen["connect"]["capabilities"]["logging"] == {}
    listed, level, called, unknown, prompt, resource, bad_call = seen["steps"]
    assert sorted(t["name"] for t in listed["result"]["tools"]) == DEFAULT_TOOLS
    assert level == {"result": {}}
    assert called["result"]["isError"] is False
    # The server's own request log line reached the client as notifications/message.
    assert {"level": "debug", "logger": "tl_mcp.api", "data": "GET /indexes -> 200"} in seen["logs"]
    error = step_error(unknown)
    assert error["kind"] == "McpError" and error["code"] == -32602
    assert "Unknown tool: 'search_vidoes'" in error["message"] and "search_videos" in error["message"]
    persona = step_error(prompt)
    assert persona["code"] == -32602, persona
    assert all(f"'{p}'" in persona["message"] for p in PERSONAS) and "'pirate'" in persona["message"]
    missing = step_error(resource)
    assert missing["code"] == -32602 and "Unknown resource: twelvelabs://thumbnails/zzz" in missing["message"]
    assert bad_call["result"]["isError"] is True
    assert "index_id: Field required" in bad_call["result"]["content"][0]["text"]


def test_ts_client_over_http_with_a_bearer_token(
    ts_client: Callable[[Plan], dict[str, Any]], http_server: HttpServer
) -> None:
    seen = ts_client(
        {
            "http": {"url": http_server.url, "headers": {"Authorization": f"Bearer {http_server.token}"}},
            "steps": [
                # What the SDK's OAuth support (and the Inspector) asks first: a 401 here starts OAuth.
                {"op": "discoverProtectedResource"},
                {"op": "listTools"},
                {"op": "setLoggingLevel", "level": "info"},
                {"op": "callTool", "name": "delete_index", "arguments": {"index_id": "x"}},
            ],
        }
    )
    discovered, listed, level, hidden = seen["steps"]
    assert "does not implement OAuth 2.0 Protected Resource Metadata" in step_error(discovered)["message"]
    assert sorted(t["name"] for t in listed["result"]["tools"]) == DEFAULT_TOOLS
    assert level == {"result": {}}
    error = step_error(hidden)
    assert error["code"] == -32602 and "toolset 'admin' is off" in error["message"]
    assert http_server.token not in json.dumps(seen)


def test_ts_client_is_told_which_protocol_versions_are_supported(
    ts_client: Callable[[Plan], dict[str, Any]], http_server: HttpServer
) -> None:
    headers = {"Authorization": f"Bearer {http_server.token}", "mcp-protocol-version": "2099-01-01"}
    seen = ts_client({"http": {"url": http_server.url, "headers": headers}, "steps": [{"op": "listTools"}]})
    error = seen["connect"]["error"]
    assert error["kind"] == "StreamableHTTPError" and error["code"] == 400
    assert "Unsupported MCP-Protocol-Version '2099-01-01'" in error["message"]
    assert all(v in error["message"] for v in SUPPORTED)
    assert "_meta" not in error["message"]
