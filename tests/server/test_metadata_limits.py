"""Metadata size limits through a real MCP client against the sandbox: the tools refuse metadata over a
limit before anything is sent (so the cloud never sees it either), name the key and the limit, and
change nothing. The limits themselves are tl_mcp.metadata_limits; the sandbox's own 400s for them are
pinned in tests/sandbox/test_metadata.py."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp import Client

from tests.server.conftest import World, call_ok, text_of
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


def _sandbox(world: World) -> httpx2.Client:
    return httpx2.Client(base_url=world.sandbox.base_url, headers={"x-api-key": world.sandbox.api_key})


def _state(world: World) -> tuple[int, Any, Any, int]:
    """What a refused call must leave as it was: asset count, the asset's and the video's metadata, items."""
    with _sandbox(world) as http:
        assets = http.get("/assets").json()["page_info"]["total_results"]
        asset = http.get(f"/assets/{world.asset_id}").json().get("user_metadata")
        video = http.get(f"/indexes/{world.index_id}/videos/{world.video_id}").json().get("user_metadata")
        items = len(http.get(f"/knowledge-stores/{world.knowledge_store_id}/items").json()["data"])
    return assets, asset, video, items


async def _refused(c: Client, tool: str, args: dict[str, Any]) -> str:
    result = await c.call_tool(tool, args)
    assert result.is_error, f"{tool} should have been refused: {text_of(result)}"
    return text_of(result)


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ({" shot": "wide"}, "key ' shot' is blank, has a space at an end or holds control"),
        ({"k" * 65: "v"}, "longer than 64 characters (65)"),
        ({"note": "x" * 2049}, "`user_metadata.note` is 2049 characters long; at most 2048 are allowed"),
        ({"tags": ["t"] * 101}, "`user_metadata.tags` has 101 texts; at most 100 are allowed"),
        ({f"k{i}": "x" * 2000 for i in range(9)}, "bytes as JSON; at most 16,384 are allowed"),
    ],
)
async def test_upload_and_update_refuse_metadata_over_a_limit_before_sending(
    world: World, metadata: dict[str, Any], says: str
) -> None:
    before = _state(world)
    async with Client(build_server(world.settings())) as c:
        upload = await _refused(
            c, "upload_asset", {"path": str(world.sample.path), "user_metadata": metadata}
        )
        edit = await _refused(c, "update_metadata", {"asset_id": world.asset_id, "user_metadata": metadata})
        video = await _refused(
            c,
            "update_metadata",
            {
                "index_id": world.index_id,
                "video_id": world.video_id,
                "user_metadata": metadata,
                "replace": True,
            },
        )
    for text in (upload, edit, video):
        assert says in text and "Nothing was sent or changed" in text, text
    assert _state(world) == before


async def test_a_merge_that_would_outgrow_the_limit_is_refused_and_changes_nothing(world: World) -> None:
    async with Client(build_server(world.settings())) as c:
        half = {f"a{i}": "x" * 2000 for i in range(5)}
        await call_ok(
            c, "update_metadata", {"asset_id": world.asset_id, "user_metadata": half, "replace": True}
        )
        before = _state(world)
        more = {f"b{i}": "x" * 2000 for i in range(4)}
        text = await _refused(c, "update_metadata", {"asset_id": world.asset_id, "user_metadata": more})
        assert "at most 16,384 are allowed after this edit" in text and "Nothing was changed" in text, text
        assert _state(world) == before
        # Deleting keys in the same edit makes room: that merge fits and is applied.
        room = {**more, **{f"a{i}": None for i in range(5)}}
        done = await call_ok(c, "update_metadata", {"asset_id": world.asset_id, "user_metadata": room})
        assert done.structured_content and done.structured_content["user_metadata"] == more
        await call_ok(
            c, "update_metadata", {"asset_id": world.asset_id, "user_metadata": {}, "replace": True}
        )


async def test_store_items_are_held_to_the_documented_item_limits(world: World) -> None:
    before = _state(world)
    async with Client(build_server(world.settings())) as c:
        text = await _refused(
            c,
            "add_to_knowledge_store",
            {
                "knowledge_store_id": world.knowledge_store_id,
                "asset_id": world.asset_id,
                "metadata": {"note": "x" * 8193},
            },
        )
    assert "`metadata.note` is 8193 characters long; at most 8192 are allowed" in text, text
    assert _state(world) == before
