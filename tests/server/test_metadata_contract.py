"""The metadata and listing tools' requests to TwelveLabs, checked against the OpenAPI snapshot: the tools
run through a real MCP client against a loopback fake cloud that validates every request (path, query
names, JSON body, multipart fields; `tests/api/conftest.check_against_spec`) and answers with a sample of
the spec's success schema. Where the SDK 1.3.6 delta widens a type (metadata string arrays, wide
integers as strings), the delta wins; the snapshot's `UserMetadata` schema takes any value, so those
bodies validate as they are."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests import openapi_spec
from tests.api.conftest import Seen, check_against_spec
from tests.api.test_endpoints import spec_answer
from tests.server.conftest import call_ok, loopback_socket, serve_app
from tl_mcp.config import Settings
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


#: Bodies whose metadata the snapshot still types `map<string, string>` while SDK 1.3.6 widens it to the
#: value union (twelvelabs-sdk-1.3.6-delta.md §3, "Item `metadata`"): the delta wins, so these are checked
#: with each value as the string the snapshot expects, after checking it is in the widened union.
WIDENED = {("POST", "/knowledge-stores/{knowledge_store_id}/items"): "metadata"}


def _as_snapshot_types(seen: Seen) -> Seen:
    field = WIDENED.get((seen.method, seen.template or ""))
    if field is None or not seen.body:
        return seen
    body = seen.json()
    values = body.get(field) or {}
    for key, value in values.items():
        widened = isinstance(value, str | int | float | bool) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        assert widened, f"{field}.{key}: {value!r} is outside the SDK 1.3.6 value union"
    body[field] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    return dataclasses.replace(seen, body=json.dumps(body).encode())


class FakeCloud:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.violations: list[str] = []

    async def handle(self, request: Request) -> Response:
        path = "/" + request.url.path.split("/v1.3/", 1)[1]
        seen = Seen(
            request.method,
            path,
            httpx2.QueryParams(str(request.query_params)),
            httpx2.Headers(dict(request.headers)),
            await request.body(),
            template=openapi_spec.match_path(path),
        )
        self.seen.append(seen)
        try:
            assert seen.template is not None, f"{request.method} {path} is not in the spec"
            check_against_spec(_as_snapshot_types(seen))
        except AssertionError as exc:
            self.violations.append(str(exc))
            return Response(json.dumps({"code": "contract", "message": str(exc)}), 400)
        answer = spec_answer(seen)
        return Response(answer.content, answer.status_code, media_type="application/json")

    def calls(self, method: str, template: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.template == template]


@pytest.fixture
async def cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> AsyncIterator[tuple[Settings, FakeCloud]]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    fake = FakeCloud()

    async def endpoint(request: Request) -> Response:
        return await fake.handle(request)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/v1.3/{rest:path}", endpoint, methods=methods)])
    async with serve_app(app, loopback_socket()) as base:
        settings = Settings.from_sources(
            env={
                "TWELVELABS_API_KEY": "tlk_fake_cloud_key_0123456789",
                "TL_MCP_BACKEND": "cloud",
                "TWELVELABS_BASE_URL": f"{base}/v1.3",
            }
        )
        yield settings, fake


async def test_metadata_tools_send_what_the_contract_describes(cloud: tuple[Settings, FakeCloud]) -> None:
    settings, fake = cloud
    meta = {"team": "red", "n": 3, "tags": ["a", "b"], "id": str(2**60)}
    async with Client(build_server(settings)) as c:
        await call_ok(c, "list_assets", {"asset_types": ["video", "document"], "filename": "clip"})
        await call_ok(c, "update_metadata", {"asset_id": "a1", "user_metadata": meta})
        await call_ok(c, "update_metadata", {"asset_id": "a1", "user_metadata": {"x": None}, "replace": True})
        await call_ok(c, "update_metadata", {"index_id": "i1", "video_id": "v1", "user_metadata": meta})
        await call_ok(
            c, "update_metadata", {"index_id": "i1", "video_id": "v1", "user_metadata": {}, "replace": True}
        )
        await call_ok(
            c,
            "list_videos",
            {
                "index_id": "i1",
                "status": ["ready", "validating"],
                "filter": {
                    "duration": {"gte": 10},
                    "width": 1280,
                    "created_at": "2026-07-30T00:00:00Z",
                    "team": "red",
                },
            },
        )
        first = await call_ok(
            c,
            "search_videos",
            {
                "query": "goal",
                "index_id": "i1",
                "modalities": ["visual", "transcription"],
                "filter": {"team": "red", "duration": {"lte": 60}},
                "transcription_options": ["semantic"],
                "include_user_metadata": True,
            },
        )
        # The token the first page handed out (tl-mcp refuses one from another search).
        token = first.structured_content["next_page_token"]  # type: ignore[index]
        await call_ok(c, "search_videos", {"page_token": token, "include_user_metadata": True})
        await call_ok(
            c, "add_to_knowledge_store", {"knowledge_store_id": "ks_1", "asset_id": "a1", "metadata": meta}
        )
        await call_ok(c, "upload_asset", {"url": "https://example.com/clip.mp4", "user_metadata": meta})
    assert fake.violations == []

    (listing,) = fake.calls("GET", "/assets")
    assert (
        listing.params.get_list("asset_types") == ["video", "document"]
        and listing.params["filename"] == "clip"
    )
    patch, put = (
        fake.calls("PATCH", "/assets/{asset_id}/user-metadata"),
        fake.calls("PUT", "/assets/{asset_id}/user-metadata"),
    )
    assert [p.json() for p in patch] == [{"user_metadata": meta}]
    assert [p.json() for p in put] == [{"user_metadata": {"x": None}}]
    video_edits = fake.calls("PATCH", "/indexes/{index-id}/indexed-assets/{indexed-asset-id}")
    assert video_edits[0].json() == {"user_metadata": meta}
    # replace on a video reads it first (the sample has no metadata, so there is nothing to send as null).
    assert fake.calls("GET", "/indexes/{index-id}/indexed-assets/{indexed-asset-id}")
    assert video_edits[1].json() == {"user_metadata": {}}

    (videos,) = fake.calls("GET", "/indexes/{index-id}/indexed-assets")
    assert videos.params.get_list("status") == ["ready", "validating"]
    assert (videos.params["duration[gte]"], videos.params["width[gte]"], videos.params["width[lte]"]) == (
        "10",
        "1280",
        "1280",
    )
    assert videos.params["created_at"] == "2026-07-30T00:00:00Z"
    assert videos.params["user_metadata[team]"] == "red"

    (search,) = fake.calls("POST", "/search")
    form = search.form_dict()
    assert json.loads(str(form["filter"][0])) == {"team": "red", "duration": {"lte": 60}}
    assert form["transcription_options"] == ["semantic"] and form["include_user_metadata"] == ["true"]
    (page,) = fake.calls("GET", "/search/{page-token}")
    assert page.params["include_user_metadata"] == "true"

    (item,) = fake.calls("POST", "/knowledge-stores/{knowledge_store_id}/items")
    assert item.json()["metadata"] == meta
    (asset,) = fake.calls("POST", "/assets")
    assert json.loads(str(asset.form_dict()["user_metadata"][0])) == meta
