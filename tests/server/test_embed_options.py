"""create_embedding's video options and an indexed video's stored embeddings, through a real MCP client
against the embedded sandbox (which computes each option for real)."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.server.conftest import World, call_ok, text_of
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


def _spans(result: dict[str, object], option: str, scope: str) -> list[tuple[float, float]]:
    vectors = result["embeddings"]
    assert isinstance(vectors, list)
    return [(v["start_sec"], v["end_sec"]) for v in vectors if v["option"] == option and v["scope"] == scope]


async def test_clip_length_offsets_scopes_and_options_shape_the_vectors(world: World) -> None:
    async with Client(build_server(world.settings())) as c:
        args = {
            "video_asset_id": world.asset_id,
            "clip_length": 4,
            "start_sec": 2,
            "end_sec": 14,
            "scopes": ["clip", "video"],
            "options": ["visual", "audio"],
            "wait_s": 60,
        }
        data = (await call_ok(c, "create_embedding", args)).structured_content
        assert data and data["status"] == "completed", data
        assert _spans(data, "visual", "clip") == [(2.0, 6.0), (6.0, 10.0), (10.0, 14.0)]
        assert _spans(data, "audio", "clip") == [(2.0, 6.0), (6.0, 10.0), (10.0, 14.0)]
        assert _spans(data, "visual", "asset") == [(2.0, 14.0)]
        assert not [v for v in data["embeddings"] if v["option"] == "transcription"]
        # Audio fingerprints and frame vectors are different embedders: their lengths differ.
        dims = {v["option"]: v["dims"] for v in data["embeddings"]}
        assert dims["audio"] == 128 and dims["visual"] != 128

        only = {"video_asset_id": world.asset_id, "scopes": ["video"], "options": ["transcription"]}
        words = (await call_ok(c, "create_embedding", {**only, "wait_s": 60})).structured_content
        assert words and [(v["option"], v["scope"]) for v in words["embeddings"]] == [
            ("transcription", "asset")
        ]


async def test_fused_joins_the_chosen_options_and_says_how(world: World) -> None:
    async with Client(build_server(world.settings())) as c:
        args = {
            "video_asset_id": world.asset_id,
            "clip_length": 6,
            "scopes": ["clip"],
            "options": ["visual", "audio"],
            "fused": True,
            "wait_s": 60,
        }
        result = await call_ok(c, "create_embedding", args)
        data = result.structured_content
        assert data
        by_option: dict[str, list[int]] = {}
        for v in data["embeddings"]:
            by_option.setdefault(v["option"], []).append(v["dims"])
        assert set(by_option) == {"visual", "audio", "fused"}
        # Offline, a fused vector is the two vectors side by side, and the result says so.
        assert by_option["fused"][0] == by_option["visual"][0] + by_option["audio"][0]
        assert data["notes"] and any("concatenate" in n for n in data["notes"])
        assert "concatenate" in text_of(result)


async def test_an_indexed_videos_stored_embeddings(world: World) -> None:
    async with Client(build_server(world.settings())) as c:
        args = {"video_id": world.video_id, "index_id": world.index_id, "options": ["visual", "audio"]}
        result = await call_ok(c, "create_embedding", args)
        data = result.structured_content
        assert data and data["input_type"] == "video" and data["status"] == "completed"
        visual = [v for v in data["embeddings"] if v["option"] == "visual"]
        audio = [v for v in data["embeddings"] if v["option"] == "audio"]
        # One per analysed segment, each with its span; audio is a sound fingerprint, not a text vector.
        assert visual and [v["start_sec"] for v in visual] == [v["start_sec"] for v in audio]
        assert audio[0]["dims"] == 128 and visual[0]["dims"] != 128
        assert all(v["end_sec"] > v["start_sec"] for v in visual)
        # The hint for the full vectors names the same video, and following it returns them.
        assert 'create_embedding(video_id="' in text_of(result) and "include_vector=true" in text_of(result)
        full = (await call_ok(c, "create_embedding", {**args, "include_vector": True})).structured_content
        assert full and len(full["embeddings"][0]["vector"]) == full["embeddings"][0]["dims"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"clip_length": 1}, "clip_length"),
        ({"clip_length": 11}, "clip_length"),
        ({"start_sec": 8, "end_sec": 4}, "end_sec"),
        ({"options": ["visual"], "fused": True}, "fused needs at least two options"),
        (
            {"text": "apples", "clip_length": 4},
            "clip_length applies to video_path, video_url, video_asset_id",
        ),
        ({"video_id": "v1"}, "video_id needs its index_id"),
        ({"text": "apples", "index_id": "i1"}, "index_id goes with video_id"),
    ],
)
async def test_bad_options_are_refused_before_anything_starts(
    world: World, args: dict[str, object], says: str
) -> None:
    call = {"video_asset_id": world.asset_id, **args}
    if "text" in args or "video_id" in args:
        call.pop("video_asset_id")
    async with Client(build_server(world.settings())) as c:
        before = (await call_ok(c, "list_videos", {"index_id": world.index_id})).structured_content
        result = await c.call_tool("create_embedding", call)
        assert result.is_error and says in text_of(result), text_of(result)
        assert "job_" not in text_of(result)
        after = (await call_ok(c, "list_videos", {"index_id": world.index_id})).structured_content
        assert before == after


async def test_an_offset_past_the_end_fails_with_the_duration(world: World) -> None:
    async with Client(build_server(world.settings())) as c:
        args = {"video_asset_id": world.asset_id, "start_sec": 500, "wait_s": 30}
        result = await c.call_tool("create_embedding", args)
        assert result.is_error, text_of(result)
        said = text_of(result)
        assert "500 s" in said and f"{world.sample.duration:g} s video" in said, said


async def test_long_text_is_cut_to_the_window_by_a_model_that_can_and_refused_by_one_that_cannot(
    world: World,
) -> None:
    long_text = " ".join(["apples"] * 2100)
    async with Client(build_server(world.settings())) as c:
        result = await call_ok(c, "create_embedding", {"text": long_text, "model_name": "marengo3.5"})
        data = result.structured_content
        assert data and data["embeddings"][0]["dims"] > 0
        assert data["notes"] and "cut to its first 2000 tokens" in data["notes"][0]
        assert "cut to its first 2000 tokens" in text_of(result)
        refused = await c.call_tool("create_embedding", {"text": long_text})
        assert refused.is_error and "500 tokens" in text_of(refused) and "marengo3.5" in text_of(refused)
