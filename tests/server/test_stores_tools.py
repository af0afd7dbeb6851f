"""Knowledge-store depth through a real MCP client against the embedded sandbox: store enrichment and
metadata, item collections that Jockey selections name, store search with grouping, filters and metadata,
and the documented `instructions` limit. Bad input gets an actionable error and changes nothing; every
next step a result prints is followed."""

from __future__ import annotations

from typing import Any, cast

import pytest
from mcp import Client

from tests.server.conftest import World, call_ok, text_of
from tests.server.test_next_steps import next_steps, parse_calls
from tl_mcp.sandbox.engine import Engine
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


def _count(world: World, table: str) -> int:
    db = cast(Engine, world.sandbox.engine).db
    return int(db.one(f"SELECT COUNT(*) AS n FROM {table}")["n"])


async def _refused(c: Client, tool: str, args: dict[str, Any], says: str) -> str:
    result = await c.call_tool(tool, args)
    assert result.is_error, f"{tool} accepted {args}"
    text = text_of(result)
    assert says in text, text
    return text


async def _follow(c: Client, text_source: Any, answers: dict[str, Any]) -> list[str]:
    """Make every call a result's next steps print, filling `…` from `answers`; the tools called."""
    called = []
    for hint in next_steps(text_source):
        for tool, args in parse_calls(hint):
            filled = {k: answers[k] if v is None else v for k, v in args.items()}
            outcome = await c.call_tool(tool, filled)
            assert not outcome.is_error, f"following {hint!r} failed: {text_of(outcome)}"
            called.append(tool)
    return called


async def test_store_enrichment_and_metadata_are_kept_and_the_sandbox_says_it_does_not_enrich(
    world: World,
) -> None:
    async with Client(build_server(world.settings(toolsets="library,stores"))) as c:
        made = await call_ok(
            c,
            "create_knowledge_store",
            {
                "name": "enriched",
                "enrichment": "Who speaks, and the products named.",
            },
        )
        assert "does not run it" in text_of(made)
        store_id = made.structured_content["id"]  # type: ignore[index]
        updated = await call_ok(
            c, "update_knowledge_store", {"knowledge_store_id": store_id, "metadata": {"team": ["a", "b"]}}
        )
        detail = updated.structured_content
        assert detail and detail["metadata"] == {"team": ["a", "b"]}
        assert detail["ingestion_config"] == {
            "enrichment_config": {"type": "description", "description": "Who speaks, and the products named."}
        }
        cleared = await call_ok(c, "update_knowledge_store", {"knowledge_store_id": store_id, "metadata": {}})
        assert cleared.structured_content and cleared.structured_content["metadata"] == {}
        followed = await _follow(c, updated, {"name": "from-the-hint"})
        assert followed == ["create_item_collection"]

        schema = {"type": "object", "properties": {"speaker": {"type": "string", "description": "Who."}}}
        typed = await call_ok(c, "create_knowledge_store", {"name": "typed", "enrichment": schema})
        assert typed.structured_content

        before = _count(world, "ks_stores")
        await _refused(
            c, "create_knowledge_store", {"name": "bad", "enrichment": {"type": "array"}}, '"type": "object"'
        )
        # The API's own check (422): a property without a description is named in the error.
        no_description = {"type": "object", "properties": {"speaker": {"type": "string"}}}
        await _refused(
            c,
            "create_knowledge_store",
            {"name": "bad", "enrichment": no_description},
            "needs a `description`",
        )
        await _refused(
            c, "create_knowledge_store", {"name": "bad", "enrichment": "  "}, "describe what to extract"
        )
        too_many = {f"k{i}": "v" for i in range(11)}
        await _refused(
            c, "update_knowledge_store", {"knowledge_store_id": store_id, "metadata": too_many}, "metadata"
        )
        # Refused by the API (null is not a metadata value): nothing stored.
        await _refused(
            c, "update_knowledge_store", {"knowledge_store_id": store_id, "metadata": {"a": None}}, "metadata"
        )
        await _refused(c, "update_knowledge_store", {"knowledge_store_id": store_id}, "Nothing to change")
        await _refused(
            c,
            "update_knowledge_store",
            {"knowledge_store_id": "ks_nope", "name": "x"},
            "list_knowledge_stores",
        )
        assert _count(world, "ks_stores") == before
        kept = await call_ok(
            c, "update_knowledge_store", {"knowledge_store_id": store_id, "name": "enriched"}
        )
        assert kept.structured_content and kept.structured_content["metadata"] == {}


async def test_collections_group_items_and_jockey_selections_name_them(world: World) -> None:
    ks = {"knowledge_store_id": world.knowledge_store_id}
    async with Client(build_server(world.settings(toolsets="jockey,library,stores"))) as c:
        made = await call_ok(
            c,
            "create_item_collection",
            {**ks, "name": "Apples", "item_ids": [world.item_id], "metadata": {"q": 3}},
        )
        data = made.structured_content
        assert data and data["collection"]["member_count"] == 1 and data["collection"]["metadata"] == {"q": 3}
        cid = data["collection"]["collection_id"]
        assert cid.startswith("ksic_")
        # The printed next steps: Jockey limited to the collection, and adding items.
        followed = await _follow(c, made, {"input": "What fruit is shown?", "add_item_ids": [world.item_id]})
        assert followed == ["create_response", "update_item_collection"]

        listed = await call_ok(c, "list_item_collections", ks)
        assert listed.structured_content
        assert cid in [x["collection_id"] for x in listed.structured_content["collections"]]
        assert "list_collection_items" in await _follow(c, listed, {})
        members = await call_ok(c, "list_collection_items", {**ks, "collection_id": cid})
        assert members.structured_content
        assert [i["item_id"] for i in members.structured_content["items"]] == [world.item_id]
        assert await _follow(c, members, {"input": "What is shown?"}) == ["create_response"]

        group = {**ks, "collection_id": cid}
        before = (_count(world, "ks_collections"), _count(world, "ks_collection_members"))
        await _refused(c, "create_item_collection", {**ks, "name": "Apples"}, "already exists")
        await _refused(
            c, "create_item_collection", {**ks, "name": "Ghosts", "item_ids": ["ksi_nope"]}, "ksi_nope"
        )
        await _refused(c, "update_item_collection", group, "Nothing to change")
        await _refused(
            c,
            "update_item_collection",
            {**group, "add_item_ids": [world.item_id], "remove_item_ids": [world.item_id]},
            "in both",
        )
        await _refused(c, "update_item_collection", {**group, "add_item_ids": ["ksi_nope"]}, "ksi_nope")
        await _refused(
            c,
            "update_item_collection",
            {**ks, "collection_id": "ksic_nope", "add_item_ids": [world.item_id]},
            "ksic_nope",
        )
        assert (_count(world, "ks_collections"), _count(world, "ks_collection_members")) == before

        emptied = await call_ok(c, "update_item_collection", {**group, "remove_item_ids": [world.item_id]})
        assert emptied.structured_content and emptied.structured_content["collection"]["member_count"] == 0
        await _refused(
            c,
            "search_knowledge_store",
            {**group, "query": "apples"},
            "has no items, so there is nothing to search",
        )


async def test_store_search_groups_filters_and_pages(world: World) -> None:
    ks = {"knowledge_store_id": world.knowledge_store_id}
    async with Client(build_server(world.settings(toolsets="stores"))) as c:
        both = {"modalities": ["visual", "audio"]}
        flat = await call_ok(
            c, "search_knowledge_store", {**ks, "query": "apples, ocean waves, sales", "page_size": 1, **both}
        )
        page = flat.structured_content
        assert page and len(page["hits"]) == 1 and page["hits"][0]["item_id"] == world.item_id
        assert page["hits"][0]["matches"][0]["end"] > page["hits"][0]["matches"][0]["start"]
        assert page["effective_search_options"] == {"video": {"modalities": ["visual", "audio"]}}
        # The clip store holds more moments than one page: the printed next page is followed.
        assert page.get("next_page_token"), page
        assert await _follow(c, flat, {}) == ["search_knowledge_store"]

        grouped = await call_ok(
            c,
            "search_knowledge_store",
            {
                **ks,
                "query": "fresh apples",
                "group_by": "item",
                "include_metadata": True,
                "modalities": ["visual", "audio"],
            },
        )
        hits = grouped.structured_content["hits"]  # type: ignore[index]
        assert [h["item_id"] for h in hits] == [world.item_id]
        assert len(hits[0]["matches"]) >= 1 and hits[0]["metadata"]["system"]["duration"] > 0
        assert "user" in hits[0]["metadata"]

        made = await call_ok(
            c, "create_item_collection", {**ks, "name": "Search scope", "item_ids": [world.item_id]}
        )
        cid = made.structured_content["collection"]["collection_id"]  # type: ignore[index]
        scoped = await call_ok(
            c, "search_knowledge_store", {**ks, "query": "fresh apples", "collection_id": cid, **both}
        )
        assert [h["item_id"] for h in scoped.structured_content["hits"]] == [world.item_id]  # type: ignore[index]
        images = await call_ok(
            c, "search_knowledge_store", {**ks, "query": "fresh apples", "asset_types": ["image"]}
        )
        assert images.structured_content and images.structured_content["hits"] == []
        assert images.structured_content["effective_search_options"] == {}

        await _refused(
            c,
            "search_knowledge_store",
            {**ks, "query": "x", "item_ids": [world.item_id], "collection_id": cid},
            "not both",
        )
        await _refused(
            c,
            "search_knowledge_store",
            {**ks, "query": "x", "asset_types": ["image"], "modalities": ["audio"]},
            "leaves videos out",
        )
        await _refused(
            c,
            "search_knowledge_store",
            {**ks, "query": "x", "page_token": "kspt_forged"},
            "not a next_page_token",
        )
        await _refused(
            c, "search_knowledge_store", {"knowledge_store_id": "ks_nope", "query": "x"}, "ks_nope"
        )


async def test_instructions_over_the_documented_limit_are_refused_before_any_request(world: World) -> None:
    ks = {"knowledge_store_id": world.knowledge_store_id, "input": "What is shown?"}
    async with Client(build_server(world.settings())) as c:
        before = _count(world, "jockey_turns")
        # Refused by the tool itself (the sandbox's own refusal words it differently), so the cloud, which
        # states no limit in its schema, never gets a request it may refuse or silently cut.
        text = await _refused(
            c, "create_response", {**ks, "instructions": "x" * 2001}, "at most 2000 characters"
        )
        assert "instructions" in text
        assert _count(world, "jockey_turns") == before
        ok = await call_ok(c, "create_response", {**ks, "instructions": "Be brief. " * 200})
        assert ok.structured_content and ok.structured_content["status"] == "completed"
