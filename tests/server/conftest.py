"""Fixtures for server tests: one embedded sandbox and one indexed sample video per test module."""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import anyio
import av
import pytest
import uvicorn
from mcp import Client
from mcp.types import CallToolResult, TextContent

from tests.services import assert_every_key_expires
from tl_mcp.config import Settings
from tl_mcp.samples import DEFAULT_SCENES, SampleInfo, make_sample_video
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_server

MODES = ("auto", "legacy")


@dataclass(frozen=True)
class World:
    sandbox: EmbeddedSandbox
    media: Path
    sample: SampleInfo
    state_dir: Path
    index_id: str
    knowledge_store_id: str
    asset_id: str
    video_id: str
    item_id: str

    def settings(self, **flags: Any) -> Settings:
        return sandbox_settings(self.sandbox, self.state_dir, self.media, **flags)


def sandbox_settings(sandbox: EmbeddedSandbox, state_dir: Path, media: Path | None, **flags: Any) -> Settings:
    env = {
        "TWELVELABS_API_KEY": sandbox.api_key,
        "TL_MCP_BACKEND": "sandbox",
        "TWELVELABS_BASE_URL": sandbox.base_url,
        "TL_MCP_SANDBOX_DIR": str(state_dir / "sandbox"),
        # The default first gap between two checks of upstream work (2 s) paces the cloud; a loopback
        # sandbox processes the sample in well under a second, so waits check sooner (same backoff after).
        "TL_MCP_POLL_INITIAL_S": "0.1",
    }
    if media is not None:
        env["TL_MCP_ALLOWED_DIRS"] = str(media)
    return Settings.from_sources(env=env, **flags)


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def call_ok(client: Client, name: str, args: dict[str, Any], **kw: Any) -> CallToolResult:
    result = await client.call_tool(name, args, **kw)
    assert not result.is_error, f"{name} failed: {text_of(result)}"
    assert isinstance(result.structured_content, dict)
    return result


async def seed_library(client: Client, video: Path, name: str) -> dict[str, str]:
    """An index and a knowledge store named `name`, with `video` uploaded, indexed and added (all ready)."""
    idx = (await call_ok(client, "create_index", {"name": name})).structured_content
    ks = (await call_ok(client, "create_knowledge_store", {"name": name})).structured_content
    assert idx and ks
    up = await call_ok(
        client,
        "upload_asset",
        {
            "path": str(video),
            "index_id": idx["id"],
            "knowledge_store_id": ks["id"],
            "wait": True,
            "wait_s": 120,
        },
    )
    data = up.structured_content
    assert data and data["status"] == "completed", data
    assert data["indexing_status"] == "ready" and data["item_status"] == "ready", data
    return {
        "index_id": idx["id"],
        "knowledge_store_id": ks["id"],
        "asset_id": data["asset_id"],
        "video_id": data["indexed_asset_id"],
        "item_id": data["item_id"],
    }


class ProgressRecorder:
    """Records the (progress, total, message) notifications a tool call or job relay sends."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.calls.append((progress, total, message))

    @property
    def text(self) -> str:
        return "".join(m for _, _, m in self.calls if m)

    def assert_increasing(self) -> None:
        values = [p for p, _, _ in self.calls]
        assert all(b > a for a, b in itertools.pairwise(values)), values


def loopback_socket() -> socket.socket:
    """A bound loopback socket, so a test knows the port before it builds the app."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serve_app(app: Any, sock: socket.socket) -> AsyncIterator[str]:
    """`app` under uvicorn on `sock` for the block; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", access_log=False))
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        with anyio.fail_after(20):
            while not server.started:  # noqa: ASYNC110 — uvicorn exposes a flag, not an event
                await anyio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True


def hls_copy(source: Path, folder: Path) -> Path:
    """The source's video as a VOD HLS playlist of 2 s segments (a key frame each), as the cloud streams."""
    playlist = folder / "index.m3u8"
    with av.open(str(source)) as src:
        opts = {"hls_time": "2", "hls_playlist_type": "vod"}
        with av.open(str(playlist), "w", format="hls", options=opts) as dst:
            stream = dst.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
            stream.options = {"preset": "ultrafast", "g": "20", "keyint_min": "20", "sc_threshold": "0"}
            for i, frame in enumerate(src.decode(video=0)):
                frame.pts, frame.time_base = i, Fraction(1, 10)
                dst.mux(stream.encode(frame.reformat(format="yuv420p")))
            dst.mux(stream.encode(None))
    return playlist


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("world")
    media = root / "media"
    media.mkdir()
    sample = make_sample_video(media / "clip.mp4", speech=False)
    sandbox = EmbeddedSandbox.start_in_thread(root / "sandbox-data", analyzers="none")
    state_dir = root / "state"
    try:
        settings = sandbox_settings(sandbox, state_dir, media)

        async def setup() -> dict[str, str]:
            async with Client(build_server(settings)) as c:
                return await seed_library(c, sample.path, "world")

        ids = anyio.run(setup)
        yield World(sandbox=sandbox, media=media, sample=sample, state_dir=state_dir, **ids)
    finally:
        sandbox.stop()


@pytest.fixture(autouse=True)
def _quiet_http_logs() -> None:
    logging.getLogger("httpx2").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _every_redis_key_expires(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test on a module's real Redis (`redis_url`): every key left there has a TTL."""
    yield
    if "redis_url" in request.fixturenames:
        assert_every_key_expires(request.getfixturevalue("redis_url"))


def tiny_video(path: Path) -> Path:
    """A 5 s, 160x90 video with no audio or subtitles: media a test only moves around, never reads."""
    make_sample_video(
        path,
        scenes=DEFAULT_SCENES[:1],
        scene_seconds=5,
        size=(160, 90),
        fps=2,
        with_audio=False,
        with_subtitles=False,
        speech=False,
    )
    return path


@contextmanager
def loopback_sandbox(root: Path) -> Iterator[EmbeddedSandbox]:
    """A sandbox that fetches URLs on loopback too (a test's own media server), which it refuses unless
    told to."""
    box = EmbeddedSandbox.start_in_thread(root, analyzers="none", allow_private_urls=True)
    try:
        yield box
    finally:
        box.stop()
