"""Every endpoint family: the request the client builds (checked against the OpenAPI spec by `FakeAPI`) and
the parsing of a response generated from the spec's own response schema."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from tests.api.conftest import API_KEY, FakeAPI, Seen, json_response, make_client
from tests.openapi_spec import operation, resolve, sample, success_response
from tl_mcp.api import (
    AnalyzeRequest,
    AnalyzeResult,
    AnalyzeTask,
    Asset,
    AssetTranscription,
    Embedding,
    EmbeddingTask,
    Index,
    IndexedAsset,
    ItemCollection,
    KnowledgeStore,
    KnowledgeStoreItem,
    KnowledgeStoreSearchPage,
    Page,
    ResponseFormat,
    ResponseObject,
    ResponseRequest,
    SearchPage,
    Task,
    TaskRef,
    Video,
    VideoSource,
)
from tl_mcp.api.models.responses import Selection

pytestmark = pytest.mark.anyio


def spec_answer(seen: Seen) -> httpx2.Response:
    """Answer with a sample built from the spec's success response schema for this operation."""
    if seen.template is None:
        if seen.path.endswith("/transcription"):
            return json_response(
                200, {"status": "ready", "sentences": [{"start": 0.0, "end": 1.5, "value": "hi"}]}
            )
        raise AssertionError(f"unexpected request {seen.method} {seen.path}")
    if seen.template == "/responses":
        # The spec only describes the SSE variant's 200; the JSON one is a ResponseObject.
        return json_response(200, sample(resolve({"$ref": "#/components/schemas/ResponseObject"})))
    found = success_response(seen.method, seen.template)
    if found is None:
        return httpx2.Response(200)
    status, content_type = found
    schema = operation(seen.method, seen.template)["responses"][status]["content"][content_type]["schema"]
    return json_response(int(status), sample(resolve(schema)))


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI(spec_answer)


async def test_every_request_carries_the_key_header_and_a_user_agent(api: FakeAPI) -> None:
    async with make_client(api) as tl:
        await tl.indexes.get("idx1")
    (seen,) = api.seen
    assert seen.headers["x-api-key"] == API_KEY
    assert seen.headers["user-agent"].startswith("tl-mcp/")


async def test_assets_family(api: FakeAPI, tmp_path: Path) -> None:
    media = tmp_path / "clip.mp4"
    media.write_bytes(b"\x00\x01fake-mp4" * 100)
    async with make_client(api) as tl:
        uploaded = await tl.assets.upload(media, filename="renamed.mp4", user_metadata={"team": "a", "n": 3})
        from_url = await tl.assets.create_from_url("https://example.com/v.mp4", filename="v.mp4")
        one = await tl.assets.get("a/b")
        page = await tl.assets.list(2, 5, asset_types=["video", "audio"], filename="clip")
        await tl.assets.delete("a1", force=True)
        transcript = await tl.assets.transcription("a1")
    assert isinstance(uploaded, Asset) and uploaded.id == "sample"
    assert isinstance(from_url, Asset) and isinstance(one, Asset)
    assert isinstance(page, Page) and isinstance(page.data[0], Asset)
    assert (
        isinstance(transcript, AssetTranscription)
        and transcript.sentences
        and transcript.sentences[0].value == "hi"
    )
    direct, by_url, get, listing, delete, trans = api.seen
    form = direct.form_dict()
    assert form["method"] == ["direct"] and form["filename"] == ["renamed.mp4"]
    assert json.loads(str(form["user_metadata"][0])) == {"team": "a", "n": 3}
    assert form["file"] == [media.read_bytes()]
    assert by_url.form_dict() == {
        "method": ["url"],
        "url": ["https://example.com/v.mp4"],
        "filename": ["v.mp4"],
    }
    assert get.path == "/assets/a%2Fb"  # ids are escaped, never interpreted as paths
    assert listing.params.get_list("asset_types") == ["video", "audio"]
    assert (listing.params["page"], listing.params["page_limit"]) == ("2", "5")
    assert delete.method == "DELETE" and delete.params["force"] == "true"
    assert trans.path == "/assets/a1/transcription" and trans.params.get_list("include") == ["sentences"]


async def test_indexes_indexed_assets_and_videos(api: FakeAPI) -> None:
    async with make_client(api) as tl:
        index_id = await tl.indexes.create("my index", addons=["thumbnail"])
        index = await tl.indexes.get(index_id)
        indexes = await tl.indexes.list(1, 10, name="my")
        await tl.indexes.delete("i1")
        ia_id = await tl.indexed_assets.create("i1", "a1", enable_video_stream=True, user_metadata={"k": "v"})
        ia = await tl.indexed_assets.get("i1", ia_id, transcription=True)
        ias = await tl.indexed_assets.list("i1", status=["ready", "failed"])
        await tl.indexed_assets.delete("i1", "x")
        videos = await tl.videos.list("i1")
        video = await tl.videos.get("i1", "v1", transcription=True)
        await tl.videos.delete("i1", "v1")
    assert index_id == "sample" and isinstance(index, Index) and isinstance(indexes.data[0], Index)
    assert isinstance(ia, IndexedAsset) and isinstance(ias.data[0], IndexedAsset)
    assert isinstance(videos.data[0], Video) and isinstance(video, Video)
    create = api.seen[0].json()
    assert create == {
        "index_name": "my index",
        "models": [{"model_name": "marengo3.0", "model_options": ["visual", "audio"]}],
        "addons": ["thumbnail"],
    }
    assert api.seen[2].params["index_name"] == "my"
    assert api.seen[4].json() == {"asset_id": "a1", "enable_video_stream": True, "user_metadata": {"k": "v"}}
    assert api.seen[6].params.get_list("status") == ["ready", "failed"]
    assert api.seen[9].params["transcription"] == "true"


async def test_tasks(api: FakeAPI, tmp_path: Path) -> None:
    media = tmp_path / "v.mp4"
    media.write_bytes(b"video-bytes")
    async with make_client(api) as tl:
        ref = await tl.tasks.create("i1", path=media)
        ref2 = await tl.tasks.create("i1", url="https://example.com/x.mp4")
        task = await tl.tasks.get(ref.id)
        with pytest.raises(ValueError, match="exactly one of path, url"):
            await tl.tasks.create("i1")
    assert isinstance(ref, TaskRef) and isinstance(ref2, TaskRef) and isinstance(task, Task)
    assert api.seen[0].form_dict() == {"index_id": ["i1"], "video_file": [b"video-bytes"]}
    assert api.seen[1].form_dict() == {"index_id": ["i1"], "video_url": ["https://example.com/x.mp4"]}
    assert len(api.seen) == 3  # bad arguments never reach the network


async def test_search_text_image_and_page_tokens(api: FakeAPI, tmp_path: Path) -> None:
    image = tmp_path / "q.png"
    image.write_bytes(b"\x89PNG fake")
    async with make_client(api) as tl:
        first = await tl.search.query(
            "i1",
            query_text="a dog",
            search_options=("visual", "audio", "transcription"),
            operator="and",
            group_by="video",
            page_limit=5,
            filter={"duration": {"gte": 10}},
            transcription_options=["lexical"],
        )
        by_image = await tl.search.query("i1", query_media_path=image, search_options=["visual"])
        by_url = await tl.search.query("i1", query_media_url="https://example.com/q.png")
        nxt = await tl.search.next_page("tok/en=")
    assert all(isinstance(p, SearchPage) for p in (first, by_image, by_url, nxt))
    form = api.seen[0].form_dict()
    assert form["search_options"] == ["visual", "audio", "transcription"]  # repeated fields, in order
    assert json.loads(str(form["filter"][0])) == {"duration": {"gte": 10}}
    assert form["operator"] == ["and"] and form["group_by"] == ["video"] and form["page_limit"] == ["5"]
    image_form = api.seen[1].form_dict()
    assert image_form["query_media_type"] == ["image"] and image_form["query_media_file"] == [b"\x89PNG fake"]
    assert api.seen[2].form_dict()["query_media_url"] == ["https://example.com/q.png"]
    assert api.seen[3].method == "GET" and api.seen[3].path == "/search/tok%2Fen%3D"


async def test_search_follows_next_page_tokens_until_absent() -> None:
    pages = {
        None: {
            "data": [{"start": 0, "end": 1, "video_id": "v", "rank": 1}],
            "page_info": {"next_page_token": "t2"},
        },
        "t2": {
            "data": [{"start": 1, "end": 2, "video_id": "v", "rank": 2}],
            "page_info": {"next_page_token": "t3"},
        },
        "t3": {"data": [{"start": 2, "end": 3, "video_id": "v", "rank": 3}], "page_info": {}},
    }

    def handler(seen: Seen) -> httpx2.Response:
        token = None if seen.method == "POST" else seen.path.rsplit("/", 1)[1]
        return json_response(200, pages[token])

    api = FakeAPI(handler)
    async with make_client(api) as tl:
        ranks = [r.rank async for page in tl.search.iter("i1", query_text="x") for r in page.data]
    assert ranks == [1, 2, 3]


async def test_embeddings(api: FakeAPI, tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF....WAVE")
    async with make_client(api) as tl:
        text = await tl.embed.text("a red car")
        image = await tl.embed.image(url="https://example.com/i.jpg")
        sound = await tl.embed.audio(path=audio)
        task_id = await tl.embed.create_video_task(
            url="https://example.com/v.mp4", start_sec=1.0, end_sec=9.0
        )
        task = await tl.embed.get_video_task(task_id)
        with pytest.raises(ValueError):
            await tl.embed.text("   ")
    assert all(isinstance(e, Embedding) for e in (text, image, sound)) and isinstance(task, EmbeddingTask)
    assert text.vectors and isinstance(text.vectors[0][0], float)
    assert api.seen[0].form_dict() == {"model_name": ["marengo3.0"], "text": ["a red car"]}
    assert api.seen[1].form_dict() == {
        "model_name": ["marengo3.0"],
        "image_url": ["https://example.com/i.jpg"],
    }
    assert api.seen[2].form_dict()["audio_file"] == [b"RIFF....WAVE"]
    assert api.seen[3].path == "/embed-v2/tasks"
    assert api.seen[3].json() == {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {"media_source": {"url": "https://example.com/v.mp4"}, "start_sec": 1.0, "end_sec": 9.0},
    }


async def test_analyze_sync_and_tasks(api: FakeAPI) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    async with make_client(api) as tl:
        result = await tl.analyze.generate(
            AnalyzeRequest(
                video=VideoSource(asset_id="a1"),
                prompt="Summarize",
                response_format=ResponseFormat(json_schema=schema),
                temperature=0.1,
            )
        )
        created = await tl.analyze.create_task(
            AnalyzeRequest(video=VideoSource(url="https://example.com/v.mp4"), prompt="Chapters")
        )
        task = await tl.analyze.get_task(created.task_id)
    assert isinstance(result, AnalyzeResult) and isinstance(task, AnalyzeTask)
    assert api.seen[0].json() == {
        "video": {"type": "asset_id", "asset_id": "a1"},
        "prompt": "Summarize",
        "temperature": 0.1,
        "response_format": {"type": "json_schema", "json_schema": schema},
        "stream": False,
    }
    # Before starting a task the client looks for the live one an identical earlier call started.
    assert (api.seen[1].method, api.seen[1].path) == ("GET", "/analyze/tasks")
    assert api.seen[2].json()["video"] == {"type": "url", "url": "https://example.com/v.mp4"}
    with pytest.raises(ValueError, match="exactly one"):
        VideoSource(url="https://example.com/v.mp4", asset_id="a1")


async def test_one_analyze_request_serves_the_sync_stream_and_task_routes(api: FakeAPI) -> None:
    """The request model carries every option; only the method decides `stream` (tasks send none)."""
    request = AnalyzeRequest(
        video=VideoSource(asset_id="a1"), prompt="Chapters", start_time=2.0, end_time=8.0, max_tokens=640
    )
    async with make_client(api) as tl:
        await tl.analyze.generate(request)
        await tl.analyze.create_task(request)
    sync_body, task_body = (seen.json() for seen in api.seen if seen.method == "POST")
    assert sync_body.pop("stream") is False and "stream" not in task_body
    assert task_body.pop("custom_id") == request.derived_custom_id()
    assert (
        sync_body
        == task_body
        == {
            "video": {"type": "asset_id", "asset_id": "a1"},
            "prompt": "Chapters",
            "start_time": 2.0,
            "end_time": 8.0,
            "max_tokens": 640,
        }
    )
    with pytest.raises(ValueError, match="prompt must not be empty"):
        AnalyzeRequest(video=VideoSource(asset_id="a1"), prompt="  ")


async def test_knowledge_stores_items_collections_and_search(api: FakeAPI) -> None:
    async with make_client(api) as tl:
        ks = await tl.knowledge.stores.create("Store", description="d", metadata={"tier": "gold"})
        got = await tl.knowledge.stores.get("ks_1")
        stores = await tl.knowledge.stores.list(1, 20)
        patched = await tl.knowledge.stores.update("ks_1", name="New")
        await tl.knowledge.stores.delete("ks_1")
        item = await tl.knowledge.items.add("ks_1", asset_id="a1", asset_type="video")
        item2 = await tl.knowledge.items.get("ks_1", "ksi_1")
        items = await tl.knowledge.items.list("ks_1", status=["queued", "pending"])
        await tl.knowledge.items.delete("ks_1", "ksi_1")
        coll = await tl.knowledge.collections.create("ks_1", "Highlights")
        colls = await tl.knowledge.collections.list("ks_1")
        coll2 = await tl.knowledge.collections.add_items("ks_1", "ksic_1", ["ksi_1", "ksi_2"])
        await tl.knowledge.collections.remove_items("ks_1", "ksic_1", ["ksi_2"])
        members = await tl.knowledge.collections.items("ks_1", "ksic_1")
        hits = await tl.knowledge.search(
            "ks_1", "goal celebration", modalities=["visual", "audio"], group_by="item", page_size=5
        )
        more = await tl.knowledge.search("ks_1", "goal celebration", page_token="next")
        with pytest.raises(ValueError, match="nothing to update"):
            await tl.knowledge.stores.update("ks_1")
    for value in (ks, got, patched, stores.data[0]):
        assert isinstance(value, KnowledgeStore)
    for value in (item, item2, items.data[0], members.data[0]):
        assert isinstance(value, KnowledgeStoreItem)
    assert isinstance(coll, ItemCollection) and isinstance(colls.data[0], ItemCollection)
    assert isinstance(coll2, ItemCollection)
    assert isinstance(hits, KnowledgeStoreSearchPage) and isinstance(more, KnowledgeStoreSearchPage)
    by_path = {(s.method, s.template): s for s in api.seen}
    assert by_path[("POST", "/knowledge-stores")].json() == {
        "name": "Store",
        "description": "d",
        "metadata": {"tier": "gold"},
    }
    assert by_path[("PATCH", "/knowledge-stores/{knowledge_store_id}")].json() == {"name": "New"}
    assert api.seen[7].params.get_list("status") == ["queued", "pending"]
    search_bodies = [s.json() for s in api.seen if s.path.endswith("/search")]
    assert search_bodies[0] == {
        "query": {"text": "goal celebration"},
        "search_options": {"video": {"modalities": ["visual", "audio"]}},
        "group_by": "item",
        "page_size": 5,
    }
    assert search_bodies[1] == {"query": {"text": "goal celebration"}, "page_token": "next"}


async def test_knowledge_store_search_iterates_page_tokens() -> None:
    def handler(seen: Seen) -> httpx2.Response:
        token = seen.json().get("page_token")
        hit = {"asset_type": "image", "item_id": f"ksi_{token}", "rank": 1}
        return json_response(
            200,
            {"data": [hit], "effective_search_options": {}, **({} if token else {"next_page_token": "p2"})},
        )

    api = FakeAPI(handler)
    async with make_client(api) as tl:
        items = [h.item_id async for page in tl.knowledge.iter_search("ks_1", "q") for h in page.data]
    assert items == ["ksi_None", "ksi_p2"]


async def test_responses_json_request_uses_the_current_shape(api: FakeAPI) -> None:
    request = ResponseRequest.model_validate(
        {
            "model": "jockey1.0",
            "metadata": {"a": "b"},
            "tools": [{"type": "knowledge_store", "knowledge_store_id": "ks_1"}],
            "input": "What happens in {{sel:0}}?",
            "selections": [{"kind": "item", "id": "ksi_1"}],
            "include": ["intermediate_outputs"],
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}},
        }
    )
    async with make_client(api) as tl:
        result = await tl.responses.create(request)
    assert isinstance(result, ResponseObject) and result.output_text == "sample"
    assert api.seen[0].json() == {
        "knowledge_store_id": "ks_1",
        "input": [{"type": "message", "role": "user", "content": "What happens in {{sel:0}}?"}],
        "stream": False,
        "include": ["intermediate_outputs"],
        "selections": [{"kind": "item", "id": "ksi_1"}],
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}},
    }


def test_response_request_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"jockey1\.0"):
        ResponseRequest.model_validate({"model": "gpt", "knowledge_store_id": "ks_1", "input": "x"})
    with pytest.raises(ValueError, match="disagree"):
        ResponseRequest.model_validate(
            {
                "knowledge_store_id": "ks_2",
                "tools": [{"type": "knowledge_store", "knowledge_store_id": "ks_1"}],
                "input": "x",
            }
        )
    with pytest.raises(ValueError):
        ResponseRequest(knowledge_store_id="ks_1", input="x" * 10_001)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ksic_"):
        Selection(kind="collection", id="ksi_1")


async def test_page_iterators_stop_on_empty_data_or_past_total_page() -> None:
    def handler(seen: Seen) -> httpx2.Response:
        page = int(seen.params["page"])
        if seen.path == "/indexes":  # total_page says 2
            return json_response(
                200, {"data": [{"_id": f"i{page}"}], "page_info": {"page": page, "total_page": 2}}
            )
        data = [{"_id": f"ks{page}"}] if page <= 3 else []  # no page_info: stop on empty data
        return json_response(200, {"data": data})

    api = FakeAPI(handler)
    async with make_client(api) as tl:
        indexes = [i.id async for i in tl.indexes.iter()]
        stores = [k.id async for k in tl.knowledge.stores.iter()]
    assert indexes == ["i1", "i2"]
    assert stores == ["ks1", "ks2", "ks3"]
    assert [s.params["page"] for s in api.seen if s.path == "/knowledge-stores"] == ["1", "2", "3", "4"]
