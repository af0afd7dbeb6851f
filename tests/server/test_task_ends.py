"""Analysis and embedding tasks that end badly, driven for real through a real MCP client: the sandbox
fails a task whose media it cannot decode, and a job outlives TL_MCP_JOB_LIFETIME_S while its task is
still waiting on slow media. Each time the agent gets an error that says what failed, why and what to
do, and the call it names works."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from tests.server.conftest import (
    loopback_sandbox,
    loopback_socket,
    sandbox_settings,
    serve_app,
    text_of,
    tiny_video,
)
from tests.server.test_next_steps import parse_calls
from tl_mcp.config import Settings
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

#: Quick polling, so a task's end is seen within a fraction of a second.
FAST = {"poll_initial_s": 0.1, "poll_max_s": 0.3}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_video(tmp_path_factory.mktemp("task-media") / "clip.mp4")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSandbox]:
    with loopback_sandbox(tmp_path_factory.mktemp("task-ends") / "data") as box:
        yield box


class Media:
    """`/broken.mp4`: bytes no decoder reads; `/slow.mp4`: the real video, after `delay_s`."""

    def __init__(self, video: Path) -> None:
        self.video = video
        self.delay_s = 0.0
        self.base = ""

    async def broken(self, request: Request) -> Response:
        return Response(b"\x00\x00\x00\x18ftypmp42" + b"not a video at all " * 400, media_type="video/mp4")

    async def slow(self, request: Request) -> Response:
        await anyio.sleep(self.delay_s)
        return FileResponse(self.video, media_type="video/mp4")


@pytest.fixture
async def media(video: Path) -> AsyncIterator[Media]:
    served = Media(video)
    app = Starlette(routes=[Route("/broken.mp4", served.broken), Route("/slow.mp4", served.slow)])
    async with serve_app(app, loopback_socket()) as base:
        served.base = base
        yield served


def settings_for(sandbox: EmbeddedSandbox, tmp_path: Path, **flags: Any) -> Settings:
    return sandbox_settings(sandbox, tmp_path / "state", None, toolsets="all", **FAST, **flags)


async def _error(c: Client, name: str, args: dict[str, Any]) -> str:
    result = await c.call_tool(name, args)
    assert result.is_error, f"{name} should have failed: {text_of(result)}"
    return text_of(result)


async def test_a_task_on_media_the_sandbox_cannot_decode_fails_with_an_actionable_error(
    sandbox: EmbeddedSandbox, media: Media, tmp_path: Path
) -> None:
    broken = f"{media.base}/broken.mp4"
    async with Client(build_server(settings_for(sandbox, tmp_path))) as c:
        analysis = await _error(
            c, "start_analysis_task", {"url": broken, "prompt": "Describe it.", "wait_s": 60}
        )
        embedding = await _error(c, "create_embedding", {"video_url": broken, "wait_s": 60})
        # The same task, watched by its id: a finished result (not an error) that says the same.
        task_id = analysis.split("Video analysis task ", 1)[1].split(" ", 1)[0]
        watched = await c.call_tool("wait_for_task", {"id": task_id, "kind": "analyze_task", "wait_s": 10})
    for text, what in ((analysis, "Video analysis task"), (embedding, "Video embedding task")):
        assert f"{what} " in text and "ended with status failed" in text, text
        # Why: the sandbox's own reason, not a generic line.
        assert "could not be processed" in text or "not a readable" in text or "decod" in text, text
        # What to do: nothing more comes of it; fix the media and start the work again.
        assert "start it again" in text, text
    assert not watched.is_error and watched.structured_content, text_of(watched)
    assert watched.structured_content["status"] == "failed" and watched.structured_content["done"]
    assert "start it again" in text_of(watched) and "{'" not in text_of(watched), text_of(watched)


async def test_a_job_that_outlives_its_lifetime_expires_and_names_the_call_that_follows_the_task(
    sandbox: EmbeddedSandbox, media: Media, tmp_path: Path
) -> None:
    # Long enough that the task is started (and named) before the job expires, even on a loaded machine.
    media.delay_s = 3.5
    slow = f"{media.base}/slow.mp4"
    async with Client(build_server(settings_for(sandbox, tmp_path, job_lifetime_s=1.5))) as c:
        for name, args, kind in (
            ("start_analysis_task", {"url": slow, "prompt": "Describe it.", "wait_s": 30}, "analyze_task"),
            ("create_embedding", {"video_url": slow + "?embed", "wait_s": 30}, "embedding_task"),
        ):
            text = await _error(c, name, args)
            assert "expired: the server gave up after 1.5 s (TL_MCP_JOB_LIFETIME_S)" in text, text
            assert "The work may still go on upstream; check it with wait_for_task(" in text, text
            (hinted,) = [a for n, a in parse_calls(text) if n == "wait_for_task"]
            assert hinted["kind"] == kind, hinted
            with anyio.fail_after(60):
                while True:
                    followed = await c.call_tool("wait_for_task", {**hinted, "wait_s": 10})
                    assert not followed.is_error, text_of(followed)
                    data = followed.structured_content
                    assert data is not None
                    if data["done"]:
                        break
            assert data["status"] == "ready", data
