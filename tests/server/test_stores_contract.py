"""The requests the knowledge-store tools send to the cloud, checked against the OpenAPI snapshot.

A loopback fake TwelveLabs records every request, validates it with the same check the API-client tests
use (path, query parameters, JSON body against the snapshot's request schema) and answers with a sample
built from the snapshot's response schema; the tools run through a real MCP client on the cloud backend.

Where the SDK 1.3.6 delta differs from the snapshot, the delta wins: store and collection `metadata` values
may be numbers, booleans or string arrays there (the snapshot says strings only), so these requests use
strings and the wider union is exercised against the sandbox (tests/server/test_stores_tools.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.api.conftest import Seen, check_against_spec
from tests.api.test_endpoints import spec_answer
from tests.openapi_spec import match_path
from tests.server.conftest import call_ok, loopback_socket, serve_app, text_of
from tl_mcp.config import Settings
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

KS, ITEM, COLLECTION = "ks_1", "ksi_1", "ksic_1"
COLLECTIONS = "/knowledge-stores/{knowledge_store_id}/item-collections"
ONE_COLLECTION = COLLECTIONS + "/{collection_id}"
ADD = ONE_COLLECTION + "/items/add"


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.violations: list[str] = []
        #: (method, template) -> the status to fail that operation with, instead of a spec sample.
        self.fail: dict[tuple[str, str], int] = {}

    async def handle(self, request: Request) -> Response:
        path = "/" + request.url.path.removeprefix("/v1.3/")
        seen = Seen(
            request.method,
            path,
            httpx2.QueryParams(list(request.query_params.multi_items())),
            httpx2.Headers(list(request.headers.items())),
            await request.body(),
            match_path(path),
        )
        self.seen.append(seen)
        if seen.template is None:
            self.violations.append(f"{request.method} {path}: not an operation of the snapshot")
            return Response(status_code=404)
        try:
            check_against_spec(seen)
        except AssertionError as exc:
            self.violations.append(str(exc))
        status = self.fail.get((seen.method, seen.template))
        if status is not None:
            return JSONResponse({"code": "parameter_invalid", "message": "not an item of this store"}, status)
        answer = spec_answer(seen)
        return Response(answer.content, answer.status_code, media_type="application/json")

    def bodies(self, method: str, template: str) -> list[Any]:
        return [s.json() for s in self.seen if (s.method, s.template) == (method, template) and s.body]


@pytest.fixture
async def cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> AsyncIterator[tuple[Settings, Recorder]]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # the cloud backend's state folder
    recorder = Recorder()
    app = Starlette(
        routes=[
            Route("/v1.3/{path:path}", recorder.handle, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
        ]
    )
    async with serve_app(app, loopback_socket()) as base:
        settings = Settings.from_sources(
            env={
                "TWELVELABS_API_KEY": "tlk_fake_cloud_key_0123456789",
                "TL_MCP_BACKEND": "cloud",
                "TWELVELABS_BASE_URL": f"{base}/v1.3",
            },
            toolsets="jockey,library,stores",
        )
        yield settings, recorder


async def test_store_tools_send_what_the_snapshot_accepts(cloud: tuple[Settings, Recorder]) -> None:
    settings, api = cloud
    schema = {"type": "object", "properties": {"speaker": {"type": "string", "description": "Who speaks."}}}
    ks = {"knowledge_store_id": KS}
    group = {**ks, "collection_id": COLLECTION}
    async with Client(build_server(settings)) as c:
        await call_ok(c, "create_knowledge_store", {"name": "S", "enrichment": "Speakers."})
        await call_ok(c, "create_knowledge_store", {"name": "T", "enrichment": schema})
        await call_ok(c, "update_knowledge_store", {**ks, "name": "S2", "metadata": {}})
        await call_ok(c, "update_knowledge_store", {**ks, "metadata": {"t": "a"}})
        await call_ok(
            c, "create_item_collection", {**ks, "name": "C", "item_ids": [ITEM], "metadata": {"q": "1"}}
        )
        await call_ok(c, "list_item_collections", {**ks, "page_limit": 5})
        await call_ok(c, "list_collection_items", {**group, "page": 2})
        await call_ok(
            c, "update_item_collection", {**group, "add_item_ids": [ITEM], "remove_item_ids": ["ksi_2"]}
        )
        searched = await call_ok(
            c,
            "search_knowledge_store",
            {
                **group,
                "query": "apples",
                "group_by": "item",
                "asset_types": ["video"],
                "modalities": ["visual", "audio"],
                "include_metadata": True,
                "page_size": 5,
            },
        )
        assert "Knowledge-store search" in text_of(searched)
        first = await call_ok(c, "search_knowledge_store", {**ks, "query": "apples"})
        token = (first.structured_content or {})["next_page_token"]
        await call_ok(c, "search_knowledge_store", {**ks, "query": "apples", "page_token": token})
        sent = len(api.seen)
        refused = await c.call_tool("create_response", {**ks, "input": "Hi?", "instructions": "x" * 2001})
        assert refused.is_error and "at most 2000 characters" in text_of(refused)
        assert len(api.seen) == sent, "an over-long instructions reached the API"
    assert api.violations == []

    stores = api.bodies("POST", "/knowledge-stores")
    assert stores[0] == {
        "name": "S",
        "ingestion_config": {"enrichment_config": {"type": "description", "description": "Speakers."}},
    }
    assert stores[1]["ingestion_config"] == {
        "enrichment_config": {"type": "json_schema", "json_schema": schema}
    }
    assert api.bodies("PATCH", "/knowledge-stores/{knowledge_store_id}") == [
        {"name": "S2", "metadata": {}},
        {"metadata": {"t": "a"}},
    ]
    add = "/knowledge-stores/{knowledge_store_id}/item-collections/{collection_id}/items/add"
    remove = "/knowledge-stores/{knowledge_store_id}/item-collections/{collection_id}/items/remove"
    assert api.bodies("POST", add) == [{"item_ids": [ITEM]}, {"item_ids": [ITEM]}]
    assert api.bodies("POST", remove) == [{"item_ids": ["ksi_2"]}]
    searches = api.bodies("POST", "/knowledge-stores/{knowledge_store_id}/search")
    scope = searches[0]["filter"]["item_id"]["in"]
    assert scope and all(isinstance(i, str) for i in scope)  # the collection's items, read from the API
    assert searches[0] == {
        "query": {"text": "apples"},
        "filter": {"asset_type": {"in": ["video"]}, "item_id": {"in": scope}},
        "search_options": {"video": {"modalities": ["visual", "audio"]}},
        "group_by": "item",
        "page_size": 5,
        "include_metadata": True,
    }
    # The token a result hands out is the API's, tagged with the search it continues; the API gets its own.
    upstream_token = searches[2]["page_token"]
    assert token.startswith(upstream_token + "~")
    assert searches[2] == {
        "query": {"text": "apples"},
        "group_by": "none",
        "page_size": 10,
        "page_token": upstream_token,
    }
    collections = [
        s for s in api.seen if s.template and "item-collections" in s.template and s.method == "GET"
    ]
    assert {s.params.get("page_limit") for s in collections} >= {"5"}


async def test_a_collection_whose_items_are_refused_is_removed_again(
    cloud: tuple[Settings, Recorder],
) -> None:
    settings, api = cloud
    api.fail[("POST", ADD)] = 400
    args = {"knowledge_store_id": KS, "name": "C", "item_ids": ["ksi_nope"]}
    async with Client(build_server(settings)) as c:
        refused = await c.call_tool("create_item_collection", args)
        assert refused.is_error and "No collection was created" in text_of(refused), text_of(refused)
        assert [(s.method, s.template) for s in api.seen] == [
            ("POST", COLLECTIONS),
            ("POST", ADD),
            ("DELETE", ONE_COLLECTION),
        ]
        # When the clean-up fails too, the error says what is left and how to finish.
        api.fail[("DELETE", ONE_COLLECTION)] = 500
        stuck = await c.call_tool("create_item_collection", args)
        text = text_of(stuck)
        assert stuck.is_error and "could not be removed" in text and "update_item_collection(" in text, text
    assert api.violations == []
