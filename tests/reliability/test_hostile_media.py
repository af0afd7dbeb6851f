"""An HLS playlist in an allowed folder, uploaded through the MCP tools, must not let a video from outside
every allowed folder reach the model: no moment of it, no thumbnail of it, whichever layer refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from mcp.types import ImageContent

from tests.hostile_media import mpegts_copy, referencing_files
from tests.server.conftest import call_ok, sandbox_settings, text_of
from tl_mcp.samples import make_sample_image, make_sample_video
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


@pytest.mark.timeout(180)
async def test_a_playlist_upload_never_returns_a_frame_from_outside_allowed_folders(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    secret = make_sample_video(elsewhere / "secret.mp4", scene_seconds=3.0, with_audio=False, speech=False)
    segment = mpegts_copy(secret.path, elsewhere / "secret.ts")
    # What the secret video looks like: an image query that finds its frames if they were ever indexed.
    query = make_sample_image(allowed / "looks-like-the-secret.png", scene_index=0)
    data_dir = tmp_path / "sandbox-data"
    forms = referencing_files(segment, data_dir / "media" / "x")

    sandbox = EmbeddedSandbox.start_in_thread(data_dir, analyzers="none")
    try:
        async with Client(build_server(sandbox_settings(sandbox, tmp_path / "state", allowed))) as client:
            index = (await call_ok(client, "create_index", {"name": "hostile"})).structured_content
            assert index is not None
            indexed: list[str] = []
            for form in ("hls-absolute", "hls-file-url", "hls-relative"):
                for name in (f"{form}.m3u8", f"{form}.mp4"):
                    (allowed / name).write_text(forms[form])
                    result = await client.call_tool(
                        "upload_asset",
                        {"path": str(allowed / name), "index_id": index["id"], "wait": True, "wait_s": 60},
                    )
                    data = result.structured_content or {}
                    if not result.is_error and data.get("indexing_status") == "ready":
                        indexed.append(name)

            found = await call_ok(
                client,
                "search_videos",
                {"image_path": str(query), "index_id": index["id"], "include_thumbnails": 5},
            )
            assert found.structured_content is not None
            assert not [c for c in found.content if isinstance(c, ImageContent)], "a thumbnail came back"
            assert found.structured_content["moments"] == [], text_of(found)
            assert indexed == [], f"indexed, with whatever FFmpeg opened: {indexed}"
    finally:
        sandbox.stop()
