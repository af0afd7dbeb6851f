"""The session → knowledge store map survives restarts, stays in its backend's folder, and keeps each
session its owner's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tl_mcp.config import Settings
from tl_mcp.server.backend import open_backend
from tl_mcp.server.sessions import SessionStore


@pytest.mark.anyio
async def test_sessions_persist_across_instances(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    await SessionStore(folder).remember("sess_1", "ks_1", "")
    assert await SessionStore(folder).get("sess_1", "") == "ks_1"
    assert await SessionStore(tmp_path / "other-backend").get("sess_1", "") is None


@pytest.mark.anyio
async def test_a_session_belongs_to_the_principal_that_started_it(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    await store.remember("sess_a", "ks_a", "p_a")
    assert await store.get("sess_a", "p_a") == "ks_a"
    assert await store.get("sess_a", "p_b") is None and await store.foreign("sess_a", "p_b")
    assert not await store.foreign("sess_a", "p_a") and not await store.foreign("sess_unknown", "p_b")
    # Another principal cannot take it over by naming it.
    await store.remember("sess_a", "ks_b", "p_b")
    assert await SessionStore(tmp_path).get("sess_a", "p_a") == "ks_a"


@pytest.mark.anyio
async def test_a_change_by_another_process_is_seen(tmp_path: Path) -> None:
    first, second = SessionStore(tmp_path), SessionStore(tmp_path)
    await first.remember("sess_1", "ks_1", "")
    await second.remember("sess_2", "ks_2", "")
    # Neither write lost the other's entry.
    assert await first.get("sess_2", "") == "ks_2"
    assert await SessionStore(tmp_path).get("sess_1", "") == "ks_1"


@pytest.mark.anyio
async def test_corrupt_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "sessions.json").write_text("{not json")
    store = SessionStore(tmp_path)
    assert await store.get("s", "") is None
    await store.remember("s", "ks", "")
    assert await SessionStore(tmp_path).get("s", "") == "ks"


@pytest.mark.anyio
async def test_cloud_state_is_one_folder_per_base_url_and_key_without_the_key(tmp_path: Path) -> None:
    def cloud(key: str, url: str = "https://api.twelvelabs.io/v1.3") -> Settings:
        env = {"TWELVELABS_API_KEY": key, "TWELVELABS_BASE_URL": url, "TL_MCP_SANDBOX_DIR": str(tmp_path)}
        return Settings.from_sources(env=env)

    folders = []
    for settings in (
        cloud("tlk_first_key"),
        cloud("tlk_second_key"),
        cloud("tlk_first_key", "https://eu.example/v1.3"),
    ):
        async with open_backend(settings) as backend:
            folders.append(backend.state_dir)
            assert "tlk_" not in str(backend.state_dir) and "tlk_" not in backend.identity
    assert len(set(folders)) == 3
    async with open_backend(cloud("tlk_first_key")) as again:
        assert again.state_dir == folders[0]
