"""The entity family: every request the client builds is checked against the OpenAPI snapshot by `FakeAPI`
(bodies, query parameters), and every answer generated from the spec's response schema parses."""

from __future__ import annotations

import httpx2
import pytest

from tests.api.conftest import FakeAPI, Seen, json_response, make_client
from tests.api.test_endpoints import spec_answer
from tl_mcp.api import (
    BulkCreateEntitiesResult,
    CreateEntityRequest,
    Entity,
    EntityCollection,
    ServerError,
)
from tl_mcp.api.resources.entities import entity_query, referenced_entities

pytestmark = pytest.mark.anyio


async def test_collections_entities_assets_and_bulk_requests_follow_the_contract() -> None:
    api = FakeAPI(spec_answer)
    async with make_client(api) as tl:
        col = await tl.entity_collections.create("cast", description="people")
        got = await tl.entity_collections.get("ec1")
        cols = await tl.entity_collections.list(2, 5, name="ca", sort_by="name", sort_option="asc")
        renamed = await tl.entity_collections.update("ec1", name="crew")
        await tl.entity_collections.delete("ec1")
        ent = await tl.entities.create("ec1", "Ada", ["a1", "a2"], description="host", metadata={"age": 41})
        bulk = await tl.entities.create_bulk("ec1", [CreateEntityRequest(name="Bob", asset_ids=["a3"])])
        one = await tl.entities.get("ec1", "e1")
        ents = await tl.entities.list("ec1", name="Ad", status="ready", sort_by="updated_at")
        of_asset = await tl.entities.of_asset("a1", page=1, page_limit=50)
        patched = await tl.entities.update("ec1", "e1", metadata={"team": "red", "active": True})
        added = await tl.entities.add_assets("ec1", "e1", ["a4"])
        removed = await tl.entities.remove_assets("ec1", "e1", ["a1"])
        await tl.entities.delete("ec1", "e1")
        with pytest.raises(ValueError, match="nothing to update"):
            await tl.entities.update("ec1", "e1")
        with pytest.raises(ValueError, match="nothing to update"):
            await tl.entity_collections.update("ec1")
    for value in (col, got, renamed, cols.data[0]):
        assert isinstance(value, EntityCollection)
    for value in (ent, one, ents.data[0], of_asset.data[0], patched, added, removed):
        assert isinstance(value, Entity)
    assert isinstance(bulk, BulkCreateEntitiesResult) and bulk.entities and bulk.errors
    by_op = {(s.method, s.template): s for s in api.seen}
    assert len(api.seen) == 14  # the refused updates never reached the network
    assert by_op[("POST", "/entity-collections")].json() == {"name": "cast", "description": "people"}
    listed = by_op[("GET", "/entity-collections")].params
    assert dict(listed) == {
        "page": "2",
        "page_limit": "5",
        "name": "ca",
        "sort_by": "name",
        "sort_option": "asc",
    }
    entities = "/entity-collections/{entity_collection_id}/entities"
    assert by_op[("POST", entities)].json() == {
        "name": "Ada",
        "asset_ids": ["a1", "a2"],
        "description": "host",
        "metadata": {"age": 41},
    }
    assert by_op[("POST", entities + "/bulk")].json() == {"entities": [{"name": "Bob", "asset_ids": ["a3"]}]}
    assert by_op[("GET", entities)].params["status"] == "ready"
    assert by_op[("PATCH", entities + "/{entity_id}")].json() == {"metadata": {"team": "red", "active": True}}
    assert by_op[("POST", entities + "/{entity_id}/assets")].json() == {"asset_ids": ["a4"]}
    assert by_op[("DELETE", entities + "/{entity_id}/assets")].json() == {"asset_ids": ["a1"]}
    assert by_op[("GET", "/assets/{asset_id}/entities")].path == "/assets/a1/entities"


async def test_a_create_is_never_repeated_but_an_asset_change_is() -> None:
    """Creating an entity twice would register it twice; adding the same assets again changes nothing."""
    calls: list[str] = []

    def busy_once_per_path(seen: Seen) -> httpx2.Response:
        calls.append(seen.path)
        if calls.count(seen.path) == 1:
            return json_response(503, {"code": "server_error", "message": "busy"})
        return spec_answer(seen)

    async with make_client(FakeAPI(busy_once_per_path)) as tl:
        with pytest.raises(ServerError, match="busy"):
            await tl.entities.create("ec1", "Ada", ["a1"])
        added = await tl.entities.add_assets("ec1", "e1", ["a2"])
    assert isinstance(added, Entity)
    create, assets = "/entity-collections/ec1/entities", "/entity-collections/ec1/entities/e1/assets"
    assert calls == [create, assets, assets]


def test_entity_queries_name_entities_the_way_search_reads_them() -> None:
    assert entity_query(["e1"]) == "<@e1>"
    assert entity_query(["e1", "e2"], "  is walking ") == "<@e1> <@e2> is walking"
    assert referenced_entities("<@e1> meets <@e2> and <@e1>") == ["e1", "e2"]
    with pytest.raises(ValueError):
        entity_query([])
