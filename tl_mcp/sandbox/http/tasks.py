"""Legacy tasks: upload a video and index it in one call (``POST /tasks``), then follow the task."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, invalid, missing
from tl_mcp.sandbox.http.files import receive_media, safe_filename
from tl_mcp.sandbox.metadata import metadata_from_json
from tl_mcp.sandbox.store import assets, indexed_assets, tasks
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.store.indexes import get_index_row
from tl_mcp.sandbox.store.tasks import Task
from tl_mcp.sandbox.system_metadata import ProbedFile, system_metadata
from tl_mcp.sandbox.web import (
    checked_url,
    engine_of,
    form_body,
    form_bool,
    form_file,
    form_str,
    no_content,
    ok,
    page_params,
    paged,
    query_list,
    sort_params,
)
from tl_mcp.sandbox.work.asset import insert_asset
from tl_mcp.sandbox.work.index import check_indexable, start_indexing


def _task_status(engine: Engine, task: Task) -> tuple[str, sqlite3.Row | None]:
    ia = indexed_assets.get(engine.db, task.video_id)
    asset = assets.get(engine.db, task.asset_id)
    if ia is None:
        return "failed", asset
    if ia.status in ("ready", "failed", "indexing"):
        return ia.status, asset
    if asset is not None and asset["status"] == "processing":
        return ("uploading" if asset["method"] == "url" and not asset["path"] else "validating"), asset
    return ia.status, asset


def task_json(request: Request, task: Task) -> dict[str, Any]:
    engine = engine_of(request)
    status, asset = _task_status(engine, task)
    body: dict[str, Any] = {
        "_id": task.id,
        "index_id": task.index_id,
        "video_id": task.video_id,
        "status": status,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "system_metadata": system_metadata(ProbedFile.of_asset(asset)),
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
            path = engine.asset_dir(asset_id) / f"source{Path(name).suffix[:10]}"
            info = await receive_media(
                engine, upload, path, check=lambda probed: check_indexable(engine, probed, what="The video")
            )
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
    tasks.insert(engine.db, task_id, index_id=index_id, video_id=video_id, asset_id=asset_id)
    return ok({"_id": task_id, "video_id": video_id}, 200)


async def list_tasks(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    sort_by, sort_option = sort_params(request)
    found_tasks = tasks.search(
        engine.db,
        index_id=request.query_params.get("index_id"),
        sort_by=sort_by,
        sort_option=sort_option,
    )
    items = [task_json(request, t) for t in found_tasks]
    statuses = query_list(request, "status")
    if statuses:
        items = [t for t in items if t["status"] in statuses]
    return ok(paged(items, page, limit))


async def get_task(request: Request) -> Response:
    engine = engine_of(request)
    return ok(task_json(request, tasks.get_task(engine.db, request.path_params["task_id"])))


async def delete_task(request: Request) -> Response:
    engine = engine_of(request)
    task_id = request.path_params["task_id"]
    task = tasks.get_task(engine.db, task_id)
    status, _ = _task_status(engine, task)
    video = indexed_assets.get(engine.db, task.video_id)
    if status not in ("ready", "failed") or (status == "ready" and video is not None):
        raise ApiError(
            400,
            "task_cannot_be_deleted",
            f"Task `{task_id}` is {status}; only failed tasks, or ready tasks whose video was deleted, can "
            "be deleted.",
        )
    tasks.delete(engine.db, task_id)
    return no_content()


routes: list[BaseRoute] = [
    Route("/tasks", create_task, methods=["POST"]),
    Route("/tasks", list_tasks, methods=["GET"]),
    Route("/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/tasks/{task_id}", delete_task, methods=["DELETE"]),
]
