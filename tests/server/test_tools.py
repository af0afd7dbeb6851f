"""Every tool through a real MCP client, in both protocol eras, against the embedded sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, ImageContent
from PIL import Image

from tests.server.conftest import MODES, ProgressRecorder, World, call_ok, text_of
from tl_mcp.samples import make_sample_image
from tl_mcp.server import build_server
from tl_mcp.server.thumbnails import fetch_thumbnails

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", MODES)
async def test_library_tools_list_and_describe(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        indexes = (await call_ok(c, "list_indexes", {})).structured_content
        assert indexes and world.index_id in [i["index_id"] for i in indexes["indexes"]]
        assert indexes["backend"] == "sandbox"
        videos = (await call_ok(c, "list_videos", {"index_id": world.index_id})).structured_content
        assert videos and [v["video_id"] for v in videos["videos"]] == [world.video_id]
        assert videos["videos"][0]["duration"] == pytest.approx(world.sample.duration, abs=0.5)
        detail = await call_ok(c, "get_video", {"index_id": world.index_id, "video_id": world.video_id})
        data = detail.structured_content
        assert data and data["video"]["asset_id"] == world.asset_id
        said = " ".join(t["text"] for t in data["transcript"] or [])
        assert "Fresh apples" in said
        assert "Fresh apples" in text_of(detail)
        stores = (await call_ok(c, "list_knowledge_stores", {})).structured_content
        assert stores and world.knowledge_store_id in [
            s["knowledge_store_id"] for s in stores["knowledge_stores"]
        ]
        items = (
            await call_ok(c, "list_knowledge_store_items", {"knowledge_store_id": world.knowledge_store_id})
        ).structured_content
        assert items and [(i["item_id"], i["status"]) for i in items["items"]] == [(world.item_id, "ready")]


@pytest.mark.parametrize("mode", MODES)
async def test_search_finds_the_moment_and_returns_thumbnails(world: World, mode: str) -> None:
    apples = world.sample.scenes[1]
    async with Client(build_server(world.settings()), mode=mode) as c:
        result = await call_ok(
            c, "search_videos", {"query": "fresh apples", "index_id": world.index_id, "include_thumbnails": 2}
        )
        data = result.structured_content
        assert data
        top = data["moments"][0]
        assert top["video_id"] == world.video_id
        assert top["start"] == pytest.approx(apples.start, abs=1.0) and top["end"] == pytest.approx(
            apples.end, abs=1.0
        )
        images = [b for b in result.content if isinstance(b, ImageContent)]
        assert 1 <= len(images) <= 2 and images[0].mime_type == "image/jpeg"
        assert data["thumbnails_returned"] == len(images)
        ks = await call_ok(
            c, "search_videos", {"query": "ocean waves", "knowledge_store_id": world.knowledge_store_id}
        )
        assert ks.structured_content and ks.structured_content["moments"][0]["item_id"] == world.item_id
        bad = await c.call_tool("search_videos", {"query": "x"})
        assert bad.is_error and "index_id or knowledge_store_id" in text_of(bad)


async def test_failed_thumbnail_is_skipped_not_fatal() -> None:
    assert await fetch_thumbnails(["http://127.0.0.1:9/nothing.jpg"]) == [None]


@pytest.mark.parametrize("mode", MODES)
async def test_classify_videos_by_search(world: World, mode: str) -> None:
    classes = [
        {"name": "Food", "prompts": ["fresh apples", "orchard fruit price"]},
        {"name": "Business", "prompts": ["quarterly sales revenue"]},
    ]
    async with Client(build_server(world.settings()), mode=mode) as c:
        result = await call_ok(c, "classify_videos", {"index_id": world.index_id, "classes": classes})
        data = result.structured_content
        assert data and data["videos"][0]["video_id"] == world.video_id
        names = {m["name"]: m for m in data["videos"][0]["classes"]}
        assert {"Food", "Business"} <= set(names)
        assert 0 < names["Food"]["duration_ratio"] <= 1
        strict = await call_ok(
            c, "classify_videos", {"index_id": world.index_id, "classes": classes, "min_duration_ratio": 0.99}
        )
        assert (
            strict.structured_content == {**data, "videos": []} or strict.structured_content["videos"] == []
        )


@pytest.mark.parametrize("mode", MODES)
async def test_jockey_answer_streams_progress_that_equals_the_text(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        progress = ProgressRecorder()
        result = await call_ok(
            c,
            "create_response",
            {
                "knowledge_store_id": world.knowledge_store_id,
                "input": "What does the video say about apples?",
            },
            progress_callback=progress,
        )
        data = result.structured_content
        assert data and data["status"] == "completed"
        assert progress.calls and progress.text == data["text"]
        values = [p for p, _, _ in progress.calls]
        assert values == sorted(values) and len(set(values)) == len(values)
        assert "apples" in data["text"].lower()
        cite = data["citations"][0]
        assert (
            cite["item_id"] == world.item_id
            and cite["start_sec"] is not None
            and cite["end_sec"] > cite["start_sec"]
        )
        session = data["session_id"]
        follow = await call_ok(c, "continue_session", {"session_id": session, "input": "And the ocean?"})
        assert follow.structured_content and follow.structured_content["session_id"] == session
        assert "ocean" in follow.structured_content["text"].lower()


@pytest.mark.parametrize("mode", MODES)
async def test_jockey_steps_and_output_schema(world: World, mode: str) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    async with Client(build_server(world.settings()), mode=mode) as c:
        progress = ProgressRecorder()
        result = await call_ok(
            c,
            "create_response",
            {
                "knowledge_store_id": world.knowledge_store_id,
                "input": "What is the price of apples?",
                "include_intermediate_outputs": True,
                "output_schema": schema,
            },
            progress_callback=progress,
        )
        data = result.structured_content
        assert data and isinstance(data["parsed"], dict) and "answer" in data["parsed"]
        assert data["steps"], "intermediate steps were asked for"
        assert any(m and m.startswith("[step]") for _, _, m in progress.calls)
        bad = await c.call_tool(
            "create_response",
            {"knowledge_store_id": world.knowledge_store_id, "input": "x", "output_schema": {"type": 12}},
        )
        assert bad.is_error and "not a valid JSON Schema" in text_of(bad)


@pytest.mark.parametrize("mode", MODES)
async def test_job_handle_then_wait_for_task_resumes(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        first = ProgressRecorder()
        started = await call_ok(
            c,
            "create_response",
            {"knowledge_store_id": world.knowledge_store_id, "input": "Summarize the video.", "wait_s": 0},
            progress_callback=first,
        )
        data = started.structured_content
        assert data and data["status"] == "in_progress" and data["job_id"].startswith("job_")
        assert "wait_for_task" in text_of(started)
        second = ProgressRecorder()
        done = await call_ok(
            c, "wait_for_task", {"id": data["job_id"], "wait_s": 30}, progress_callback=second
        )
        waited = done.structured_content
        assert waited and waited["done"] and waited["status"] == "completed"
        final = waited["result"]
        assert final["status"] == "completed" and final["text"]
        assert first.text + second.text == final["text"]
        again = await call_ok(c, "wait_for_task", {"id": data["job_id"], "wait_s": 1})
        assert again.structured_content and again.structured_content["result"]["text"] == final["text"]


@pytest.mark.parametrize("mode", MODES)
async def test_wait_for_task_accepts_twelvelabs_ids(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        item = await call_ok(
            c,
            "wait_for_task",
            {"id": world.item_id, "knowledge_store_id": world.knowledge_store_id, "wait_s": 5},
        )
        assert item.structured_content and item.structured_content["kind"] == "knowledge_store_item"
        assert item.structured_content["status"] == "ready" and item.structured_content["done"]
        progress = ProgressRecorder()
        indexed = await call_ok(
            c,
            "wait_for_task",
            {"id": world.video_id, "index_id": world.index_id, "wait_s": 5},
            progress_callback=progress,
        )
        assert indexed.structured_content and indexed.structured_content["kind"] == "indexed_asset"
        assert progress.calls and "ready" in (progress.calls[0][2] or "")
        asset = await call_ok(c, "wait_for_task", {"id": world.asset_id, "wait_s": 5})
        assert asset.structured_content and asset.structured_content["kind"] == "asset"
        missing = await c.call_tool("wait_for_task", {"id": "doesnotexist", "wait_s": 1})
        assert missing.is_error and "index_id" in text_of(missing)
        unknown_job = await c.call_tool("wait_for_task", {"id": "job_0000", "wait_s": 1})
        assert unknown_job.is_error and "No job" in text_of(unknown_job)


@pytest.mark.parametrize("mode", MODES)
async def test_embeddings_text_image_and_video(world: World, mode: str) -> None:
    image = make_sample_image(world.media / f"frame-{mode}.png", scene_index=1)
    async with Client(build_server(world.settings()), mode=mode) as c:
        text = (await call_ok(c, "create_embedding", {"text": "fresh apples"})).structured_content
        assert text and text["status"] == "completed" and text["embeddings"][0]["dims"] > 0
        assert "vector" not in text["embeddings"][0] and len(text["embeddings"][0]["head"]) == 8
        # The sandbox says which local model really made the vector; the model is not passed off as Marengo.
        assert text["embedder"], text
        full = (
            await call_ok(c, "create_embedding", {"text": "fresh apples", "include_vector": True})
        ).structured_content
        assert full and len(full["embeddings"][0]["vector"]) == full["embeddings"][0]["dims"]
        img = (await call_ok(c, "create_embedding", {"image_path": str(image)})).structured_content
        assert img and img["input_type"] == "image" and img["embeddings"][0]["dims"] > 0
        assert "frame" in img["embedder"].lower(), img["embedder"]
        video = (
            await call_ok(c, "create_embedding", {"video_asset_id": world.asset_id, "wait_s": 60})
        ).structured_content
        assert video and video["status"] == "completed" and video["task_id"] and video["embeddings"]
        two = await c.call_tool("create_embedding", {"text": "a", "image_url": "https://example.com/x.png"})
        assert two.is_error and "exactly one input" in text_of(two)


@pytest.mark.parametrize("mode", MODES)
async def test_analyze_and_summarize_resolve_video_ids(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        progress = ProgressRecorder()
        result = await call_ok(
            c,
            "analyze_video",
            {"video_id": world.video_id, "index_id": world.index_id, "prompt": "What is shown about apples?"},
            progress_callback=progress,
        )
        data = result.structured_content
        assert data and data["video"] == {
            "asset_id": world.asset_id,
            "video_id": world.video_id,
            "index_id": world.index_id,
        }
        assert data["text"] and progress.text == data["text"]
        chapters = (
            await call_ok(c, "summarize_video", {"asset_id": world.asset_id, "kind": "chapters"})
        ).structured_content
        assert chapters and chapters["kind"] == "chapters"
        assert isinstance(chapters["parsed"], dict) and chapters["parsed"]["chapters"], chapters["text"]
        no_index = await c.call_tool("analyze_video", {"video_id": world.video_id, "prompt": "x"})
        assert no_index.is_error and "index_id" in text_of(no_index)


@pytest.mark.parametrize("mode", MODES)
async def test_upload_refuses_paths_outside_allowed_dirs_before_any_network(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        for path in ("/etc/passwd", "/dev/zero", f"{world.media}/../state", str(world.media)):
            result = await c.call_tool("upload_asset", {"path": path, "index_id": world.index_id})
            assert result.is_error, path
            assert "refused" in text_of(result)
        both = await c.call_tool("upload_asset", {"path": str(world.sample.path), "url": "https://x/y.mp4"})
        assert both.is_error and "exactly one" in text_of(both)
    no_dirs = world.settings().model_copy(update={"allowed_dirs": ()})
    async with Client(build_server(no_dirs), mode=mode) as c:
        result = await c.call_tool("upload_asset", {"path": str(world.sample.path)})
        assert (
            result.is_error and "--allow-dir" in text_of(result) and "TL_MCP_ALLOWED_DIRS" in text_of(result)
        )


@pytest.mark.parametrize("mode", MODES)
async def test_upstream_errors_say_what_why_and_next(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        result = await c.call_tool("get_video", {"index_id": world.index_id, "video_id": "0" * 24})
        text = text_of(result)
        assert result.is_error and "HTTP 404" in text and "list_" in text
        invalid = await c.call_tool("list_indexes", {"page_limit": 500})
        assert invalid.is_error


async def test_continue_session_after_restart_asks_for_the_store(world: World, tmp_path: Any) -> None:
    async with Client(build_server(world.settings())) as c:
        first = await call_ok(
            c, "create_response", {"knowledge_store_id": world.knowledge_store_id, "input": "apples?"}
        )
        session = first.structured_content and first.structured_content["session_id"]
    # Same state dir: the session is remembered across server instances.
    async with Client(build_server(world.settings())) as c:
        await call_ok(c, "continue_session", {"session_id": session, "input": "and the ocean?"})
    fresh = world.settings().model_copy(update={"sandbox_dir": tmp_path / "other" / "sandbox"})
    async with Client(build_server(fresh)) as c:
        lost = await c.call_tool("continue_session", {"session_id": session, "input": "again?"})
        assert lost.is_error and "knowledge_store_id" in text_of(lost)
        ok = await call_ok(
            c,
            "continue_session",
            {"session_id": session, "input": "again?", "knowledge_store_id": world.knowledge_store_id},
        )
        assert ok.structured_content and ok.structured_content["session_id"] == session


@pytest.mark.parametrize("mode", MODES)
async def test_admin_tools_delete_and_read_only_hides_them(world: World, mode: str) -> None:
    async with Client(build_server(world.settings(toolsets="all")), mode=mode) as c:
        ks = (await call_ok(c, "create_knowledge_store", {"name": f"temp-{mode}"})).structured_content
        assert ks
        added = (
            await call_ok(
                c, "add_to_knowledge_store", {"knowledge_store_id": ks["id"], "asset_id": world.asset_id}
            )
        ).structured_content
        assert added and added["kind"] == "knowledge_store_item"
        await call_ok(
            c, "remove_from_knowledge_store", {"knowledge_store_id": ks["id"], "item_id": added["id"]}
        )
        gone = await call_ok(c, "delete_knowledge_store", {"knowledge_store_id": ks["id"]})
        assert gone.structured_content and gone.structured_content["deleted"] is True
        idx = (await call_ok(c, "create_index", {"name": f"temp-{mode}"})).structured_content
        assert idx
        await call_ok(c, "delete_index", {"index_id": idx["id"]})
    async with Client(build_server(world.settings(toolsets="all", read_only=True)), mode=mode) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert "delete_index" not in names and "upload_asset" not in names and "search_videos" in names
        with pytest.raises(MCPError) as hidden:
            await c.call_tool("delete_index", {"index_id": world.index_id})
        assert hidden.value.code == INVALID_PARAMS and "--read-only hides" in hidden.value.message


async def test_search_by_image_finds_the_matching_scene(world: World) -> None:
    ocean = world.sample.scenes[2]
    frame = make_sample_image(world.media / "ocean.jpg", scene_index=2)
    async with Client(build_server(world.settings())) as c:
        result = await call_ok(c, "search_videos", {"image_path": str(frame), "index_id": world.index_id})
        top = result.structured_content and result.structured_content["moments"][0]
        assert top and top["start"] == pytest.approx(ocean.start, abs=1.0)
        outside = await c.call_tool(
            "search_videos", {"image_path": "/etc/hostname", "index_id": world.index_id}
        )
        assert outside.is_error and "refused" in text_of(outside)


async def test_url_upload_works_without_allowed_dirs(world: World) -> None:
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(world.media))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/clip.mp4"
    try:
        no_dirs = world.settings().model_copy(update={"allowed_dirs": ()})
        async with Client(build_server(no_dirs)) as c:
            # A fresh index, so the shared one keeps exactly one video for the other tests.
            index = (await call_ok(c, "create_index", {"name": "from-url"})).structured_content
            assert index
            result = await call_ok(c, "upload_asset", {"url": url, "index_id": index["id"], "wait": True})
            data = result.structured_content
            assert data and data["asset_id"] and data["indexing_status"] == "ready", data
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_every_tool_answers_within_its_advertised_output_schema(world: World, tmp_path: Path) -> None:
    """All 46 tools called through the SDK client, which checks each `structuredContent` against the
    compact `outputSchema` it listed; checked again here with jsonschema so the test does not rest on the
    client's check alone. What defaults to null is left out, never sent as a null the schema refuses."""
    import jsonschema

    from tl_mcp.server.registry import all_tools

    out = tmp_path / "clips"
    out.mkdir()
    async with Client(build_server(world.settings(toolsets="all", allowed_write_dirs=[out]))) as c:
        schemas = {t.name: t.output_schema for t in (await c.list_tools()).tools}
        called: list[str] = []

        async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
            result = await call_ok(c, name, args)
            assert result.structured_content is not None
            jsonschema.Draft202012Validator(schemas[name]).validate(result.structured_content)
            called.append(name)
            return result.structured_content

        at = {"index_id": world.index_id, "video_id": world.video_id}
        answer = await call(
            "create_response", {"knowledge_store_id": world.knowledge_store_id, "input": "What is shown?"}
        )
        assert "job_id" not in answer and "steps" not in answer, answer
        await call("continue_session", {"session_id": answer["session_id"], "input": "And then?"})
        await call("search_videos", {"query": "apples", "index_id": world.index_id})
        await call(
            "classify_videos",
            {"index_id": world.index_id, "classes": [{"name": "Fruit", "prompts": ["apples"]}]},
        )
        await call("create_embedding", {"text": "apples"})
        await call("wait_for_task", {"id": world.asset_id, "wait_s": 5})
        await call("list_indexes", {})
        await call("list_videos", {"index_id": world.index_id})
        await call("list_assets", {})
        await call("update_metadata", {**at, "user_metadata": {"checked": True}})
        await call("get_video", at)
        await call("list_knowledge_stores", {})
        await call("list_knowledge_store_items", {"knowledge_store_id": world.knowledge_store_id})
        await call("analyze_video", {**at, "prompt": "What fruit is shown?"})
        await call("summarize_video", {**at, "kind": "chapters"})
        chapters = {
            "id": "chapters",
            "description": "chapters",
            "fields": [{"name": "title", "type": "string", "description": "t"}],
        }
        await call("start_analysis_task", {**at, "segment_definitions": [chapters], "wait_s": 60})
        batch = await call(
            "start_analysis_task", {"asset_ids": [world.asset_id, "0" * 24], "prompt": "apples", "wait_s": 60}
        )
        await call("list_analysis_tasks", {"asset_id": world.asset_id})
        await call("list_analysis_tasks", {"kind": "batch"})
        await call("cancel_analysis_task", {"batch_id": batch["batch_id"]})
        await call("delete_analysis_task", {"batch_id": batch["batch_id"]})
        await call("export_clips", {"moments": [{**at, "start": 0, "end": 1}], "folder": str(out)})
        shots = world.media / "every-tool"
        shots.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (1, 2, 3)).save(shots / "a.png")
        await call("bulk_ingest", {"folder": str(shots)})
        index = await call("create_index", {"name": "every-tool"})
        store = await call("create_knowledge_store", {"name": "every-tool"})
        added = await call(
            "add_to_knowledge_store", {"knowledge_store_id": store["id"], "asset_id": world.asset_id}
        )
        await call("remove_from_knowledge_store", {"knowledge_store_id": store["id"], "item_id": added["id"]})
        await call(
            "update_knowledge_store", {"knowledge_store_id": store["id"], "metadata": {"tier": "gold"}}
        )
        ks = {"knowledge_store_id": world.knowledge_store_id}
        made = await call("create_item_collection", {**ks, "name": "every-tool", "item_ids": [world.item_id]})
        group = {**ks, "collection_id": made["collection"]["collection_id"]}
        await call("list_item_collections", ks)
        await call("list_collection_items", group)
        await call("update_item_collection", {**group, "remove_item_ids": [world.item_id]})
        await call(
            "search_knowledge_store", {**ks, "query": "apples", "group_by": "item", "include_metadata": True}
        )
        up = await call(
            "upload_asset",
            {"path": str(world.sample.path), "index_id": index["id"], "wait": True, "wait_s": 120},
        )
        await call("delete_video", {"index_id": index["id"], "video_id": up["indexed_asset_id"]})
        await call("delete_asset", {"asset_id": up["asset_id"], "force": True})
        await call("delete_index", {"index_id": index["id"]})
        await call("delete_knowledge_store", {"knowledge_store_id": store["id"]})
        picture = make_sample_image(world.media / "every-tool.png", scene_index=1)
        ref = (await call("upload_asset", {"path": str(picture)}))["asset_id"]
        cid = (await call("create_entity_collection", {"name": "every-tool"}))["collection"][
            "entity_collection_id"
        ]
        await call("list_entity_collections", {})
        await call("update_entity_collection", {"entity_collection_id": cid, "description": "all tools"})
        made = await call(
            "create_entity", {"entity_collection_id": cid, "name": "Apples", "asset_ids": [ref]}
        )
        ent = {"entity_collection_id": cid, "entity_id": made["entity"]["entity_id"]}
        await call("list_entities", {"entity_collection_id": cid})
        with anyio.fail_after(60):
            while (await call("get_entity", ent))["entity"]["status"] != "ready":  # noqa: ASYNC110 — polling upstream
                await anyio.sleep(0.1)
        await call("update_entity", {**ent, "metadata": {"aisle": 3}})
        await call("find_entity_moments", {"entity_ids": [ent["entity_id"]], "index_id": world.index_id})
        await call("delete_entity", ent)
        await call("delete_entity_collection", {"entity_collection_id": cid})
    assert sorted(set(called)) == sorted(s.name for s in all_tools())
