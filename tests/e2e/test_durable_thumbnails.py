"""A moment's picture outlives the server that found it: `tl-mcp serve` over stdio finds a moment and a
Jockey citation and exits; a second `tl-mcp serve` on the same sandbox data (a new embedded port) reads
both pictures by their `thumbnail_uri`, while the first server's signed URLs are dead."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.types import BlobResourceContents

from tests.e2e.processes import TL_MCP
from tests.e2e.test_installed_server import _env, _ok
from tests.server.answers_support import COOKING, FOUR_SCENES, scene_of
from tl_mcp.samples import make_sample_video

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def _server(tmp: Path, media: Path) -> StdioServerParameters:
    return StdioServerParameters(command=str(TL_MCP), args=["serve"], env=_env(tmp, media))


async def test_thumbnail_resources_outlive_the_server_process(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    sample = make_sample_video(media / "four.mp4", scenes=FOUR_SCENES)
    with anyio.fail_after(150):
        async with Client(_server(tmp_path, media)) as first:
            index = await _ok(first, "create_index", {"name": "durable"})
            store = await _ok(first, "create_knowledge_store", {"name": "durable"})
            upload = await _ok(
                first,
                "upload_asset",
                {
                    "path": str(media / "four.mp4"),
                    "index_id": index["id"],
                    "knowledge_store_id": store["id"],
                    "wait": True,
                    "wait_s": 120,
                },
            )
            assert upload["indexing_status"] == "ready" and upload["item_status"] == "ready", upload
            found = await _ok(first, "search_videos", {"query": "cooking pasta", "index_id": index["id"]})
            moment: dict[str, Any] = found["moments"][0]
            answer = await _ok(
                first, "create_response", {"knowledge_store_id": store["id"], "input": "How do I cook pasta?"}
            )
            (cite,) = answer["citations"]
        # The first server and its embedded sandbox are gone, and with them every signed URL they gave.
        async with httpx2.AsyncClient() as http:
            with pytest.raises(httpx2.ConnectError):
                await http.get(moment["thumbnail_url"])
        async with Client(_server(tmp_path, media)) as second:
            templates = {t.uri_template for t in (await second.list_resource_templates()).resource_templates}
            assert "twelvelabs://thumbnails/{media_id}/{seconds}" in templates
            for uri in (moment["thumbnail_uri"], cite["thumbnail_uri"]):
                (blob,) = (await second.read_resource(uri)).contents
                assert isinstance(blob, BlobResourceContents) and blob.mime_type == "image/jpeg", uri
                assert scene_of(sample, base64.b64decode(blob.blob)) == COOKING, uri
            first_scene = (
                await second.read_resource(f"twelvelabs://thumbnails/{upload['asset_id']}/0")
            ).contents
            assert isinstance(first_scene[0], BlobResourceContents)
            assert scene_of(sample, base64.b64decode(first_scene[0].blob)) == 0
            with pytest.raises(MCPError, match="does not exist"):
                await second.read_resource("twelvelabs://thumbnails/no-such-video/1")
