"""The MCP Inspector's CLI, the README's one-liner, as a black-box client of the real server.

Runs only with `npx` on PATH and TL_MCP_TEST_INSPECTOR=1 (.ci/run sets it when Node is installed): the
first run downloads the Inspector from the npm registry (about 20 s here), later runs use npm's cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from newcomer_support import FAST_SANDBOX, ROOT, clean_env

from tests.server.test_bulk import tiny_video
from tl_mcp.server.registry import all_tools
from tl_mcp.toolsets import DEFAULT_TOOLSETS

#: Pinned so that a new Inspector release cannot change what this test means.
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("npx") is None or os.environ.get("TL_MCP_TEST_INSPECTOR") != "1",
        reason="needs npx and TL_MCP_TEST_INSPECTOR=1",
    ),
]


def inspector(
    tmp_path: Path, *method: str, serve: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    npx = shutil.which("npx")
    assert npx is not None
    # `tl-mcp serve` of the README, spelled so it works from a checkout; -e sets the server's environment.
    server = [sys.executable, "-m", "tl_mcp.cli", "serve", *serve]
    server_env = {"PYTHONPATH": str(ROOT), "TL_MCP_SANDBOX_DIR": str(tmp_path / "sandbox"), **(env or {})}
    env_flags = [arg for k, v in server_env.items() for arg in ("-e", f"{k}={v}")]
    proc = subprocess.run(
        [npx, "-y", INSPECTOR, "--cli", *env_flags, *server, *method],
        cwd=tmp_path,
        env=clean_env({"npm_config_update_notifier": "false", "npm_config_fund": "false"}),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_inspector_lists_every_tool_with_schemas(tmp_path: Path) -> None:
    listed = inspector(tmp_path, "--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    defaults = [s.name for s in all_tools() if s.toolset in DEFAULT_TOOLSETS]
    assert sorted(tools) == sorted(defaults), "admin (and clips, without a write folder) stay off by default"
    for tool in tools.values():
        assert tool["inputSchema"]["type"] == "object"
        assert "outputSchema" in tool and "annotations" in tool


def test_inspector_calls_a_tool(tmp_path: Path) -> None:
    result = inspector(tmp_path, "--method", "tools/call", "--tool-name", "list_indexes")
    assert result["isError"] is False
    assert result["structuredContent"] == {  # a fresh sandbox has no index yet
        "indexes": [],
        "page": 1,
        "total_pages": result["structuredContent"]["total_pages"],
        "backend": "sandbox",
    }


def test_inspector_strict_lint_finds_no_unportable_schema_in_any_tool(tmp_path: Path) -> None:
    """`--strict` exits 6 on a schema error a client would reject (a bare boolean schema, ...); the type
    lists of free-form and nullable fields are its warnings, which it leaves to the client."""
    envelope = inspector(
        tmp_path, "--method", "tools/list", "--strict", "--format", "json", serve=["--toolsets", "all"]
    )
    listed = envelope["result"]
    assert sorted(t["name"] for t in listed["tools"]) == sorted(s.name for s in all_tools())
    findings = envelope.get("schemaFindings", [])
    errors = [(t["toolName"], f) for t in findings for f in t["findings"] if f["severity"] == "error"]
    assert errors == []


def test_inspector_checks_bulk_ingest_and_list_assets_against_their_output_schemas(tmp_path: Path) -> None:
    """The Inspector validates structuredContent against the tool's outputSchema and fails the call when
    it does not fit; the sandbox's state carries from one Inspector run to the next."""
    folder = tmp_path / "media"
    tiny_video(folder / "one.mp4", 30)
    tiny_video(folder / "two.mp4", 160)
    serve = ["--toolsets", "all", "--allow-dir", str(folder)]
    args = json.dumps({"folder": str(folder), "wait_s": 60})
    call = ("--method", "tools/call", "--format", "json")
    bulk = inspector(
        tmp_path, *call, "--tool-name", "bulk_ingest", "--tool-args-json", args, serve=serve, env=FAST_SANDBOX
    )["result"]
    data = bulk["structuredContent"]
    assert bulk["isError"] is False and data["status"] == "completed" and data["total"] == 2, bulk
    sent = {row["source"]: row["asset_id"] for row in data["uploaded"]}
    assert sorted(sent) == ["one.mp4", "two.mp4"]
    listed = inspector(
        tmp_path, *call, "--tool-name", "list_assets", "--tool-args-json", "{}", serve=serve, env=FAST_SANDBOX
    )["result"]
    assets = listed["structuredContent"]["assets"]
    assert {a["asset_id"] for a in assets} == set(sent.values()), assets
