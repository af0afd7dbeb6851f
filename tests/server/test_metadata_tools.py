"""User metadata and listings end to end, through the SDK client against the sandbox: metadata given on
upload reaches the asset, the video and the store item; search filters and list filters select by it;
update_metadata edits it (merge, delete with null, replace); list_assets shows what was uploaded. Bad
input (a filter that does not parse, a value the API refuses, unknown ids, wrong combinations) is an
actionable error and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from tests.server.conftest import World, call_ok, text_of
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(world: World) -> AsyncIterator[Client]:
    async with Client(build_server(world.settings())) as c:
        yield c


@pytest.fixture(scope="module")
def sandbox_http(world: World) -> httpx2.Client:
    return httpx2.Client(base_url=world.sandbox.base_url, headers={"x-api-key": world.sandbox.api_key})


async def _data(c: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await call_ok(c, tool, args)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def _error(c: Client, tool: str, args: dict[str, Any]) -> str:
    result = await c.call_tool(tool, args)
    assert result.is_error, f"{tool} should have failed: {text_of(result)}"
    return text_of(result)


@pytest.fixture(scope="module")
def tagged(world: World) -> dict[str, Any]:
    """A second copy of the sample, uploaded into the world's index and store with metadata."""
    meta = {"team": "red", "score": 7, "final": True, "tags": ["goal", "replay"], "big": str(2**60)}

    async def upload() -> dict[str, Any]:
        async with Client(build_server(world.settings())) as c:
            args = {
                "path": str(world.sample.path),
                "index_id": world.index_id,
                "knowledge_store_id": world.knowledge_store_id,
                "user_metadata": meta,
                "wait": True,
                "wait_s": 120,
            }
            return await _data(c, "upload_asset", args)

    return anyio.run(upload) | {"meta": meta}


async def test_upload_metadata_reaches_the_asset_the_video_and_the_store_item(
    world: World, tagged: dict[str, Any], sandbox_http: httpx2.Client, client: Client
) -> None:
    meta = tagged["meta"]
    assert tagged["indexing_status"] == "ready" and tagged["item_status"] == "ready", tagged
    assets = await _data(client, "list_assets", {"asset_types": ["video"], "page_limit": 50})
    mine = [a for a in assets["assets"] if a["asset_id"] == tagged["asset_id"]]
    assert mine and mine[0]["user_metadata"] == meta
    assert not (await _data(client, "list_assets", {"asset_types": ["image"]}))["assets"]
    video = await _data(
        client, "get_video", {"index_id": world.index_id, "video_id": tagged["indexed_asset_id"]}
    )
    assert video["video"]["user_metadata"] == meta
    item = sandbox_http.get(f"/knowledge-stores/{world.knowledge_store_id}/items/{tagged['item_id']}").json()
    assert item["metadata"] == meta


async def test_search_filters_by_metadata_and_returns_it_on_request(
    world: World, tagged: dict[str, Any], client: Client
) -> None:
    said = world.sample.subtitles[0].text
    base = {"query": said, "index_id": world.index_id, "modalities": ["transcription"]}
    everything = await _data(client, "search_videos", base)
    assert {m["video_id"] for m in everything["moments"]} == {world.video_id, tagged["indexed_asset_id"]}
    assert all("user_metadata" not in m for m in everything["moments"])
    red = await _data(
        client, "search_videos", {**base, "filter": {"team": "red"}, "include_user_metadata": True}
    )
    assert red["moments"] and {m["video_id"] for m in red["moments"]} == {tagged["indexed_asset_id"]}
    assert all(m["user_metadata"]["team"] == "red" for m in red["moments"])
    ranged = await _data(client, "search_videos", {**base, "filter": {"score": {"gte": 5}, "tags": "goal"}})
    assert {m["video_id"] for m in ranged["moments"]} == {tagged["indexed_asset_id"]}
    assert not (await _data(client, "search_videos", {**base, "filter": {"team": "blue"}}))["moments"]
    lexical = await _data(client, "search_videos", {**base, "transcription_options": ["lexical"]})
    assert lexical["moments"]


async def test_a_filter_that_does_not_parse_is_the_apis_actionable_400(world: World, client: Client) -> None:
    args = {"query": "x", "index_id": world.index_id, "filter": {"duration": {"gt": 5}}}
    text = await _error(client, "search_videos", args)
    assert "search_filter_invalid" in text and "`gte` and/or `lte`" in text and "HTTP 400" in text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"transcription_options": ["semantic"]}, 'add "transcription" to modalities'),
        ({"knowledge_store_id": "ks_x", "filter": {"a": 1}}, "apply to index search"),
    ],
)
async def test_search_refuses_options_that_cannot_apply(
    world: World, client: Client, args: dict[str, Any], says: str
) -> None:
    base: dict[str, Any] = {"query": "x"} | (
        {} if "knowledge_store_id" in args else {"index_id": world.index_id}
    )
    assert says in await _error(client, "search_videos", base | args)


async def test_list_videos_by_status_and_filter(world: World, tagged: dict[str, Any], client: Client) -> None:
    ids = lambda d: {v["video_id"] for v in d["videos"]}  # noqa: E731
    index = {"index_id": world.index_id, "page_limit": 50}
    ready = await _data(client, "list_videos", {**index, "status": ["ready"]})
    assert {world.video_id, tagged["indexed_asset_id"]} <= ids(ready)
    assert all(v["status"] == "ready" for v in ready["videos"])
    assert not (await _data(client, "list_videos", {**index, "status": ["failed"]}))["videos"]
    red = await _data(client, "list_videos", {**index, "filter": {"team": "red", "final": True}})
    assert ids(red) == {tagged["indexed_asset_id"]}
    duration = world.sample.duration
    within = await _data(client, "list_videos", {**index, "filter": {"duration": {"lte": duration + 1}}})
    assert {world.video_id, tagged["indexed_asset_id"]} <= ids(within)
    longer = await _data(client, "list_videos", {**index, "filter": {"duration": {"gte": duration + 1}}})
    assert not longer["videos"]
    assert "get_video reads one video" in await _error(
        client, "list_videos", {**index, "filter": {"id": "x"}}
    )
    bad = await _error(client, "list_videos", {**index, "filter": {"width": "wide"}})
    assert '{"gte": n, "lte": n}' in bad


async def test_update_metadata_merges_deletes_and_replaces(world: World, client: Client) -> None:
    asset = {"asset_id": world.asset_id}
    one = await _data(client, "update_metadata", {**asset, "user_metadata": {"a": "1", "b": 2, "c": ["x"]}})
    assert one["user_metadata"] == {"a": "1", "b": 2, "c": ["x"]}
    two = await _data(client, "update_metadata", {**asset, "user_metadata": {"b": None, "d": False}})
    assert two["user_metadata"] == {"a": "1", "c": ["x"], "d": False}
    three = await _data(client, "update_metadata", {**asset, "user_metadata": {"e": 1.5}, "replace": True})
    assert three["user_metadata"] == {"e": 1.5}

    video = {"index_id": world.index_id, "video_id": world.video_id}
    await _data(client, "update_metadata", {**video, "user_metadata": {"keep": "no", "other": 1}})
    replaced = await _data(
        client, "update_metadata", {**video, "user_metadata": {"mood": "calm"}, "replace": True}
    )
    assert replaced["user_metadata"] == {"mood": "calm"}
    listed = await _data(client, "list_videos", {"index_id": world.index_id, "filter": {"mood": "calm"}})
    assert [v["video_id"] for v in listed["videos"]] == [world.video_id]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"user_metadata": {"n": 2**60}}, "wider than 53 bits"),
        ({"user_metadata": {"n": {"deep": 1}}}, "nested object"),
        ({"user_metadata": {"n": ["a", 1]}}, "non-text members"),
        ({"user_metadata": {"n": "x"}, "video_id": "v1"}, "not both"),
        ({"user_metadata": {"n": "x"}, "asset_id": None, "video_id": "v1"}, "needs its index_id"),
        ({"user_metadata": {"n": "x"}, "asset_id": "nosuchasset"}, "list_assets shows the ids"),
    ],
)
async def test_bad_metadata_edits_are_refused_and_change_nothing(
    world: World, client: Client, args: dict[str, Any], says: str
) -> None:
    before = (await _data(client, "list_assets", {"page_limit": 50}))["assets"]
    call = {"asset_id": world.asset_id} | args
    call = {k: v for k, v in call.items() if v is not None}
    assert says in await _error(client, "update_metadata", call)
    assert (await _data(client, "list_assets", {"page_limit": 50}))["assets"] == before


@pytest.mark.parametrize(
    ("meta", "says"), [({"id": 2**63}, "wider than 53 bits"), ({"who": {"name": "x"}}, "nested object")]
)
async def test_bad_upload_metadata_uploads_nothing(
    world: World, client: Client, meta: dict[str, Any], says: str
) -> None:
    count = len((await _data(client, "list_assets", {"page_limit": 50}))["assets"])
    args = {"path": str(world.sample.path), "index_id": world.index_id, "user_metadata": meta}
    text = await _error(client, "upload_asset", args)
    assert says in text and "Nothing was changed" in text
    assert len((await _data(client, "list_assets", {"page_limit": 50}))["assets"]) == count


async def test_add_to_knowledge_store_with_metadata(
    world: World, client: Client, sandbox_http: httpx2.Client
) -> None:
    store = await _data(client, "create_knowledge_store", {"name": "meta-items"})
    added = await _data(
        client,
        "add_to_knowledge_store",
        {"knowledge_store_id": store["id"], "asset_id": world.asset_id, "metadata": {"shot": "wide", "n": 3}},
    )
    item = sandbox_http.get(f"/knowledge-stores/{store['id']}/items/{added['id']}").json()
    assert item["metadata"] == {"shot": "wide", "n": 3}
    too_many = {f"k{i}": "v" for i in range(51)}
    text = await _error(
        client,
        "add_to_knowledge_store",
        {"knowledge_store_id": store["id"], "asset_id": world.asset_id, "metadata": too_many},
    )
    assert "50" in text
    items = await _data(client, "list_knowledge_store_items", {"knowledge_store_id": store["id"]})
    assert [i["item_id"] for i in items["items"]] == [added["id"]]


async def test_list_filters_find_metadata_keys_with_brackets(world: World, client: Client) -> None:
    """A key may hold `[` or `]` (the metadata check allows any key); its list filter is sent as
    `user_metadata[<key>]` and must still name that key, not match nothing."""
    video = {"index_id": world.index_id, "video_id": world.video_id}
    tags = {"scores[home]": "3", "a]b": "c"}
    await _data(client, "update_metadata", {**video, "user_metadata": tags})
    for key, value in tags.items():
        listed = await _data(client, "list_videos", {"index_id": world.index_id, "filter": {key: value}})
        assert [v["video_id"] for v in listed["videos"]] == [world.video_id], key
    await _data(client, "update_metadata", {**video, "user_metadata": dict.fromkeys(tags)})
