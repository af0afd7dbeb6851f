"""Jockey sessions outlive the server process on the embedded sandbox, and stay with their sandbox.

The embedded sandbox listens on a new random port at every start, and the session map used to be keyed
by that URL and written next to (not inside) TL_MCP_SANDBOX_DIR: a client that starts a server per call
(the MCP Inspector) could never continue a session by its id, and sandboxes under one parent shared a
file. Here real stdio server processes run one after the other on the same data dir.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.reliability.conftest import Seed
from tests.server.conftest import call_ok, text_of
from tl_mcp.config import Settings
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "What do the videos say about apples?"


def _sandbox_copy(seed: Seed, where: Path) -> Path:
    shutil.copytree(seed.data_dir, where)
    return where


def _stdio(sandbox_dir: Path) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "TL_MCP_BACKEND": "sandbox",
            "TL_MCP_SANDBOX_DIR": str(sandbox_dir),
            "TL_MCP_SANDBOX_ANALYZERS": "none",
        }
    )
    return StdioServerParameters(
        command=sys.executable, args=["-m", "tl_mcp.cli", "serve"], env=env, cwd=ROOT
    )


async def _ask(client: Client, seed: Seed) -> dict[str, Any]:
    first = await call_ok(
        client, "create_response", {"knowledge_store_id": seed.knowledge_store_id, "input": QUESTION}
    )
    assert first.structured_content and first.structured_content["session_id"]
    return first.structured_content


async def test_a_new_server_process_continues_a_session_by_its_id_alone(seed: Seed, tmp_path: Path) -> None:
    sandbox_dir = _sandbox_copy(seed, tmp_path / "sandbox")
    with anyio.fail_after(120):
        async with Client(_stdio(sandbox_dir)) as first:
            session = (await _ask(first, seed))["session_id"]
        async with Client(_stdio(sandbox_dir)) as second:
            follow = await call_ok(second, "continue_session", {"session_id": session, "input": "And pears?"})
    data = follow.structured_content
    assert data and data["session_id"] == session and data["knowledge_store_id"] == seed.knowledge_store_id


async def test_sandboxes_under_one_parent_keep_their_own_sessions(
    seed: Seed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TL_MCP_SANDBOX_ANALYZERS", "none")
    one = _sandbox_copy(seed, tmp_path / "one")
    two = _sandbox_copy(seed, tmp_path / "two")

    def server(sandbox_dir: Path) -> Any:
        env = {"TL_MCP_BACKEND": "sandbox", "TL_MCP_SANDBOX_DIR": str(sandbox_dir)}
        return build_server(Settings.from_sources(env=env))

    with anyio.fail_after(120):
        async with Client(server(one)) as c:
            session = (await _ask(c, seed))["session_id"]
        # Nothing of the server's lands beside the sandboxes, where another one would read it.
        assert sorted(os.listdir(tmp_path)) == ["one", "two"]
        async with Client(server(two)) as c:
            other = await c.call_tool("continue_session", {"session_id": session, "input": "And pears?"})
            assert other.is_error and "knowledge_store_id" in text_of(other), text_of(other)
        async with Client(server(one)) as c:
            await call_ok(c, "continue_session", {"session_id": session, "input": "And pears?"})
