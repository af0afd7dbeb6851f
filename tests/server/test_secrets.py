"""Keys and tokens never show up in results, errors, logs or reprs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mcp import Client

from tests.server.conftest import World, call_ok, sandbox_settings, text_of
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


async def test_api_key_is_absent_from_results_and_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = world.sandbox.api_key
    texts: list[str] = []
    async with Client(build_server(world.settings())) as c:
        for name, args in [
            ("list_indexes", {}),
            ("search_videos", {"query": "apples", "index_id": world.index_id, "include_thumbnails": 1}),
            ("create_response", {"knowledge_store_id": world.knowledge_store_id, "input": "apples?"}),
            ("get_video", {"index_id": world.index_id, "video_id": "missing"}),
            ("upload_asset", {"path": "/etc/shadow"}),
        ]:
            result = await c.call_tool(name, args)
            texts.append(text_of(result) + repr(result.structured_content))
    assert key not in "".join(texts)
    assert key not in caplog.text
    assert key not in repr(world.settings())


async def test_wrong_key_error_is_actionable_and_does_not_echo_it(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "tlk_wrong_" + "9" * 24
    settings = sandbox_settings(world.sandbox, tmp_path, None).model_copy(
        update={"api_key": type(world.settings().api_key)(wrong)}  # SecretStr
    )
    async with Client(build_server(settings)) as c:
        result = await c.call_tool("list_indexes", {})
    text = text_of(result)
    assert result.is_error and "HTTP 401" in text and "TWELVELABS_API_KEY" in text
    assert wrong not in text and wrong not in caplog.text


async def test_ok_results_do_not_contain_tokens_of_http_settings(world: World) -> None:
    settings = world.settings(auth_tokens=["very-secret-token-123"])
    assert "very-secret-token-123" not in repr(settings) and "very-secret-token-123" not in str(settings)
    async with Client(build_server(settings)) as c:
        result = await call_ok(c, "list_knowledge_stores", {})
    assert "very-secret-token-123" not in text_of(result)
