"""Cloud-shaped answers through a real MCP client against a loopback fake TwelveLabs: citations written
into the text (no `annotations`, as servers before SDK 1.3.4 answer) still name their item, asset and
video; rank-only search (Marengo 3.0) keeps min_score from dropping every class; thumbnails stay cloud
URLs, and the thumbnail resource says why it does not serve the cloud."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client, MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.server.conftest import call_ok, loopback_socket, serve_app, text_of
from tl_mcp.api.models import ResponseObject
from tl_mcp.api.models.responses import inline_citations
from tl_mcp.config import Settings
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

KS, ITEM_UUID, ASSET, VIDEO, INDEX = (
    "ks_1",
    "069e9870-1111-7000-8000-000000000001",
    "asset_1",
    "vid_1",
    "idx_1",
)
ITEM = f"ksi_{ITEM_UUID}"
# What a pre-1.3.4 server sends: markers in the text, parts without `annotations`.
ANSWER = (
    f'Boil the water first [00:06-00:12]. Then <vref id="{ITEM_UUID}" start="00:07" end="9.5"/> '
    "stir the sauce [1]."
)
PAGE_INFO = {"page": 1, "limit_per_page": 10, "total_page": 1, "total_results": 1}


def _sse(kind: str, seq: int, **fields: object) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': seq, **fields})}\n\n"


def _response(status: str, text: str) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "type": "response",
        "status": status,
        "session_id": "sess_1",
        "knowledge_store_id": KS,
        "output": [
            {
                "type": "message",
                "id": "msg_sess_1_0",
                "status": status,
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}],
            }
        ],
        "created_at": "2026-07-11T03:13:57Z",
    }


async def responses(request: Request) -> Response:
    body = await request.json()
    assert body["stream"] is True and body["knowledge_store_id"] == KS

    async def events() -> AsyncIterator[str]:
        yield _sse("response.created", 0, response=_response("in_progress", ""))
        yield _sse("response.output_text.delta", 1, output_index=0, content_index=0, delta=ANSWER)
        yield _sse("response.completed", 2, response=_response("completed", ANSWER))
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def items(request: Request) -> Response:
    return JSONResponse(
        {"data": [{"_id": ITEM, "asset_id": ASSET, "status": "ready"}], "page_info": PAGE_INFO}
    )


async def item(request: Request) -> Response:
    assert request.path_params["item_id"] == ITEM
    return JSONResponse({"_id": ITEM, "asset_id": ASSET, "asset_type": "video", "status": "ready"})


async def indexings(request: Request) -> Response:
    assert request.path_params["asset_id"] == ASSET
    return JSONResponse(
        {"data": [{"_id": VIDEO, "index": {"_id": INDEX, "name": "n"}}], "page_info": PAGE_INFO}
    )


async def search(request: Request) -> Response:
    # Marengo 3.0: rank, no score, no confidence.
    clips = [
        {
            "start": 6.0,
            "end": 12.0,
            "video_id": VIDEO,
            "rank": 1,
            "thumbnail_url": "https://cdn.example/t1.jpg",
        },
        {"start": 12.0, "end": 15.0, "video_id": VIDEO, "rank": 2},
    ]
    return JSONResponse({"data": clips, "page_info": {"limit_per_page": 50, "total_results": 2}})


async def video(request: Request) -> Response:
    return JSONResponse({"_id": VIDEO, "asset_id": ASSET, "system_metadata": {"duration": 24.0}})


FAKE = Starlette(
    routes=[
        Route("/v1.3/responses", responses, methods=["POST"]),
        Route("/v1.3/knowledge-stores/{ks}/items", items, methods=["GET"]),
        Route("/v1.3/knowledge-stores/{ks}/items/{item_id}", item, methods=["GET"]),
        Route("/v1.3/assets/{asset_id}/indexed-assets", indexings, methods=["GET"]),
        Route("/v1.3/search", search, methods=["POST"]),
        Route("/v1.3/indexes/{index_id}/videos/{video_id}", video, methods=["GET"]),
    ]
)


@pytest.fixture
async def cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> AsyncIterator[Settings]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # the cloud backend's state folder
    async with serve_app(FAKE, loopback_socket()) as base:
        yield Settings.from_sources(
            env={
                "TWELVELABS_API_KEY": "tlk_fake_cloud_key_0123456789",
                "TL_MCP_BACKEND": "cloud",
                "TWELVELABS_BASE_URL": f"{base}/v1.3",
            }
        )


def test_inline_markers_become_citations_only_where_annotations_are_absent() -> None:
    found = inline_citations(ANSWER)
    assert [ANSWER[a.start_index : a.end_index + 1] for a in found] == [
        "[00:06-00:12]",
        f'<vref id="{ITEM_UUID}" start="00:07" end="9.5"/>',
    ]
    assert [(a.item_id, a.start_sec, a.end_sec) for a in found] == [(None, 6.0, 12.0), (ITEM, 7.0, 9.5)]
    hours = inline_citations("at [1:02:03-1:02:09.5] and <vref id='ksi_x'></vref> and [12:00-11:00]")
    assert [(a.item_id, a.start_sec, a.end_sec) for a in hours] == [
        (None, 3723.0, 3729.5),
        ("ksi_x", None, None),
    ]
    annotated = _response("completed", "Cited [1] at [00:00-00:09].")
    part = annotated["output"][0]["content"][0]
    part["annotations"] = [
        {
            "type": "video_citation",
            "start_index": 6,
            "end_index": 8,
            "item_id": "ksi_a",
            "start_sec": 1.0,
            "end_sec": 2.0,
            "title": None,
            "thumbnail_url": None,
            "hls_url": None,
        }
    ]
    # A part with annotations is taken as it is: its text is not searched for more.
    (only,) = ResponseObject.model_validate(annotated).annotations
    assert (only.marker, only.annotation.item_id) == ("[1]", "ksi_a")


async def test_cloud_citations_without_annotations_name_item_asset_and_video(cloud: Settings) -> None:
    async with Client(build_server(cloud)) as c:
        result = await call_ok(
            c, "create_response", {"knowledge_store_id": KS, "input": "How do I cook pasta?"}
        )
        data = result.structured_content
        assert data and data["backend"] == "cloud"
        ranged, tagged = data["citations"]
        assert ranged["marker"] == "[00:06-00:12]" and (ranged["start_sec"], ranged["end_sec"]) == (6.0, 12.0)
        for cite in (ranged, tagged):
            # The store holds one item, so the bare time range is about it.
            assert (cite["item_id"], cite["asset_id"], cite["video_id"], cite["index_id"]) == (
                ITEM,
                ASSET,
                VIDEO,
                INDEX,
            )
            assert "thumbnail_uri" not in cite
        assert (tagged["start_sec"], tagged["end_sec"]) == (7.0, 9.5)
        assert f'get_video(index_id="{INDEX}", video_id="{VIDEO}")' in text_of(result)
        assert f'analyze_video(asset_id="{ASSET}", start_time=6, end_time=12' in text_of(result)


async def test_rank_only_search_keeps_classes_and_says_min_score_cannot_apply(cloud: Settings) -> None:
    classes = [{"name": "Cooking", "prompts": ["cooking pasta"]}]
    async with Client(build_server(cloud)) as c:
        result = await call_ok(
            c, "classify_videos", {"index_id": INDEX, "classes": classes, "min_score": 0.5}
        )
        data = result.structured_content
        assert data
        (match,) = data["videos"][0]["classes"]
        assert (match["name"], match["score"], match["duration_ratio"]) == ("Cooking", None, 0.375)
        assert "min_score cannot apply" in data["counted"] and "min_score cannot apply" in text_of(result)
        found = (await call_ok(c, "search_videos", {"query": "pasta", "index_id": INDEX})).structured_content
        assert found and found["moments"][0]["thumbnail_url"] == "https://cdn.example/t1.jpg"
        assert "thumbnail_uri" not in found["moments"][0]
        with pytest.raises(MCPError, match="sandbox backend only"):
            await c.read_resource(f"twelvelabs://thumbnails/{VIDEO}/6")
