"""Indexes, indexed assets, the legacy videos view and legacy tasks (upload + index in one call)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, found, invalid, missing
from tl_mcp.sandbox.http.files import probe_or_reject, safe_filename, save_upload
from tl_mcp.sandbox.http.indexed_filters import parse_filters
from tl_mcp.sandbox.media import Probe
from tl_mcp.sandbox.metadata import apply_metadata_edit, check_metadata, metadata_from_json
from tl_mcp.sandbox.store import assets, indexes
from tl_mcp.sandbox.store.assets import get_asset_row
from tl_mcp.sandbox.store.db import dumps, loads, now_iso
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.store.indexes import get_index_row
from tl_mcp.sandbox.web import (
    body_str,
    checked_url,
    engine_of,
    form_body,
    form_bool,
    form_file,
    form_str,
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
from tl_mcp.sandbox.work.asset import insert_asset
from tl_mcp.sandbox.work.index import check_indexable

MODEL_OPTIONS = {"marengo3.0": {"visual", "audio", "transcription"}, "marengo2.7": {"visual", "audio"}}
GENERATIVE = {"pegasus1.2", "pegasus1.5", "pegasus1.6"}
INDEXED_STATUSES = ("ready", "pending", "queued", "indexing", "validating", "failed")


def index_json(engine: Engine, row: sqlite3.Row) -> dict[str, Any]:
    stats = engine.db.one(
        "SELECT COUNT(*) AS n, COALESCE(SUM(json_extract(a.probe, '$.duration')), 0) AS d "
        "FROM indexed_assets ia JOIN assets a ON a.id = ia.asset_id WHERE ia.index_id=? AND "
        "ia.status='ready'",
        (row["id"],),
    )
    return {
        "_id": row["id"],
        "index_name": row["name"],
        "models": loads(row["models"]),
        "addons": loads(row["addons"]),
        "video_count": int(stats["n"]) if stats else 0,
        "total_duration": float(stats["d"]) if stats else 0.0,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


# ----- indexes ----------------------------------------------------------------------------------------------
async def create_index(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request)
    name = body_str(body, "index_name", required=True, max_len=200)
    models = body.get("models")
    if models is None:
        raise missing(
            "models", 'Example: [{"model_name": "marengo3.0", "model_options": ["visual", "audio"]}].'
        )
    if not isinstance(models, list) or not models:
        raise invalid("The `models` parameter must be a non-empty array of {model_name, model_options}.")
    for m in models:
        if not isinstance(m, dict) or not isinstance(m.get("model_name"), str):
            raise invalid("Each entry of `models` needs a string `model_name`.")
        options = m.get("model_options")
        if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
            raise invalid(
                f"`models[].model_options` for {m['model_name']} must be a non-empty array of strings."
            )
        allowed = MODEL_OPTIONS.get(m["model_name"])
        if allowed is None and m["model_name"] not in GENERATIVE:
            raise invalid(
                f"`{m['model_name']}` is not a known model; use marengo3.0 (search) and optionally "
                "pegasus1.2."
            )
        bad = [o for o in options if allowed is not None and o not in allowed]
        if bad:
            raise invalid(f"Unsupported model_options {bad} for {m['model_name']}; use visual and/or audio.")
    addons = body.get("addons") or []
    if not isinstance(addons, list) or any(a != "thumbnail" for a in addons):
        raise invalid('The `addons` parameter may only contain "thumbnail".')
    if indexes.name_taken(engine.db, name):
        raise ApiError(
            400, "index_name_already_exists", f"An index named {name!r} already exists; pick another name."
        )
    index_id = new_id()
    clean = [{"model_name": m["model_name"], "model_options": list(m["model_options"])} for m in models]
    try:
        indexes.insert(engine.db, index_id, name, clean, addons)
    except sqlite3.IntegrityError as exc:
        raise ApiError(400, "index_name_already_exists", f"An index named {name!r} already exists.") from exc
    return ok({"_id": index_id}, 201)


async def list_indexes(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    sort_by, sort_option = sort_params(request)
    family = request.query_params.get("model_family")
    if family and family not in ("marengo", "pegasus"):
        raise invalid("The `model_family` parameter must be marengo or pegasus.")
    rows = indexes.search(
        engine.db,
        name_like=request.query_params.get("index_name"),
        model_family=family,
        sort_by=sort_by,
        sort_option=sort_option,
    )
    body = paged(rows, page, limit)
    body["data"] = [index_json(engine, r) for r in body["data"]]
    return ok(body)


async def get_index(request: Request) -> Response:
    engine = engine_of(request)
    return ok(index_json(engine, get_index_row(engine.db, request.path_params["index_id"])))


async def rename_index(request: Request) -> Response:
    engine = engine_of(request)
    index_id = request.path_params["index_id"]
    get_index_row(engine.db, index_id)
    body = await json_body(request)
    name = body_str(body, "index_name", required=True, max_len=200)
    if indexes.name_taken(engine.db, name, other_than=index_id):
        raise ApiError(400, "index_name_already_exists", f"An index named {name!r} already exists.")
    indexes.rename(engine.db, index_id, name)
    return no_content()


async def delete_index(request: Request) -> Response:
    engine = engine_of(request)
    index_id = request.path_params["index_id"]
    get_index_row(engine.db, index_id)
    with engine.db.tx() as conn:
        conn.execute("DELETE FROM indexed_assets WHERE index_id=?", (index_id,))
        conn.execute("DELETE FROM tasks WHERE index_id=?", (index_id,))
        indexes.delete(conn, index_id)
    return no_content()


# ----- indexing ---------------------------------------------------------------------------------------------


def start_indexing(
    engine: Engine,
    index_id: str,
    asset_id: str,
    *,
    user_metadata: dict[str, Any] | None,
    enable_video_stream: bool | None,
    task_id: str | None = None,
) -> str:
    ia_id, now = new_id(), now_iso()
    with engine.db.tx() as conn:
        conn.execute(
            "INSERT INTO indexed_assets(id, index_id, asset_id, status, created_at, updated_at, "
            "user_metadata, "
            "task_id, enable_video_stream) VALUES(?,?,?,?,?,?,?,?,?)",
            (
                ia_id,
                index_id,
                asset_id,
                "pending",
                now,
                now,
                dumps(user_metadata) if user_metadata else None,
                task_id,
                None if enable_video_stream is None else int(enable_video_stream),
            ),
        )
        engine.jobs.add(conn, "index", ia_id)
    engine.jobs.wake()
    return ia_id


def _system_metadata(asset: sqlite3.Row | None) -> dict[str, Any]:
    if asset is None:
        return {}
    info = Probe.from_dict(loads(asset["probe"])) if asset["probe"] else None
    meta: dict[str, Any] = {"filename": asset["filename"]}
    if info is not None:
        meta.update(
            duration=info.duration, fps=info.fps, width=info.width, height=info.height, size=info.size
        )
    return {k: v for k, v in meta.items() if v is not None}


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
        "system_metadata": _system_metadata(asset),
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


# ----- legacy tasks -----------------------------------------------------------------------------------------
def _task_status(engine: Engine, task: sqlite3.Row) -> tuple[str, sqlite3.Row | None]:
    ia = engine.db.one("SELECT * FROM indexed_assets WHERE id=?", (task["video_id"],))
    asset = assets.get(engine.db, task["asset_id"])
    if ia is None:
        return "failed", asset
    if ia["status"] in ("ready", "failed", "indexing"):
        return ia["status"], asset
    if asset is not None and asset["status"] == "processing":
        return ("uploading" if asset["method"] == "url" and not asset["path"] else "validating"), asset
    return ia["status"], asset


def task_json(request: Request, task: sqlite3.Row) -> dict[str, Any]:
    engine = engine_of(request)
    status, asset = _task_status(engine, task)
    body: dict[str, Any] = {
        "_id": task["id"],
        "index_id": task["index_id"],
        "video_id": task["video_id"],
        "status": status,
        "created_at": task["created_at"],
        "updated_at": task["updated_at"],
        "system_metadata": _system_metadata(asset),
    }
    return body


async def create_task(request: Request) -> Response:
    engine = engine_of(request)
    cfg = engine.config
    form = await form_body(request, max_bytes=cfg.max_upload_bytes)
    try:
        index_id = form_str(form, "index_id", required=True)
        assert index_id is not None
        get_index_row(engine.db, index_id)
        meta = metadata_from_json(form_str(form, "user_metadata"))
        evs = form_bool(form, "enable_video_stream", True)
        url = form_str(form, "video_url")
        upload = form_file(form, "video_file")
        if url is None and upload is None:
            raise missing("video_file", "Send the video as `video_file` or its address as `video_url`.")
        asset_id = new_id()
        if upload is not None and url is None:
            name = safe_filename(upload.filename or "video")
            adir = engine.asset_dir(asset_id)
            path = adir / f"source{Path(name).suffix[:10]}"
            try:
                await save_upload(engine, upload, path, cfg.max_upload_bytes)
            except BaseException:
                shutil.rmtree(adir, ignore_errors=True)
                raise
            info = await probe_or_reject(engine, path, cleanup=adir)
            try:
                check_indexable(engine, info, what="The video")
            except ApiError:
                shutil.rmtree(adir, ignore_errors=True)
                raise
            insert_asset(engine, asset_id, method="direct", filename=name, path=path, info=info)
        else:
            assert url is not None
            if not url.startswith(("http://", "https://")):
                raise invalid("The `video_url` parameter must be an http(s) URL.")
            await checked_url(request, url, name="video_url")
            name = safe_filename(url.split("?")[0].rsplit("/", 1)[-1] or "video")
            insert_asset(engine, asset_id, method="url", filename=name, path=None, info=None, source_url=url)
    finally:
        await form.close()
    task_id = new_id()
    video_id = start_indexing(
        engine, index_id, asset_id, user_metadata=meta, enable_video_stream=evs, task_id=task_id
    )
    now = now_iso()
    engine.db.run(
        "INSERT INTO tasks(id, index_id, video_id, asset_id, created_at, updated_at) VALUES(?,?,?,?,?,?)",
        (task_id, index_id, video_id, asset_id, now, now),
    )
    return ok({"_id": task_id, "video_id": video_id}, 200)


async def list_tasks(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    sort_by, sort_option = sort_params(request)
    clauses, params = [], []
    if request.query_params.get("index_id"):
        clauses.append("index_id=?")
        params.append(request.query_params["index_id"])
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = engine.db.all(
        f"SELECT * FROM tasks {where} ORDER BY {sort_by} {sort_option}, rowid {sort_option}", params
    )
    items = [task_json(request, r) for r in rows]
    statuses = query_list(request, "status")
    if statuses:
        items = [t for t in items if t["status"] in statuses]
    return ok(paged(items, page, limit))


async def get_task(request: Request) -> Response:
    engine = engine_of(request)
    task_id = request.path_params["task_id"]
    row = engine.db.one("SELECT * FROM tasks WHERE id=?", (task_id,))
    row = found(row, task_id, "tasks")
    return ok(task_json(request, row))


async def delete_task(request: Request) -> Response:
    engine = engine_of(request)
    task_id = request.path_params["task_id"]
    row = engine.db.one("SELECT * FROM tasks WHERE id=?", (task_id,))
    row = found(row, task_id, "tasks")
    status, _ = _task_status(engine, row)
    ia = engine.db.one("SELECT 1 FROM indexed_assets WHERE id=?", (row["video_id"],))
    if status not in ("ready", "failed") or (status == "ready" and ia is not None):
        raise ApiError(
            400,
            "task_cannot_be_deleted",
            f"Task `{task_id}` is {status}; only failed tasks, or ready tasks whose video was deleted, can "
            "be "
            "deleted.",
        )
    engine.db.run("DELETE FROM tasks WHERE id=?", (task_id,))
    return no_content()


routes: list[BaseRoute] = [
    Route("/indexes", create_index, methods=["POST"]),
    Route("/indexes", list_indexes, methods=["GET"]),
    Route("/indexes/{index_id}", get_index, methods=["GET"]),
    Route("/indexes/{index_id}", rename_index, methods=["PUT"]),
    Route("/indexes/{index_id}", delete_index, methods=["DELETE"]),
    Route("/indexes/{index_id}/indexed-assets", create_indexed_asset, methods=["POST"]),
    Route("/indexes/{index_id}/indexed-assets", list_indexed_assets, methods=["GET"]),
    Route("/indexes/{index_id}/indexed-assets/{item_id}", get_indexed_asset, methods=["GET"]),
    Route("/indexes/{index_id}/indexed-assets/{item_id}", patch_indexed_asset, methods=["PATCH"]),
    Route("/indexes/{index_id}/indexed-assets/{item_id}", delete_indexed_asset, methods=["DELETE"]),
    Route("/indexes/{index_id}/videos", list_videos, methods=["GET"]),
    Route("/indexes/{index_id}/videos/{item_id}", get_video, methods=["GET"]),
    Route("/indexes/{index_id}/videos/{item_id}", patch_indexed_asset, methods=["PATCH", "PUT"]),
    Route("/indexes/{index_id}/videos/{item_id}", delete_indexed_asset, methods=["DELETE"]),
    Route("/tasks", create_task, methods=["POST"]),
    Route("/tasks", list_tasks, methods=["GET"]),
    Route("/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/tasks/{task_id}", delete_task, methods=["DELETE"]),
]
