"""Hostile: an upstream whose work never finishes, or keeps answering 503 for a while.

What the review saw: jobs against such an upstream never ended, each polling every 2 s forever (200 jobs:
~100 requests/s). Now a job ends as "expired" within its (here shortened) lifetime and names the call that
checks the upstream work directly; every wait backs off, measured by counting requests; a 503 with
Retry-After is waited out, not the end of the watch.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from statistics import mean

import anyio
import pytest
from mcp import Client

from tests.reliability.upstream import NeverFinishes, fake_upstream_settings
from tests.server.conftest import call_ok, text_of
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

FAST = {"TL_MCP_POLL_INITIAL_S": "0.1", "TL_MCP_POLL_MAX_S": "0.8"}


async def test_a_job_that_never_finishes_expires_with_bounded_polling(tmp_path: Path) -> None:
    upstream = NeverFinishes()
    async with upstream.serving() as api:
        settings = fake_upstream_settings(api, tmp_path, TL_MCP_JOB_LIFETIME_S="3", **FAST)
        async with Client(build_server(settings)) as c:
            started = time.monotonic()
            first = await call_ok(
                c, "create_embedding", {"video_url": "https://media.example/v.mp4", "wait_s": 0}
            )
            data = first.structured_content
            assert data is not None and data["status"] == "in_progress"
            with anyio.fail_after(20):
                ended = await c.call_tool("wait_for_task", {"id": data["job_id"], "wait_s": 15})
            elapsed = time.monotonic() - started
            text = text_of(ended)
            assert ended.is_error, text
            # The final status says what happened, after how long, and how to check the task itself.
            assert "expired" in text and "3 s" in text and "TL_MCP_JOB_LIFETIME_S" in text, text
            assert 'wait_for_task(id="task_1", kind="embedding_task")' in text, text
            assert 2.5 <= elapsed < 10, elapsed
            checks = len(upstream.checks["task_1"])
            # Fixed 0.1 s polling would be ~30 checks in 3 s; backing off to 0.8 s gives about 9.
            assert 4 <= checks <= 14, checks
            await anyio.sleep(1.5)
            assert len(upstream.checks["task_1"]) == checks, "an expired job still polls"
            # Asking again gives the same final answer, at once.
            again = await c.call_tool("wait_for_task", {"id": data["job_id"], "wait_s": 5})
            assert again.is_error and "expired" in text_of(again)


async def test_waiting_on_an_upstream_id_backs_off(tmp_path: Path) -> None:
    upstream = NeverFinishes()
    async with upstream.serving() as api:
        settings = fake_upstream_settings(api, tmp_path, TL_MCP_POLL_INITIAL_S="0.1", TL_MCP_POLL_MAX_S="2")
        async with Client(build_server(settings)) as c:
            progress: list[str] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                progress.append(message or "")

            args = {"id": "task_77", "kind": "embedding_task", "wait_s": 5}
            result = await call_ok(c, "wait_for_task", args, progress_callback=on_progress)
    data = result.structured_content
    assert data is not None and not data["done"] and data["status"] == "processing"
    times = upstream.checks["task_77"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 4 <= len(times) <= 14, len(times)
    # The gaps grow: the later half waits far longer than the first.
    half = len(gaps) // 2
    assert mean(gaps[half:]) > 2.5 * mean(gaps[:half]), gaps
    assert progress and progress[0] == "embedding_task: processing"


async def test_a_503_with_retry_after_is_waited_out_while_watching(tmp_path: Path) -> None:
    # Five 503s outlast the request retry policy (4 attempts): the watch itself must ride them out.
    upstream = NeverFinishes(busy={"task_busy": 5}, retry_after_s=1)
    async with upstream.serving() as api:
        settings = fake_upstream_settings(api, tmp_path, **FAST)
        async with Client(build_server(settings)) as c:
            args = {"id": "task_busy", "kind": "embedding_task", "wait_s": 20}
            result = await call_ok(c, "wait_for_task", args)
    data = result.structured_content
    assert data is not None and data["done"] and data["status"] == "ready", data
    times = upstream.checks["task_busy"]
    assert len(times) == 6, times
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Every check after a 503 came at least Retry-After later (0.1 s backoff alone would be sooner).
    assert min(gaps) >= 0.9, gaps


async def test_an_upstream_that_stays_down_ends_the_wait_with_its_error_in_bounded_time(
    tmp_path: Path,
) -> None:
    upstream = NeverFinishes(busy={"task_down": 10_000}, retry_after_s=1)
    async with upstream.serving() as api:
        settings = fake_upstream_settings(api, tmp_path, **FAST)
        async with Client(build_server(settings)) as c:
            started = time.monotonic()
            with anyio.fail_after(30):
                result = await c.call_tool(
                    "wait_for_task", {"id": "task_down", "kind": "embedding_task", "wait_s": 2}
                )
            elapsed = time.monotonic() - started
    # Nothing ever answered: the error says so, instead of an "unknown" status, and waiting stopped.
    assert result.is_error and "HTTP 503" in text_of(result), text_of(result)
    assert elapsed < 12, elapsed
    assert len(upstream.checks["task_down"]) <= 8, len(upstream.checks["task_down"])
