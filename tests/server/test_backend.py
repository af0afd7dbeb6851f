"""Opening the backend: the embedded sandbox is built from the server's settings, not its process env."""

from __future__ import annotations

from pathlib import Path

import pytest

from tl_mcp.config import Settings
from tl_mcp.server.backend import open_backend


@pytest.mark.anyio
async def test_the_embedded_sandbox_takes_its_analyzers_from_the_settings_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The process says one thing, the mapping the settings were read from another: like every other
    # setting, the mapping is what counts (an unusable selection here would fail the sandbox's start).
    monkeypatch.setenv("TL_MCP_SANDBOX_ANALYZERS", "not-an-analyzer")
    settings = Settings.from_sources(
        env={
            "TL_MCP_BACKEND": "sandbox",
            "TL_MCP_SANDBOX_DIR": str(tmp_path),
            "TL_MCP_SANDBOX_ANALYZERS": "none",
        }
    )
    assert settings.sandbox_analyzers == "none"
    caplog.set_level("INFO", logger="tl_mcp.sandbox")
    async with open_backend(settings) as backend:
        assert backend.kind == "sandbox"
        assert (await backend.client.indexes.list()).data == []
    notes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("analyzer note:")]
    assert "analyzer note: speech: off (not selected; analyzer selection 'none')" in notes, notes


def test_the_embedded_sandbox_analyzers_default_to_auto_and_a_flag_wins() -> None:
    assert Settings.from_sources(env={}).sandbox_analyzers == "auto"
    env = {"TL_MCP_SANDBOX_ANALYZERS": "none"}
    assert Settings.from_sources(env=env, sandbox_analyzers="speech,ocr").sandbox_analyzers == "speech,ocr"
