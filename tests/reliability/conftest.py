"""Reliability fixtures: one seeded sandbox data dir per session, copied for every faulted sandbox.

Seeding (sample video uploaded, indexed and added to a knowledge store) is the slow part, so it runs once;
each scenario then starts a fresh sandbox with its own fault rules on a private copy of that data, which
keeps scenarios isolated (a create that slipped through in one test cannot show up in another).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

from tests.server.conftest import sandbox_settings, seed_library, text_of
from tl_mcp.config import Settings
from tl_mcp.samples import make_sample_video
from tl_mcp.sandbox.config import FaultConfig, FaultRule
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_server

#: The one key every reliability sandbox accepts; tests assert it never leaks.
API_KEY = "tlk_reliability_" + "5ecre7" * 6

#: What the SDK says when a tool raised something other than ToolError (an unhandled exception).
BARE_SDK_ERROR = "Error executing tool {name}"


@dataclass(frozen=True)
class Seed:
    data_dir: Path
    media: Path
    index_id: str
    knowledge_store_id: str
    asset_id: str
    video_id: str
    item_id: str


@dataclass
class Env:
    """A running sandbox (with faults) on a private copy of the seed, and how to reach it."""

    seed: Seed
    sandbox: EmbeddedSandbox
    state_dir: Path

    def settings(self, **flags: Any) -> Settings:
        return sandbox_settings(self.sandbox, self.state_dir, self.seed.media, **flags)

    def server(self, **flags: Any) -> MCPServer[Any]:
        return build_server(self.settings(**flags))

    @property
    def engine(self) -> Any:
        return self.sandbox.engine


def assert_actionable(name: str, result: CallToolResult) -> str:
    """An error result that says something beyond the SDK's bare wrapper (i.e. no unhandled exception)."""
    text = text_of(result)
    assert result.is_error
    bare = BARE_SDK_ERROR.format(name=name)
    assert text.strip() != bare, f"{name}: unhandled exception (bare SDK error)"
    assert len(text.strip()) > len(bare) + 10, f"{name}: error too terse to act on: {text!r}"
    return text


@pytest.fixture(scope="session")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    root = tmp_path_factory.mktemp("reliability-seed")
    media = root / "media"
    media.mkdir()
    sample = make_sample_video(media / "clip.mp4", speech=False)
    data_dir = root / "sandbox-data"
    sandbox = EmbeddedSandbox.start_in_thread(data_dir, api_key=API_KEY, analyzers="none")
    try:
        env = Env(seed=Seed(data_dir, media, "", "", "", "", ""), sandbox=sandbox, state_dir=root / "state")

        async def setup() -> dict[str, str]:
            async with Client(env.server()) as c:
                return await seed_library(c, sample.path, "seed")

        ids = anyio.run(setup)
    finally:
        sandbox.stop()
    return Seed(data_dir=data_dir, media=media, **ids)


@contextmanager
def faulted(seed: Seed, root: Path, *rules: FaultRule, **config: Any) -> Iterator[Env]:
    """A sandbox with `rules` on a fresh copy of the seed data under `root`."""
    data_dir = root / "sandbox-data"
    shutil.copytree(seed.data_dir, data_dir)
    sandbox = EmbeddedSandbox.start_in_thread(
        data_dir, api_key=API_KEY, analyzers="none", faults=FaultConfig(rules=rules), **config
    )
    try:
        yield Env(seed=seed, sandbox=sandbox, state_dir=root / "state")
    finally:
        sandbox.stop()


@pytest.fixture(autouse=True)
def _quiet_http_logs() -> None:
    logging.getLogger("httpx2").setLevel(logging.WARNING)
