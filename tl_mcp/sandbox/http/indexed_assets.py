"""Indexed assets (an asset indexed into an index) and the legacy videos view of the same rows."""

from __future__ import annotations

import sqlite3
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import found, invalid, missing
from tl_mcp.sandbox.http.indexed_filters import parse_filters
from tl_mcp.sandbox.media import Probe
from tl_mcp.sandbox.metadata import apply_metadata_edit, check_metadata
from tl_mcp.sandbox.store import assets
from tl_mcp.sandbox.store.assets import get_asset_row
from tl_mcp.sandbox.store.db import dumps, loads, now_iso
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
from tl_mcp.sandbox.work.index import check_indexable, start_indexing

INDEXED_STATUSES = ("ready", "pending", "queued", "indexing", "validating", "failed")


def indexed_asset_json(
    request: Request, row: sqlite3.Row, *, detailed: bool = False, video: bool = False
) -> dict[str, Any]:
    engine = engine_of(request)
    asset = assets.get(engine.db, row["asset_id"])
    body: dict[str, Any] = {
        "_id": row["id"],
        "asset_id": row["asset_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "system_metadata": system_metadata(ProbedFile.of_asset(asset)),
    }
    if row["indexed_at"]:
        body["indexed_at"] = row["indexed_at"]
    if not video:
        body["status"] = row["status"]
    meta = loads(row["user_metadata"])
    if detailed:
        if meta:
            body["user_metadata"] = meta
        if row["status"] == "ready":
            thumbs = engine.db.all(
                "SELECT thumbnail FROM segments WHERE asset_id=? AND thumbnail IS NOT NULL ORDER BY idx",
                (row["asset_id"],),
            )
            urls = [u for t in thumbs if (u := thumbnail_url(request, row["asset_id"], t["thumbnail"]))]
            if row["enable_video_stream"] is None or row["enable_video_stream"]:
                body["hls"] = {
                    "video_url": signed_url(request, f"/media/{row['asset_id']}/file"),
                    "thumbnail_urls": urls,
                    "status": "COMPLETE",
                    "updated_at": row["indexed_at"],
                }
        if query_bool(request, "transcription") and row["status"] == "ready":
            cues = engine.db.all(
                "SELECT start, end, text FROM texts WHERE asset_id=? AND source IN ('subtitle','speech') "
                "ORDER BY start",
                (row["asset_id"],),
            )
            body["transcription"] = [{"start": c["start"], "end": c["end"], "value": c["text"]} for c in cues]
        options = query_list(request, "embedding_option")
        if options and row["status"] == "ready":
            body["embedding"] = _embedding(engine, row["asset_id"], options)
    if row["status"] == "failed" and not video:
        body["error"] = {"message": row["error"] or "indexing failed"}
    return body


def _embedding(engine: Engine, asset_id: str, options: list[str]) -> dict[str, Any]:
    import numpy as np

    segs = engine.db.all("SELECT * FROM segments WHERE asset_id=? ORDER BY idx", (asset_id,))
    out: list[dict[str, Any]] = []
    for s in segs:
        for opt in options:
            blob = s["image_vec"] if opt in ("visual", "visual-text") else s["text_vec"]
            if blob is None:
                continue
            out.append(
                {
                    "float": [round(float(x), 6) for x in np.frombuffer(blob, dtype=np.float32)],
                    "start_offset_sec": s["start"],
                    "end_offset_sec": s["end"],
                    "embedding_option": opt,
                    "embedding_scope": "clip",
                }
            )
    return {"model_name": "marengo3.0", "video_embedding": {"segments": out}}


def _get_indexed(engine: Engine, index_id: str, ia_id: str, collection: str) -> sqlite3.Row:
    get_index_row(engine.db, index_id)
    row = engine.db.one("SELECT * FROM indexed_assets WHERE id=? AND index_id=?", (ia_id, index_id))
    return found(row, ia_id, collection)


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
    check_indexable(engine, Probe.from_dict(loads(asset["probe"])), what=f"Asset `{asset_id}`")
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
    clauses, params = ["ia.index_id=?"], [index_id]
    statuses = [] if video else query_list(request, "status")
    for s in statuses:
        if s not in INDEXED_STATUSES:
            raise invalid(f"The `status` parameter must be among {', '.join(INDEXED_STATUSES)} (got {s!r}).")
    if statuses:
        clauses.append(f"ia.status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    if video:
        clauses.append("ia.status='ready'")
    if request.query_params.get("filename"):
        clauses.append("a.filename = ?")
        params.append(request.query_params["filename"])
    filters = parse_filters(request.query_params)
    rows = engine.db.all(
        "SELECT ia.*, a.probe AS asset_probe FROM indexed_assets ia LEFT JOIN assets a ON a.id = ia.asset_id "
        f"WHERE {' AND '.join(clauses)} "
        f"ORDER BY ia.{sort_by} {sort_option}, ia.rowid {sort_option}",
        params,
    )
    rows = [
        r
        for r in rows
        if filters.matches(
            loads(r["asset_probe"]) or {}, r["created_at"], r["updated_at"], loads(r["user_metadata"]) or {}
        )
    ]
    body = paged(rows, page, limit)
    body["data"] = [indexed_asset_json(request, r, video=video) for r in body["data"]]
    return ok(body)


async def list_indexed_assets(request: Request) -> Response:
    return _list_indexed(request, video=False)


async def list_videos(request: Request) -> Response:
    return _list_indexed(request, video=True)


async def get_indexed_asset(request: Request) -> Response:
    engine = engine_of(request)
    row = _get_indexed(
        engine, request.path_params["index_id"], request.path_params["item_id"], "indexed assets"
    )
    return ok(indexed_asset_json(request, row, detailed=True))


async def get_video(request: Request) -> Response:
    engine = engine_of(request)
    row = _get_indexed(engine, request.path_params["index_id"], request.path_params["item_id"], "videos")
    return ok(indexed_asset_json(request, row, detailed=True, video=True))


async def patch_indexed_asset(request: Request) -> Response:
    engine = engine_of(request)
    row = _get_indexed(
        engine, request.path_params["index_id"], request.path_params["item_id"], "indexed assets"
    )
    body = await json_body(request)
    if "user_metadata" not in body:
        raise missing("user_metadata")
    current: dict[str, Any] = loads(row["user_metadata"]) or {}
    current = apply_metadata_edit(current, body["user_metadata"], replace=False)
    engine.db.run(
        "UPDATE indexed_assets SET user_metadata=?, updated_at=? WHERE id=?",
        (dumps(current) if current else None, now_iso(), row["id"]),
    )
    return no_content()


async def delete_indexed_asset(request: Request) -> Response:
    engine = engine_of(request)
    row = _get_indexed(
        engine, request.path_params["index_id"], request.path_params["item_id"], "indexed assets"
    )
    with engine.db.tx() as conn:
        conn.execute("DELETE FROM indexed_assets WHERE id=?", (row["id"],))
        conn.execute("DELETE FROM tasks WHERE video_id=?", (row["id"],))
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
