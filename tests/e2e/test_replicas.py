"""Two `tl-mcp serve --transport http` replicas on one standalone sandbox, as behind a load balancer.

A job started on replica A is finished through replica B, which never saw it: its id carries the
upstream handles, signed with the shared TL_MCP_STATE_KEYS. An altered id is refused on both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.processes import TL_MCP, free_port, running
from tests.server.conftest import text_of
from tl_mcp.samples import make_sample_video

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TOKEN = "replica-token-" + "y" * 20
SANDBOX_KEY = "k-replicas-" + "z" * 12
STATE_KEYS = "a" * 40 + "," + "b" * 40


def _clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
    env.update({"TL_MCP_SANDBOX_ANALYZERS": "none", "TL_MCP_SANDBOX_DIR": str(tmp / "unused")})
    return env


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path, list[Path]]]:
    if not TL_MCP.exists():
        pytest.fail(f"{TL_MCP} is missing: install the package first (make install, or pip install -e .)")
    tmp = tmp_path_factory.mktemp("replicas")
    media = tmp / "media"
    media.mkdir()
    make_sample_video(media / "clip.mp4", speech=False)
    sb_port = free_port()
    sandbox_env = {**_clean_env(tmp), "TL_MCP_SANDBOX_API_KEYS": SANDBOX_KEY}
    base_url = f"http://127.0.0.1:{sb_port}/v1.3"
    with running(
        [str(TL_MCP), "sandbox", "--port", str(sb_port), "--data-dir", str(tmp / "sandbox")],
        sandbox_env,
        tmp / "sandbox.log",
        f"{base_url}/indexes",
        headers={"x-api-key": SANDBOX_KEY},
    ):
        env = {
            **_clean_env(tmp),
            "TWELVELABS_API_KEY": SANDBOX_KEY,
            "TL_MCP_STATE_KEYS": STATE_KEYS,
            "TL_MCP_AUTH_TOKENS": TOKEN,
            "TL_MCP_ALLOWED_DIRS": str(media),
        }
        urls: list[str] = []
        logs = [tmp / "replica-a.log", tmp / "replica-b.log"]
        ports = [free_port(), free_port()]
        serve = [str(TL_MCP), "serve", "--transport", "http", "--backend", "sandbox", "--base-url", base_url]
        with (
            running([*serve, "--port", str(ports[0])], env, logs[0], f"http://127.0.0.1:{ports[0]}/healthz"),
            running([*serve, "--port", str(ports[1])], env, logs[1], f"http://127.0.0.1:{ports[1]}/healthz"),
        ):
            urls = [f"http://127.0.0.1:{p}/mcp" for p in ports]
            yield urls[0], urls[1], media, logs
        for log in logs:
            text = log.read_text()
            assert TOKEN not in text and SANDBOX_KEY not in text and "a" * 40 not in text


async def _ok(c: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await c.call_tool(name, args)
    assert not result.is_error, f"{name}: {text_of(result)}"
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_a_job_started_on_one_replica_finishes_on_the_other(
    replicas: tuple[str, str, Path, list[Path]],
) -> None:
    url_a, url_b, media, _ = replicas
    with anyio.fail_after(60):
        async with AsyncExitStack() as stack:
            clients = []
            for url in (url_a, url_b):
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
                )
                clients.append(
                    await stack.enter_async_context(Client(streamable_http_client(url, http_client=http)))
                )
            a, b = clients
            index = await _ok(a, "create_index", {"name": "replicas"})
            started = await _ok(
                a,
                "upload_asset",
                {"path": str(media / "clip.mp4"), "index_id": index["id"], "wait": True, "wait_s": 0},
            )
            assert started["status"] == "in_progress", started
            job_id = started["job_id"]
            # The id carries the handles another replica needs, so it was handed out once they existed.
            assert started["asset_id"] and started["indexed_asset_id"] and started["asset_id"] in job_id

            waited = await _ok(b, "wait_for_task", {"id": job_id, "wait_s": 45})
            assert waited["done"] is True and waited["status"] == "completed", waited
            assert waited["kind"] == "job:upload"
            result = waited["result"]
            assert result["status"] == "completed" and result["indexing_status"] == "ready"
            assert result["indexed_asset_id"] == started["indexed_asset_id"]
            assert result["asset_id"] == started["asset_id"] and result["index_id"] == index["id"]
            assert result["filename"] == "clip.mp4" and result["size_bytes"] == started["size_bytes"]

            # Replica A, which ran the job, answers the same id with the same outcome.
            again = await _ok(a, "wait_for_task", {"id": job_id, "wait_s": 30})
            assert again["done"] and again["result"]["indexed_asset_id"] == result["indexed_asset_id"]

            # One changed character in the handles (here: another asset's id) is refused on both replicas.
            asset = started["asset_id"]
            forged = job_id.replace(asset, asset[:-1] + ("0" if asset[-1] != "0" else "1"))
            for client in (a, b):
                refused = await client.call_tool("wait_for_task", {"id": forged, "wait_s": 1})
                assert refused.is_error and "signature does not match" in text_of(refused)
                assert "TL_MCP_STATE_KEYS" in text_of(refused)
