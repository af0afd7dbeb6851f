"""What an agent's session found wrong with single tools (issue 9, items 14-19), through the SDK client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, TextResourceContents

from tests.server.conftest import MODES, ProgressRecorder, World, call_ok, seed_library, text_of
from tl_mcp.api import TwelveLabsClient
from tl_mcp.samples import SceneSpec, make_sample_video
from tl_mcp.server import build_server
from tl_mcp.server.jobs.job import Job
from tl_mcp.server.jobs.relay import relay
from tl_mcp.server.prompts import PERSONAS

pytestmark = pytest.mark.anyio

MISSING = "0" * 24


async def _asset_count(world: World) -> int:
    async with TwelveLabsClient(world.sandbox.api_key, world.sandbox.base_url) as api:
        page = await api.assets.list(page=1, page_limit=50)
        assert page.page_info.total_results is not None
        return page.page_info.total_results


@pytest.mark.parametrize("mode", MODES)
async def test_a_bad_prompt_argument_is_invalid_params_that_lists_what_is_accepted(
    world: World, mode: str
) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        ks = world.knowledge_store_id
        with pytest.raises(MCPError) as persona:
            await c.get_prompt("corpus_overview", {"knowledge_store_id": ks, "persona": "pirate"})
        assert persona.value.error.code == INVALID_PARAMS
        message = persona.value.error.message
        assert "persona" in message and "pirate" in message
        assert all(name in message for name in PERSONAS), message
        with pytest.raises(MCPError) as unknown:
            await c.get_prompt("corpus_overview", {"knowledge_store_id": ks, "tone": "dry"})
        assert unknown.value.error.code == INVALID_PARAMS
        assert "tone is not an argument" in unknown.value.error.message
        with pytest.raises(MCPError) as missing:
            await c.get_prompt("track_entity", {"knowledge_store_id": ks})
        assert (
            missing.value.error.code == INVALID_PARAMS and "entity is required" in missing.value.error.message
        )


@pytest.mark.parametrize("mode", MODES)
async def test_delete_asset_takes_force_and_a_repeated_delete_says_it_was_already_gone(
    world: World, mode: str
) -> None:
    async with Client(build_server(world.settings(toolsets="all")), mode=mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert "force" in tools["delete_asset"].input_schema["properties"]
        index = (await call_ok(c, "create_index", {"name": f"deletes-{mode}"})).structured_content
        assert index
        up = await call_ok(
            c, "upload_asset", {"path": str(world.sample.path), "index_id": index["id"], "wait": True}
        )
        asset_id = up.structured_content and up.structured_content["asset_id"]
        assert asset_id
        refused = await c.call_tool("delete_asset", {"asset_id": asset_id})
        assert refused.is_error
        assert f'delete_asset(asset_id="{asset_id}", force=true)' in text_of(refused)
        forced = await call_ok(c, "delete_asset", {"asset_id": asset_id, "force": True})
        assert forced.structured_content and forced.structured_content["deleted"] is True
        again = await call_ok(c, "delete_asset", {"asset_id": asset_id, "force": True})
        assert again.structured_content and again.structured_content["deleted"] is False
        assert "does not exist" in text_of(again) and "Nothing was changed" in text_of(again)
        await call_ok(c, "delete_index", {"index_id": index["id"]})
        twice = await call_ok(c, "delete_index", {"index_id": index["id"]})
        assert twice.structured_content and twice.structured_content["deleted"] is False


@pytest.mark.parametrize("mode", MODES)
async def test_upload_to_a_missing_index_or_store_is_refused_before_anything_is_sent(
    world: World, mode: str
) -> None:
    before = await _asset_count(world)
    async with Client(build_server(world.settings()), mode=mode) as c:
        for where, what in (("index_id", "index"), ("knowledge_store_id", "knowledge store")):
            refused = await c.call_tool("upload_asset", {"path": str(world.sample.path), where: MISSING})
            assert refused.is_error
            text = text_of(refused)
            assert f"no {what} {MISSING}" in text and "nothing was uploaded" in text, text
    assert await _asset_count(world) == before, "a refused upload left an asset behind"


@pytest.mark.parametrize("mode", MODES)
async def test_an_asset_id_passed_as_video_id_is_named_with_the_call_to_make(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        mixed = {"index_id": world.index_id, "video_id": world.asset_id}
        got = await c.call_tool("get_video", mixed)
        assert got.is_error
        text = text_of(got)
        assert f"{world.asset_id} is an asset id" in text, text
        assert f'get_video(index_id="{world.index_id}", video_id="{world.video_id}")' in text
        analyzed = await c.call_tool("analyze_video", {**mixed, "prompt": "What is shown?"})
        assert analyzed.is_error and "is an asset id" in text_of(analyzed) and "asset_id" in text_of(analyzed)
        plain = await c.call_tool("get_video", {"index_id": world.index_id, "video_id": MISSING})
        assert plain.is_error and "HTTP 404" in text_of(plain) and "asset id" not in text_of(plain)


async def test_jockey_progress_counts_code_points_also_for_emoji(world: World, tmp_path: Path) -> None:
    scenes = (
        SceneSpec("APPLES", "Fresh apples \U0001f34e cost two dollars \U0001f4b5 per pound.", (40, 140, 60)),
        SceneSpec("OCEAN", "Deep ocean waves \U0001f30a roll under the moon \U0001f315.", (150, 40, 110)),
    )
    video = make_sample_video(world.media / "emoji.mp4", scenes=scenes, speech=False)
    async with Client(build_server(world.settings())) as c:
        ids = await seed_library(c, video.path, "emoji")
        progress = ProgressRecorder()
        result = await call_ok(
            c,
            "create_response",
            {"knowledge_store_id": ids["knowledge_store_id"], "input": "What do the apples cost?"},
            progress_callback=progress,
        )
    data = result.structured_content
    assert data and progress.text == data["text"]
    text = data["text"]
    assert any(ord(ch) > 0xFFFF for ch in text), f"the answer has no emoji to count: {text!r}"
    so_far = ""
    for value, _, message in progress.calls:
        if message is None:
            continue  # a heartbeat: no text, progress nudged on
        so_far += message
        assert value == len(so_far), (value, so_far)
    # What a JavaScript client's text.length would give is different: the unit matters and is documented.
    assert len(text.encode("utf-16-le")) // 2 > len(text) == progress.calls[-1][0]


@pytest.mark.parametrize("mode", MODES)
async def test_arguments_are_strict_and_errors_carry_no_pydantic_links(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        as_string = await c.call_tool(
            "search_videos", {"query": "apples", "index_id": world.index_id, "limit": "3"}
        )
        assert as_string.is_error
        text = text_of(as_string)
        assert "limit: Input should be a valid integer (got '3')" in text, text
        assert "pydantic" not in text and "http" not in text
        typo = await c.call_tool("list_indexes", {"pagelimit": 5})
        assert typo.is_error and "pagelimit is not an argument of list_indexes" in text_of(typo)
        assert "page_limit" in text_of(typo)
        ok = await call_ok(c, "search_videos", {"query": "apples", "index_id": world.index_id, "limit": 3})
        assert ok.structured_content and len(ok.structured_content["moments"]) <= 3


@pytest.mark.parametrize("mode", MODES)
async def test_resource_counts_are_whole_numbers(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        block = (await c.read_resource("twelvelabs://indexes")).contents[0]
        assert isinstance(block, TextResourceContents)
        listed = json.loads(block.text)["indexes"]
        counts = [i["video_count"] for i in listed]
        assert counts and all(type(n) is int for n in counts), block.text


async def test_progress_values_are_rounded_to_three_decimals() -> None:
    job = Job(id="job_round", kind="jockey", label="t", partial=lambda _: CallToolResult(content=[]))
    job.emit_text("x" * 278_530)
    for n in range(3):
        job.emit_note(f"[step] {n}")
    job.done.set()
    recorder = ProgressRecorder()
    assert await relay(job, recorder, wait_s=1)
    assert [p for p, _, _ in recorder.calls] == [278_530, 278_530.001, 278_530.002, 278_530.003]
