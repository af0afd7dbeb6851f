"""Start-up stays light: what the stdio path imports before its first `tools/list` (issue 13), and the calls
whose heavy dependencies are imported only when they run still work in a fresh `tl-mcp serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from .conftest import text_of

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
#: Needed only by the calls that use them: cutting clips (PyAV, numpy, Pillow), checking a caller's JSON
#: Schema (jsonschema), OAuth mode (PyJWT), the embedded engine (the sandbox, started by the backend),
#: HTTP mode's per-token limits and Prometheus metrics, the demo (only its flags are in every command line).
LAZY = (
    "av",
    "numpy",
    "PIL",
    "jsonschema",
    "jwt",
    "redis",
    "tl_mcp.sandbox",
    "tl_mcp.samples",
    "tl_mcp.server.cutting",
    "tl_mcp.server.auth",
    "tl_mcp.demo",
    "tl_mcp.server.guard",
    "tl_mcp.server.metrics",
    "prometheus_client",
)
PROBE = f"""
import json, sys
import tl_mcp.cli
from tl_mcp.config import Settings
from tl_mcp.server import build_server
from tl_mcp.server.stdio import run_stdio

tl_mcp.cli.build_parser()
build_server(Settings.from_sources(env={{}}, toolsets="all"))
print(json.dumps([m for m in {LAZY!r} if m in sys.modules]))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
    env.update(PYTHONPATH=str(ROOT), TL_MCP_SANDBOX_DIR=str(tmp_path / "state"))
    return env


def test_building_the_server_imports_none_of_what_only_some_calls_need(tmp_path: Path) -> None:
    # A fresh interpreter: this test process has imported all of them already.
    argv = [sys.executable, "-c", PROBE]
    done = subprocess.run(argv, env=_env(tmp_path), capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == [], done.stderr[-2000:]


async def test_first_calls_of_a_fresh_stdio_server_import_what_they_need(tmp_path: Path) -> None:
    # The embedded sandbox default (no key): the first call needs the engine; the refusals below come from
    # code whose imports moved into the call (the cutter, jsonschema).
    allowed = tmp_path / "out"
    allowed.mkdir()
    args = ["-m", "tl_mcp.cli", "serve", "--toolsets", "all", "--allow-write-dir", str(allowed)]
    params = StdioServerParameters(command=sys.executable, args=args, env=_env(tmp_path), cwd=ROOT)
    with (tmp_path / "serve.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as c:
            assert "export_clips" in {t.name for t in (await c.list_tools()).tools}
            indexes = await c.call_tool("list_indexes", {})
            assert not indexes.is_error, text_of(indexes)
            assert indexes.structured_content is not None
            assert indexes.structured_content["backend"] == "sandbox"

            outside = tmp_path / "elsewhere"
            moment = {"asset_id": "a" * 24, "start": 0, "end": 1}
            clip = await c.call_tool("export_clips", {"moments": [moment], "folder": str(outside)})
            assert clip.is_error and "--allow-write-dir" in text_of(clip), text_of(clip)
            assert not outside.exists() and not any(allowed.iterdir())

            bad_schema = {"type": 12}
            analyze = await c.call_tool(
                "analyze_video", {"prompt": "x", "video_id": "v" * 24, "output_schema": bad_schema}
            )
            assert analyze.is_error and "not a valid JSON Schema" in text_of(analyze), text_of(analyze)
            jockey = await c.call_tool(
                "create_response",
                {"knowledge_store_id": "k" * 24, "input": "x", "output_schema": bad_schema},
            )
            assert jockey.is_error and "not a valid JSON Schema" in text_of(jockey), text_of(jockey)
            task = await c.call_tool(
                "start_analysis_task", {"prompt": "x", "asset_id": "a" * 24, "output_schema": bad_schema}
            )
            assert task.is_error and "not a valid JSON Schema" in text_of(task), text_of(task)


def test_listed_argument_schemas_are_the_strict_models_that_the_first_call_builds() -> None:
    # Start-up lists each tool's schema without building its strict model (a pydantic class per tool);
    # what is listed must be exactly what that model, made by the tool's first call, accepts.
    from tl_mcp.config import Settings
    from tl_mcp.server.registry import _strict, build_tools
    from tl_mcp.server.schema import compact

    tools = build_tools(Settings.from_sources(env={}, toolsets="all"))
    assert len(tools) >= 20
    for tool in tools:
        loose = tool.fn_metadata.arg_model
        assert loose.model_config.get("extra") != "forbid", tool.name
        strict = _strict(loose)
        assert strict.model_config.get("strict") and strict.model_config.get("extra") == "forbid"
        assert compact(strict.model_json_schema(by_alias=True), "input") == tool.parameters, tool.name
