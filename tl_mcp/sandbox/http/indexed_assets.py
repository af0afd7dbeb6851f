"""Indexed assets (an asset indexed into an index) and the legacy videos view of the same rows."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import found, invalid, missing
from tl_mcp.sandbox.http.indexed_filters import parse_filters
from tl_mcp.sandbox.metadata import apply_metadata_edit, check_metadata
from tl_mcp.sandbox.store import assets, indexed_assets, segments, tasks, texts
from tl_mcp.sandbox.store.assets import get_asset_row
from tl_mcp.sandbox.store.indexed_assets import IndexedAsset
from tl_mcp.sandbox.store.indexes import get_index_row
from tl_mcp.sandbox.system_metadata import ProbedFile, system_metadata
from tl_mcp.sandbox.web import (
    body_str,
    engine_of,
    json_body,
    no_content,
    ok,
    page_params,
    paged,
    query_bool,
    query_list,
    signed_url,
    sort_params,
    thumbnail_url,
)
from tl_mcp.sandbox.work.embed import indexed_embeddings
from tl_mcp.sandbox.work.index import check_indexable, start_indexing

#: What ``?embedding_option=`` takes on an indexed asset (``visual-text`` is the older name of ``visual``).
EMBEDDING_OPTIONS = ("visual", "audio", "transcription", "visual-text")
INDEXED_STATUSES = ("ready", "pending", "queued", "indexing", "validating", "failed")


def indexed_asset_json(
    request: Request,
    item: IndexedAsset,
    *,
    detailed: bool = False,
    video: bool = False,
    embedding: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    engine = engine_of(request)
    asset_id = item.asset_id
    body: dict[str, Any] = {
        "_id": item.id,
        "asset_id": asset_id,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "system_metadata": system_metadata(ProbedFile.of_asset(assets.get(engine.db, asset_id))),
    }
    if item.indexed_at:
        body["indexed_at"] = item.indexed_at
    if not video:
        body["status"] = item.status
    if detailed:
        if item.user_metadata:
            body["user_metadata"] = item.user_metadata
        if item.status == "ready":
            thumbs = segments.of_asset(engine.db, asset_id, with_thumbnail=True)
            urls = [u for t in thumbs if t.thumbnail and (u := thumbnail_url(request, asset_id, t.thumbnail))]
            if item.enable_video_stream is None or item.enable_video_stream:
                body["hls"] = {
                    "video_url": signed_url(request, f"/media/{asset_id}/file"),
                    "thumbnail_urls": urls,
                    "status": "COMPLETE",
                    "updated_at": item.indexed_at,
                }
        if query_bool(request, "transcription") and item.status == "ready":
            body["transcription"] = [
                {"start": c.start, "end": c.end, "value": c.text}
                for c in texts.transcript(engine.db, asset_id)
            ]
        if embedding is not None:
            body["embedding"] = {"model_name": "marengo3.0", "video_embedding": {"segments": embedding}}
    if item.status == "failed" and not video:
        body["error"] = {"message": item.error or "indexing failed"}
    return body


def _get_indexed(engine: Engine, index_id: str, ia_id: str, collection: str) -> IndexedAsset:
    get_index_row(engine.db, index_id)
    return found(indexed_assets.get(engine.db, ia_id, index_id=index_id), ia_id, collection)


async def create_indexed_asset(request: Request) -> Response:
    engine = engine_of(request)
    index_id = request.path_params["index_id"]
    get_index_row(engine.db, index_id)
    body = await json_body(request)
    asset_id = body_str(body, "asset_id", required=True, max_len=200)
    asset = get_asset_row(engine.db, asset_id)
    if asset["status"] != "ready":
        raise invalid(
            f"Asset `{asset_id}` is {asset['status']}; only ready assets can be indexed. Poll GET "
            f"/assets/{asset_id}."
        )
    check_indexable(engine, assets.probe_of(asset), what=f"Asset `{asset_id}`")
    meta = check_metadata(body["user_metadata"]) if body.get("user_metadata") is not None else None
    evs = body.get("enable_video_stream")
    if evs is not None and not isinstance(evs, bool):
        raise invalid("The `enable_video_stream` parameter must be a boolean.")
    ia_id = start_indexing(engine, index_id, asset_id, user_metadata=meta, enable_video_stream=evs)
    return ok({"_id": ia_id, "asset_id": asset_id}, 202)


def _list_indexed(request: Request, *, video: bool) -> Response:
    engine = engine_of(request)
    index_id = request.path_params["index_id"]
    get_index_row(engine.db, index_id)
    page, limit = page_params(request)
    sort_by, sort_option = sort_params(request)
    statuses = ["ready"] if video else query_list(request, "status")
    for s in statuses:
        if s not in INDEXED_STATUSES:
            raise invalid(f"The `status` parameter must be among {', '.join(INDEXED_STATUSES)} (got {s!r}).")
    filters = parse_filters(request.query_params)
    listed = indexed_assets.in_index(
        engine.db,
        index_id,
        statuses=statuses,
        filename=request.query_params.get("filename"),
        sort_by=sort_by,
        sort_option=sort_option,
    )
    items = [
        x.item
        for x in listed
        if filters.matches(x.probe, x.item.created_at, x.item.updated_at, x.item.user_metadata)
    ]
    body = paged(items, page, limit)
    body["data"] = [indexed_asset_json(request, i, video=video) for i in body["data"]]
    return ok(body)


async def list_indexed_assets(request: Request) -> Response:
    return _list_indexed(request, video=False)


async def list_videos(request: Request) -> Response:
    return _list_indexed(request, video=True)


async def _embedding(request: Request, item: IndexedAsset) -> list[dict[str, Any]] | None:
    """The stored embeddings ``?embedding_option=`` asks for, once the indexing is ready."""
    options = query_list(request, "embedding_option")
    bad = [o for o in options if o not in EMBEDDING_OPTIONS]
    if bad:
        raise invalid(f"The `embedding_option` parameter takes {', '.join(EMBEDDING_OPTIONS)} (got {bad}).")
    if not options or item.status != "ready":
        return None
    # Off the event loop: the audio option decodes the file.
    return await anyio.to_thread.run_sync(indexed_embeddings, engine_of(request), item.asset_id, options)


async def get_indexed_asset(request: Request) -> Response:
    engine = engine_of(request)
    row = _get_indexed(
        engine, request.path_params["index_id"], request.path_params["item_id"], "indexed assets"
    )
    embedding = await _embedding(request, row)
    return ok(indexed_asset_json(request, row, detailed=True, embedding=embedding))


async def get_video(request: Request) -> Response:
    engine = engine_of(request)
    row = _get_indexed(engine, request.path_params["index_id"], request.path_params["item_id"], "videos")
    embedding = await _embedding(request, row)
    return ok(indexed_asset_json(request, row, detailed=True, video=True, embedding=embedding))


async def patch_indexed_asset(request: Request) -> Response:
    engine = engine_of(request)
    row = _get_indexed(
        engine, request.path_params["index_id"], request.path_params["item_id"], "indexed assets"
    )
    body = await json_body(request)
    if "user_metadata" not in body:
        raise missing("user_metadata")
    current = apply_metadata_edit(dict(row.user_metadata), body["user_metadata"], replace=False)
    indexed_assets.set_user_metadata(engine.db, row.id, current)
    return no_content()


async def delete_indexed_asset(request: Request) -> Response:
    engine = engine_of(request)
    row = _get_indexed(
        engine, request.path_params["index_id"], request.path_params["item_id"], "indexed assets"
    )
    with engine.db.tx() as conn:
        indexed_assets.delete(conn, row.id)
        tasks.delete_of_video(conn, row.id)
    return no_content()


routes: list[BaseRoute] = [
    Route("/indexes/{index_id}/indexed-assets", create_indexed_asset, methods=["POST"]),
    Route("/indexes/{index_id}/indexed-assets", list_indexed_assets, methods=["GET"]),
    Route("/indexes/{index_id}/indexed-assets/{item_id}", get_indexed_asset, methods=["GET"]),
    Route("/indexes/{index_id}/indexed-assets/{item_id}", patch_indexed_asset, methods=["PATCH"]),
    Route("/indexes/{index_id}/indexed-assets/{item_id}", delete_indexed_asset, methods=["DELETE"]),
    Route("/indexes/{index_id}/videos", list_videos, methods=["GET"]),
    Route("/indexes/{index_id}/videos/{item_id}", get_video, methods=["GET"]),
    Route("/indexes/{index_id}/videos/{item_id}", patch_indexed_asset, methods=["PATCH", "PUT"]),
    Route("/indexes/{index_id}/videos/{item_id}", delete_indexed_asset, methods=["DELETE"]),
]
