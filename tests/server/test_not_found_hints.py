"""An id the API does not know: the error names the tool that lists what exists of that kind (an asset,
an entity, an item collection, ...), and calling that tool as told works; nothing was changed."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.server.conftest import World, call_ok, text_of
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

MISSING = "0" * 24


async def test_a_missing_id_is_answered_with_the_tool_that_lists_its_kind(world: World) -> None:
    ks = {"knowledge_store_id": world.knowledge_store_id}
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        collection = (await call_ok(c, "create_entity_collection", {"name": "hints"})).structured_content
        assert collection
        cid = collection["collection"]["entity_collection_id"]
        idx, coll = {"index_id": world.index_id}, {"entity_collection_id": cid}
        # tool, arguments naming one missing id, then the listers the error must name, with what they take.
        cases: list[tuple[str, dict[str, Any], dict[str, dict[str, Any]]]] = [
            ("update_metadata", {"asset_id": MISSING, "user_metadata": {"a": 1}}, {"list_assets": {}}),
            (
                "update_metadata",
                {"video_id": MISSING, **idx, "user_metadata": {"a": 1}},
                {"list_indexes": {}, "list_videos": idx},
            ),
            ("list_videos", {"index_id": MISSING}, {"list_indexes": {}, "list_videos": idx}),
            (
                "get_entity",
                {**coll, "entity_id": MISSING},
                {"list_entity_collections": {}, "list_entities": coll},
            ),
            (
                "list_entities",
                {"entity_collection_id": MISSING},
                {"list_entity_collections": {}, "list_entities": coll},
            ),
            (
                "update_entity_collection",
                {"entity_collection_id": MISSING, "name": "x"},
                {"list_entity_collections": {}},
            ),
            (
                "list_collection_items",
                {**ks, "collection_id": "ksic_nope"},
                {"list_knowledge_stores": {}, "list_item_collections": ks},
            ),
            (
                "update_knowledge_store",
                {"knowledge_store_id": "ks_nope", "name": "x"},
                {"list_knowledge_stores": {}},
            ),
        ]
        before = (await call_ok(c, "list_assets", {})).structured_content
        for tool, args, listers in cases:
            result = await c.call_tool(tool, args)
            assert result.is_error, f"{tool} accepted {args}"
            text = text_of(result)
            named = " and ".join(listers)
            verb = "shows" if len(listers) == 1 else "show"
            assert f"Check the id; {named} {verb} the ids that exist." in text, f"{tool}: {text}"
            for lister, lister_args in listers.items():
                await call_ok(c, lister, lister_args)
        assert (await call_ok(c, "list_assets", {})).structured_content == before
