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
from pathlib import Path

import pytest
from newcomer_support import ROOT, clean_env

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


def inspector(tmp_path: Path, *method: str) -> dict[str, object]:
    npx = shutil.which("npx")
    assert npx is not None
    # `tl-mcp serve` of the README, spelled so it works from a checkout; -e sets the server's environment.
    server = [sys.executable, "-m", "tl_mcp.cli", "serve"]
    server_env = {"PYTHONPATH": str(ROOT), "TL_MCP_SANDBOX_DIR": str(tmp_path / "sandbox")}
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
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_inspector_lists_every_tool_with_schemas(tmp_path: Path) -> None:
    listed = inspector(tmp_path, "--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}  # type: ignore[attr-defined]
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
        "total_pages": result["structuredContent"]["total_pages"],  # type: ignore[index]
        "backend": "sandbox",
    }
