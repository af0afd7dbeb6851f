"""The entities toolset through a real MCP client against the sandbox: register an entity by a reference
image, find every moment it appears (and hear that offline this is picture similarity, not recognition),
follow the next steps the results print, and refuse bad input without changing anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.openapi_spec import multipart_fields
from tests.server.conftest import MODES, World, call_ok, loopback_socket, serve_app, text_of
from tests.server.test_next_steps import next_steps, parse_calls
from tl_mcp.config import Settings
from tl_mcp.samples import make_sample_image
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


async def _data(c: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await call_ok(c, name, args)
    assert result.structured_content is not None
    return result.structured_content


async def _error(c: Client, name: str, args: dict[str, Any]) -> str:
    result = await c.call_tool(name, args)
    assert result.is_error, f"{name} should have failed: {text_of(result)}"
    return text_of(result)


async def _reference(c: Client, world: World, scene: int) -> str:
    picture = make_sample_image(world.media / f"ref-scene{scene}.png", scene_index=scene)
    up = await _data(c, "upload_asset", {"path": str(picture)})
    asset_id: str = up["asset_id"]
    return asset_id


async def _ready(c: Client, collection_id: str, entity_id: str) -> dict[str, Any]:
    """Follows the hint a processing entity prints (get_entity) until it is ready."""
    with anyio.fail_after(60):
        while True:
            got = await _data(
                c, "get_entity", {"entity_collection_id": collection_id, "entity_id": entity_id}
            )
            if got["entity"]["status"] == "ready":
                return got["entity"]
            await anyio.sleep(0.1)


@pytest.mark.parametrize("mode", MODES)
async def test_register_an_entity_and_find_every_moment_it_appears(world: World, mode: str) -> None:
    apples = world.sample.scenes[1]
    async with Client(build_server(world.settings(toolsets="all")), mode=mode) as c:
        created = await call_ok(c, "create_entity_collection", {"name": f"produce-{mode}"})
        assert "create_entity(" in text_of(created)
        cid = (created.structured_content or {})["collection"]["entity_collection_id"]
        listed = await _data(c, "list_entity_collections", {"name": "produce"})
        assert cid in [col["entity_collection_id"] for col in listed["collections"]]
        renamed = await _data(
            c, "update_entity_collection", {"entity_collection_id": cid, "name": f"fruit-{mode}"}
        )
        assert renamed["collection"]["name"] == f"fruit-{mode}"

        picture = await _reference(c, world, 1)
        made = await call_ok(
            c,
            "create_entity",
            {
                "entity_collection_id": cid,
                "name": "Apple stand",
                "asset_ids": [picture],
                "metadata": {"aisle": 3},
            },
        )
        entity = (made.structured_content or {})["entity"]
        eid = entity["entity_id"]
        assert entity["asset_ids"] == [picture] and entity["metadata"] == {"aisle": 3}
        entity = await _ready(c, cid, eid)

        found = await call_ok(c, "find_entity_moments", {"entity_ids": [eid], "index_id": world.index_id})
        data = found.structured_content or {}
        assert data["query"] == f"<@{eid}>"
        top = data["moments"][0]
        assert top["video_id"] == world.video_id
        assert top["start"] >= apples.start - 0.5 and top["end"] <= apples.end + 0.5, top
        assert "not identity recognition" in data["matched_by"]
        assert "visual similarity" in text_of(found) and "reference images" in text_of(found)
        # The next step it prints works.
        assert f'get_video(index_id="{world.index_id}", video_id="{world.video_id}")' in text_of(found)
        video = await _data(c, "get_video", {"index_id": world.index_id, "video_id": top["video_id"]})
        assert video["video"]["video_id"] == world.video_id

        # search_videos takes the same reference inside its query, and says how it was matched too.
        searched = await call_ok(c, "search_videos", {"query": f"<@{eid}>", "index_id": world.index_id})
        moments = (searched.structured_content or {})["moments"]
        assert moments[0]["start"] == top["start"] and "How entities were matched" in text_of(searched)

        by_collection = await _data(c, "list_entities", {"entity_collection_id": cid, "status": "ready"})
        assert [e["entity_id"] for e in by_collection["entities"]] == [eid]
        by_asset = await _data(c, "list_entities", {"asset_id": picture})
        assert [e["entity_id"] for e in by_asset["entities"]] == [eid]

        other = await _reference(c, world, 2)
        swapped = await _data(
            c,
            "update_entity",
            {
                "entity_collection_id": cid,
                "entity_id": eid,
                "name": "Ocean",
                "add_asset_ids": [other],
                "remove_asset_ids": [picture],
            },
        )
        assert swapped["entity"]["name"] == "Ocean" and swapped["entity"]["asset_ids"] == [other]
        await _ready(c, cid, eid)
        ocean = await _data(c, "find_entity_moments", {"entity_ids": [eid], "index_id": world.index_id})
        assert ocean["moments"][0]["start"] >= world.sample.scenes[2].start - 0.5

        deleted = await _data(c, "delete_entity", {"entity_collection_id": cid, "entity_id": eid})
        assert deleted["deleted"] is True
        again = await _data(c, "delete_entity", {"entity_collection_id": cid, "entity_id": eid})
        assert again["deleted"] is False
        gone = await _data(c, "delete_entity_collection", {"entity_collection_id": cid})
        assert gone["deleted"] is True


async def test_bad_entity_input_is_refused_and_changes_nothing(world: World) -> None:
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        cid = (await _data(c, "create_entity_collection", {"name": "refusals"}))["collection"][
            "entity_collection_id"
        ]
        missing = "0" * 24
        text = await _error(
            c, "create_entity", {"entity_collection_id": cid, "name": "X", "asset_ids": [missing]}
        )
        assert "does not exist" in text
        assert (await _data(c, "list_entities", {"entity_collection_id": cid}))["entities"] == []

        text = await _error(c, "find_entity_moments", {"entity_ids": [missing], "index_id": world.index_id})
        assert "does not exist" in text and "list_entities" in text
        text = await _error(c, "search_videos", {"query": "<@ oops> walking", "index_id": world.index_id})
        assert "malformed entity reference" in text
        text = await _error(
            c, "search_videos", {"query": f"<@{missing}>", "knowledge_store_id": world.knowledge_store_id}
        )
        assert "index search only" in text
        text = await _error(c, "list_entities", {"entity_collection_id": cid, "asset_id": world.asset_id})
        assert "exactly one" in text
        text = await _error(c, "update_entity", {"entity_collection_id": cid, "entity_id": missing})
        assert "Nothing to update" in text
        text = await _error(c, "get_entity", {"entity_collection_id": cid, "entity_id": missing})
        assert "does not exist" in text

        picture = await _reference(c, world, 0)
        eid = (
            await _data(
                c, "create_entity", {"entity_collection_id": cid, "name": "Solo", "asset_ids": [picture]}
            )
        )["entity"]["entity_id"]
        text = await _error(
            c, "update_entity", {"entity_collection_id": cid, "entity_id": eid, "remove_asset_ids": [picture]}
        )
        assert "at least one asset" in text
        kept = await _data(c, "get_entity", {"entity_collection_id": cid, "entity_id": eid})
        assert kept["entity"]["asset_ids"] == [picture]


async def test_entity_tools_are_off_by_default_and_deletes_need_admin(world: World) -> None:
    async with Client(build_server(world.settings())) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert "find_entity_moments" not in names and "delete_entity" not in names
    async with Client(build_server(world.settings(toolsets="entities", read_only=True))) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert names == {"list_entity_collections", "list_entities", "get_entity", "find_entity_moments"}


async def test_every_next_step_an_entity_tool_prints_works(world: World) -> None:
    """Each hint is parsed and called as printed, with `…` filled the way an agent would."""
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        picture = await _reference(c, world, 0)
        answers: dict[str, Any] = {"name": "Followed", "asset_ids": [picture], "index_id": world.index_id}
        cid = (await _data(c, "create_entity_collection", {"name": "steps"}))["collection"][
            "entity_collection_id"
        ]
        eid = (
            await _data(
                c, "create_entity", {"entity_collection_id": cid, "name": "Lead", "asset_ids": [picture]}
            )
        )["entity"]["entity_id"]
        await _ready(c, cid, eid)
        starts: list[tuple[str, dict[str, Any]]] = [
            ("create_entity_collection", {"name": "steps-2"}),
            ("list_entity_collections", {"page_limit": 1}),
            ("get_entity", {"entity_collection_id": cid, "entity_id": eid}),
            ("update_entity", {"entity_collection_id": cid, "entity_id": eid, "description": "the lead"}),
            ("list_entities", {"entity_collection_id": cid}),
            ("find_entity_moments", {"entity_ids": [eid], "index_id": world.index_id, "limit": 1}),
        ]
        followed: list[str] = []
        paged = False
        for tool, args in starts:
            result = await call_ok(c, tool, args)
            for hint in next_steps(result):
                calls = parse_calls(hint)
                assert calls, hint
                for name, hinted in calls:
                    filled = {k: answers[k] if v is None else v for k, v in hinted.items()}
                    outcome = await c.call_tool(name, filled)
                    assert not outcome.is_error, f"following {hint!r} failed: {text_of(outcome)}"
                    followed.append(name)
                    if name == "find_entity_moments" and "page_token" in filled:
                        assert (outcome.structured_content or {})["moments"], "the next page is empty"
                        paged = True
    assert {"create_entity", "find_entity_moments", "list_entity_collections", "get_video"} <= set(followed)
    assert paged, "find_entity_moments with limit=1 printed no next page"


async def test_on_the_cloud_entity_search_sends_the_reference_and_claims_no_similarity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Against a loopback fake of the cloud: the search form is the contract's (checked against the OpenAPI
    snapshot's multipart fields), `<@id>` travels in `query_text`, and with no sandbox note the result does
    not claim a similarity match (the cloud recognises the entity)."""
    seen: list[dict[str, Any]] = []

    async def search(request: Request) -> Response:
        form = await request.form()
        seen.append({k: form.getlist(k) for k in form})
        clip = {
            "video_id": "v1",
            "start": 3.0,
            "end": 7.5,
            "rank": 1,
            "thumbnail_url": "https://t.example/1.jpg",
        }
        return JSONResponse({"data": [clip], "page_info": {"limit_per_page": 10, "total_results": 1}})

    fake = Starlette(routes=[Route("/v1.3/search", search, methods=["POST"])])
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    async with serve_app(fake, loopback_socket()) as base:
        settings = Settings.from_sources(
            env={
                "TWELVELABS_API_KEY": "tlk_fake_cloud_key_0123456789",
                "TL_MCP_BACKEND": "cloud",
                "TWELVELABS_BASE_URL": f"{base}/v1.3",
                "TL_MCP_TOOLSETS": "entities,search",
            }
        )
        async with Client(build_server(settings)) as c:
            found = await call_ok(
                c,
                "find_entity_moments",
                {"entity_ids": ["e1", "e2"], "index_id": "i1", "doing": "shake hands"},
            )
            searched = await call_ok(c, "search_videos", {"query": "<@e1> is walking", "index_id": "i1"})
    data = found.structured_content or {}
    assert data["moments"][0]["start"] == 3.0 and "matched_by" not in data
    assert "similarity" not in text_of(found) and "How entities were matched" not in text_of(searched)
    assert [s["query_text"] for s in seen] == [["<@e1> <@e2> shake hands"], ["<@e1> is walking"]]
    allowed = multipart_fields("post", "/search")
    assert all(set(s) <= allowed and s["index_id"] == ["i1"] for s in seen), seen
