"""A page token continues the search that returned it, and only that one: through a real MCP client
against the sandbox, a token passed with another entity, action, index, query or store (or to another
search tool) is refused with what differs and what to do, and the token with its own arguments (as the
printed next step gives them) still pages on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.server.conftest import World, call_ok, text_of
from tests.server.test_next_steps import next_steps, parse_calls
from tl_mcp.samples import make_sample_image
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(world: World) -> AsyncIterator[Client]:
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        yield c


async def _data(c: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await call_ok(c, name, args)
    assert result.structured_content is not None
    return result.structured_content


async def _refused(c: Client, name: str, args: dict[str, Any], *says: str) -> None:
    result = await c.call_tool(name, args)
    text = text_of(result)
    assert result.is_error, f"{name} should have refused the token: {text}"
    for part in (*says, "Leave page_token out"):
        assert part in text, text


async def _follow_next_page(c: Client, result_args: dict[str, Any], tool: str) -> dict[str, Any]:
    """Calls the next-page hint the result printed, exactly as printed."""
    result = await call_ok(c, tool, result_args)
    pages = [
        hinted
        for hint in next_steps(result)
        for name, hinted in parse_calls(hint)
        if name == tool and "page_token" in hinted
    ]
    assert pages, f"{tool} printed no next page: {text_of(result)}"
    return await _data(c, tool, pages[0])


async def _entity(c: Client, world: World) -> str:
    picture = make_sample_image(world.media / "token-ref.png", scene_index=0)
    asset = (await _data(c, "upload_asset", {"path": str(picture)}))["asset_id"]
    collection = (await _data(c, "create_entity_collection", {"name": "tokens"}))["collection"]
    cid = collection["entity_collection_id"]
    made = await _data(
        c, "create_entity", {"entity_collection_id": cid, "name": "Lead", "asset_ids": [asset]}
    )
    eid: str = made["entity"]["entity_id"]
    with anyio.fail_after(60):
        while True:
            got = await _data(c, "get_entity", {"entity_collection_id": cid, "entity_id": eid})
            if got["entity"]["status"] == "ready":
                return eid
            await anyio.sleep(0.1)


async def test_an_entity_search_token_is_refused_with_other_arguments(world: World, client: Client) -> None:
    c = client
    eid = await _entity(c, world)
    other_index = (await _data(c, "create_index", {"name": "tokens-other"}))["id"]
    args = {"entity_ids": [eid], "index_id": world.index_id, "limit": 1}
    first = await _data(c, "find_entity_moments", args)
    token = first.get("next_page_token")
    assert token, first

    await _refused(
        c, "find_entity_moments", {**args, "index_id": other_index, "page_token": token}, "other index_id"
    )
    await _refused(
        c, "find_entity_moments", {**args, "doing": "is running", "page_token": token}, "other doing"
    )
    await _refused(
        c,
        "find_entity_moments",
        {**args, "entity_ids": [eid, "ent_someone_else"], "page_token": token},
        "other entity_ids",
    )
    await _refused(
        c,
        "find_entity_moments",
        {**args, "page_token": token[:-3]},
        "not a next_page_token of find_entity_moments",
    )
    await _refused(
        c,
        "search_videos",
        {"index_id": world.index_id, "page_token": token},
        "another kind of search",
        "an index search",
    )
    # With its own arguments the token pages on, and the printed next page works (doing included).
    second = await _data(c, "find_entity_moments", {**args, "page_token": token})
    assert second["moments"] and second["index_id"] == world.index_id
    assert second["moments"] != first["moments"]
    followed = await _follow_next_page(c, {**args, "doing": "is standing"}, "find_entity_moments")
    assert followed["query"].endswith("is standing"), followed


async def test_a_search_token_is_refused_with_another_index_query_or_store(
    world: World, client: Client
) -> None:
    c = client
    other_index = (await _data(c, "create_index", {"name": "tokens-other-2"}))["id"]
    index_search = {"query": "apples, ocean waves, sales", "index_id": world.index_id, "limit": 1}
    token = (await _data(c, "search_videos", index_search)).get("next_page_token")
    assert token
    await _refused(c, "search_videos", {"index_id": other_index, "page_token": token}, "other index_id")
    await _refused(
        c, "search_videos", {**index_search, "query": "ocean waves", "page_token": token}, "other query"
    )
    await _refused(
        c,
        "find_entity_moments",
        {"entity_ids": ["ent_x"], "index_id": world.index_id, "page_token": token},
        "another kind of search",
    )
    # The arguments a token stands for may be left out, or repeated as they were.
    assert (await _data(c, "search_videos", {"index_id": world.index_id, "page_token": token}))["moments"]
    assert (await _data(c, "search_videos", {**index_search, "page_token": token}))["moments"]

    store = {"knowledge_store_id": world.knowledge_store_id}
    both = {"modalities": ["visual", "audio"]}
    first = await _data(
        c, "search_knowledge_store", {**store, "query": "apples, ocean waves, sales", "page_size": 1, **both}
    )
    ks_token = first.get("next_page_token")
    assert ks_token
    await _refused(
        c,
        "search_knowledge_store",
        {**store, "query": "sales", "page_token": ks_token},
        "other query",
    )
    await _refused(
        c,
        "search_knowledge_store",
        {**store, "query": "apples, ocean waves, sales", "item_ids": ["ksi_other"], "page_token": ks_token},
        "other item_ids",
    )
    await _refused(
        c,
        "search_videos",
        {**store, "query": "apples, ocean waves, sales", "page_token": ks_token},
        "another kind of search",
    )
    followed = await _follow_next_page(
        c, {**store, "query": "apples, ocean waves, sales", "page_size": 1, **both}, "search_knowledge_store"
    )
    assert followed["hits"], followed


async def test_an_edited_or_overlong_token_is_refused_with_what_to_do(world: World, client: Client) -> None:
    # The tags bind a token to its search, not its upstream part: an edit there is the API's to refuse,
    # and it must come back as a tool error that says what to pass, never a crash.
    c = client
    index_search = {"query": "apples, ocean waves, sales", "index_id": world.index_id, "limit": 1}
    token = (await _data(c, "search_videos", index_search)).get("next_page_token")
    assert token
    upstream, _, tags = token.rpartition("~")
    for edited, says in (
        (f"{upstream[:-1]}é~{tags}", "next_page_token"),
        (f"x{upstream}~{tags}", "run the search again"),
        ("é" * 600, "at most 500 characters"),
    ):
        result = await c.call_tool("search_videos", {"index_id": world.index_id, "page_token": edited})
        assert result.is_error and says in text_of(result), text_of(result)
