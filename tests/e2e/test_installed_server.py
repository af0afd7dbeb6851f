"""The installed `tl-mcp` console script, spawned for real over stdio and over HTTP, on the embedded sandbox.

Flow: create index + store → upload (wait) → wait_for_task → search → ask → follow-up in the session.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.processes import TL_MCP, free_port, running
from tests.server.conftest import text_of
from tl_mcp.samples import make_sample_video

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TOKEN = "e2e-token-" + "x" * 20


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TL_MCP.exists():
        pytest.fail(f"{TL_MCP} is missing: install the package first (make install, or pip install -e .)")
    folder = tmp_path_factory.mktemp("media")
    make_sample_video(folder / "clip.mp4", speech=False)
    return folder


def _env(tmp: Path, media: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
    env.update(
        {
            "TL_MCP_SANDBOX_DIR": str(tmp / "sandbox"),
            "TL_MCP_SANDBOX_ANALYZERS": "none",
            "TL_MCP_ALLOWED_DIRS": str(media),
            "TL_MCP_LOG_LEVEL": "INFO",
        }
    )
    return env


async def _ok(c: Client, name: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
    result = await c.call_tool(name, args, **kw)
    assert not result.is_error, f"{name}: {text_of(result)}"
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def _workflow(c: Client, media: Path, tag: str) -> None:
    names = {t.name for t in (await c.list_tools()).tools}
    assert {"create_response", "upload_asset", "search_videos"} <= names and "delete_index" not in names
    index = await _ok(c, "create_index", {"name": f"e2e-{tag}"})
    store = await _ok(c, "create_knowledge_store", {"name": f"e2e-{tag}"})
    progress: list[str] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    upload = await _ok(
        c,
        "upload_asset",
        {
            "path": str(media / "clip.mp4"),
            "index_id": index["id"],
            "knowledge_store_id": store["id"],
            "wait": True,
        },
        progress_callback=on_progress,
    )
    assert upload["backend"] == "sandbox"
    assert any(m.startswith("Uploaded") for m in progress), progress
    if upload["status"] == "in_progress":
        upload = (await _ok(c, "wait_for_task", {"id": upload["job_id"], "wait_s": 120}))["result"]
    waited = await _ok(
        c, "wait_for_task", {"id": upload["item_id"], "knowledge_store_id": store["id"], "wait_s": 60}
    )
    assert waited["status"] == "ready"
    found = await _ok(c, "search_videos", {"query": "ocean waves chapter three", "index_id": index["id"]})
    assert found["moments"] and found["moments"][0]["video_id"] == upload["indexed_asset_id"]
    assert found["moments"][0]["start"] == pytest.approx(12.0, abs=1.0)
    streamed: list[str] = []

    async def on_text(p: float, total: float | None, message: str | None) -> None:
        if message:
            streamed.append(message)

    answer = await _ok(
        c,
        "create_response",
        {"knowledge_store_id": store["id"], "input": "How much do the apples cost?"},
        progress_callback=on_text,
    )
    assert "".join(streamed) == answer["text"] and "apples" in answer["text"].lower()
    follow = await _ok(
        c, "continue_session", {"session_id": answer["session_id"], "input": "What about the ocean?"}
    )
    assert follow["session_id"] == answer["session_id"] and "ocean" in follow["text"].lower()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_workflow_and_clean_stdout(media: Path, tmp_path: Path, mode: str) -> None:
    stdout_copy = tmp_path / "stdout.jsonl"
    # tee keeps a copy of everything the server writes to stdout, to prove it is protocol only.
    command = f"{shlex.quote(str(TL_MCP))} serve | tee {shlex.quote(str(stdout_copy))}"
    params = StdioServerParameters(command="/bin/sh", args=["-c", command], env=_env(tmp_path, media))
    with anyio.fail_after(150):
        async with Client(params, mode=mode) as c:
            await _workflow(c, media, f"stdio-{mode}")
    lines = [line for line in stdout_copy.read_text("utf-8").splitlines() if line.strip()]
    assert lines
    for line in lines:
        message = json.loads(line)
        assert message.get("jsonrpc") == "2.0", line[:200]


@pytest.fixture(scope="module")
def http_server(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("http")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(
        [str(TL_MCP), "serve", "--transport", "http", "--port", str(port), "--auth-token", TOKEN],
        _env(tmp, media),
        tmp / "server.log",
        f"{base}/healthz",
    ):
        yield base
    assert TOKEN not in (tmp / "server.log").read_text()


async def test_http_requires_the_token(http_server: str) -> None:
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{http_server}/healthz")).json()["backend"] == "sandbox"
        denied = await http.post(f"{http_server}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert denied.status_code == 401


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_workflow(media: Path, http_server: str, mode: str) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    with anyio.fail_after(150):
        async with (
            http,
            Client(streamable_http_client(f"{http_server}/mcp", http_client=http), mode=mode) as c,
        ):
            await _workflow(c, media, f"http-{mode}")


def test_sandbox_subcommand_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    env = {**_env(tmp_path, tmp_path), "TL_MCP_SANDBOX_API_KEYS": "k-e2e"}
    indexes = f"http://127.0.0.1:{port}/v1.3/indexes"
    with running(
        [str(TL_MCP), "sandbox", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        env,
        tmp_path / "sandbox.log",
        indexes,
        headers={"x-api-key": "k-e2e"},
    ):
        response = httpx2.get(indexes, headers={"x-api-key": "k-e2e"})
        assert response.status_code == 200 and response.json()["data"] == []
        denied = httpx2.get(indexes, headers={"x-api-key": "wrong"})
        assert denied.status_code == 401
        assert (tmp_path / "data").is_dir()
