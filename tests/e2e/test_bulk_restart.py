"""A bulk ingest survives SIGKILL of the MCP server: restarted, the same call finishes the plan, and the
sandbox (not the ledger) shows every file uploaded exactly once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from tests.e2e.processes import TL_MCP, free_port, running
from tests.server.conftest import text_of
from tests.server.test_bulk import tiny_video
from tl_mcp.sandbox.embedded import EmbeddedSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TOKEN = "bulk-e2e-token-" + "y" * 20
FILES = 200


def _images(folder: Path, count: int) -> list[str]:
    """`count` tiny PNGs, each of its own content (so none is deduplicated against another)."""
    names = []
    for i in range(count):
        name = f"shot{i:03d}.png"
        Image.new("RGB", (8, 8), (i % 256, i // 256, 77)).save(folder / name)
        names.append(name)
    return names


def _sandbox_assets(sandbox: EmbeddedSandbox) -> list[dict[str, Any]]:
    """Every asset the sandbox holds, read from its own API."""
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        body = httpx2.get(
            f"{sandbox.base_url}/assets",
            params={"page": page, "page_limit": 50},
            headers={"x-api-key": sandbox.api_key},
            timeout=10,
        ).json()
        out += body["data"]
        if page >= body["page_info"]["total_page"]:
            return out
        page += 1


def _count(sandbox: EmbeddedSandbox) -> int:
    """How many assets the sandbox holds (one small request: cheap enough to poll)."""
    body = httpx2.get(
        f"{sandbox.base_url}/assets",
        params={"page_limit": 1},
        headers={"x-api-key": sandbox.api_key},
        timeout=10,
    ).json()
    return int(body["page_info"]["total_results"])


async def _call(base: str, args: dict[str, Any]) -> dict[str, Any]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
        result = await c.call_tool("bulk_ingest", args)
        assert not result.is_error, text_of(result)
        data = result.structured_content
        assert isinstance(data, dict)
        while data["status"] == "in_progress" and args["wait_s"] > 0:
            waited = await c.call_tool("wait_for_task", {"id": data["job_id"], "wait_s": 60})
            assert not waited.is_error, text_of(waited)
            assert waited.structured_content
            data = waited.structured_content["result"]
        return data


def test_bulk_ingest_killed_midway_finishes_with_each_file_uploaded_once(tmp_path: Path) -> None:
    if not TL_MCP.exists():
        pytest.fail(f"{TL_MCP} is missing: install the package first (make install, or pip install -e .)")
    media = tmp_path / "media"
    media.mkdir()
    names = _images(media, FILES)
    # The sandbox lives in this process, so it outlives the MCP server it serves.
    sandbox = EmbeddedSandbox.start_in_thread(tmp_path / "sandbox-data", analyzers="none")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
        env |= {
            "TL_MCP_BACKEND": "sandbox",
            "TWELVELABS_BASE_URL": sandbox.base_url,
            "TWELVELABS_API_KEY": sandbox.api_key,
            "TL_MCP_SANDBOX_DIR": str(tmp_path / "state"),
            "TL_MCP_ALLOWED_DIRS": str(media),
        }
        args: dict[str, Any] = {"folder": str(media), "include": ["*.png"], "concurrency": 2}

        def serve(log: str) -> Any:
            port = free_port()
            command = [
                str(TL_MCP),
                "serve",
                "--transport",
                "http",
                "--port",
                str(port),
                "--auth-token",
                TOKEN,
            ]
            return running(command, env, tmp_path / log, f"http://127.0.0.1:{port}/healthz"), port

        first, port = serve("first.log")
        with first as proc:
            started = anyio.run(_call, f"http://127.0.0.1:{port}", {**args, "wait_s": 0})
            assert started["status"] == "in_progress" and started["total"] == FILES, started
            deadline = time.monotonic() + 60
            while _count(sandbox) < FILES // 4:
                assert time.monotonic() < deadline, "the first server uploaded too little in 60 s"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        at_kill = _count(sandbox)
        assert FILES // 4 <= at_kill < FILES, f"the kill came too late to test anything ({at_kill} uploaded)"

        second, port = serve("second.log")
        with second:
            done = anyio.run(_call, f"http://127.0.0.1:{port}", {**args, "wait_s": 60})
        assert done["status"] == "completed" and done["plan_id"] == started["plan_id"], done
        assert not done["failed"] and not done["skipped"] and done["pending"] == 0, done
        assert len(done["uploaded"]) + len(done["reused"]) == FILES

        assets = _sandbox_assets(sandbox)
        per_name = Counter(a["filename"] for a in assets)
        assert sorted(per_name) == names
        assert set(per_name.values()) == {1}, [n for n, c in per_name.items() if c > 1]
        reported = {row["source"]: row["asset_id"] for row in done["uploaded"] + done["reused"]}
        assert reported == {a["filename"]: a["_id"] for a in assets}
    finally:
        sandbox.stop()


def test_two_server_processes_ingesting_the_same_files_at_once_upload_and_index_each_once(
    tmp_path: Path,
) -> None:
    """Two tl-mcp processes sharing a state folder (two MCP clients on one machine), each running its own
    plan over the same files into one index: an upload or indexing the other process is sending is
    waited for, not sent again."""
    if not TL_MCP.exists():
        pytest.fail(f"{TL_MCP} is missing: install the package first (make install, or pip install -e .)")
    media = tmp_path / "media"
    media.mkdir()
    names = [tiny_video(media / f"clip{i:02d}.mp4", 12 * i).name for i in range(12)]
    sandbox = EmbeddedSandbox.start_in_thread(tmp_path / "sandbox-data", analyzers="none")
    try:
        index_id = httpx2.post(
            f"{sandbox.base_url}/indexes",
            json={
                "index_name": "together",
                "models": [{"model_name": "marengo3.0", "model_options": ["visual"]}],
            },
            headers={"x-api-key": sandbox.api_key},
        ).json()["_id"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
        env |= {
            "TL_MCP_BACKEND": "sandbox",
            "TWELVELABS_BASE_URL": sandbox.base_url,
            "TWELVELABS_API_KEY": sandbox.api_key,
            "TL_MCP_SANDBOX_DIR": str(tmp_path / "state"),
            "TL_MCP_ALLOWED_DIRS": str(media),
        }
        ports = [free_port(), free_port()]
        servers = [
            running(
                [str(TL_MCP), "serve", "--transport", "http", "--port", str(port), "--auth-token", TOKEN],
                env,
                tmp_path / f"server{i}.log",
                f"http://127.0.0.1:{port}/healthz",
            )
            for i, port in enumerate(ports)
        ]
        results: list[dict[str, Any]] = []

        async def both() -> None:
            async def one(port: int, include: list[str]) -> None:
                args = {
                    "folder": str(media),
                    "include": include,
                    "index_id": index_id,
                    "concurrency": 4,
                    "wait_s": 60,
                }
                results.append(await _call(f"http://127.0.0.1:{port}", args))

            async with anyio.create_task_group() as tg:
                tg.start_soon(one, ports[0], ["*.mp4"])
                tg.start_soon(one, ports[1], ["clip*"])

        with servers[0], servers[1]:
            anyio.run(both)
        assert all(r["status"] == "completed" and not r["failed"] for r in results), results
        per_name = Counter(a["filename"] for a in _sandbox_assets(sandbox))
        assert sorted(per_name) == names
        assert set(per_name.values()) == {1}, sorted(n for n, c in per_name.items() if c > 1)
        indexed = httpx2.get(
            f"{sandbox.base_url}/indexes/{index_id}/indexed-assets",
            params={"page_limit": 50},
            headers={"x-api-key": sandbox.api_key},
        ).json()["data"]
        assert sorted(Counter(row["asset_id"] for row in indexed).values()) == [1] * len(names), indexed
    finally:
        sandbox.stop()
