"""Indexes: create, list, get, rename, delete."""

from __future__ import annotations

import sqlite3
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, invalid, missing
from tl_mcp.sandbox.store import indexed_assets, indexes, tasks
from tl_mcp.sandbox.store.db import loads
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.store.indexes import get_index_row
from tl_mcp.sandbox.web import (
    body_str,
    engine_of,
    json_body,
    no_content,
    ok,
    page_params,
    paged,
    sort_params,
)

MODEL_OPTIONS = {"marengo3.0": {"visual", "audio", "transcription"}, "marengo2.7": {"visual", "audio"}}
GENERATIVE = {"pegasus1.2", "pegasus1.5", "pegasus1.6"}


def index_json(engine: Engine, row: sqlite3.Row) -> dict[str, Any]:
    count, duration = indexed_assets.ready_totals(engine.db, row["id"])
    return {
        "_id": row["id"],
        "index_name": row["name"],
        "models": loads(row["models"]),
        "addons": loads(row["addons"]),
        "video_count": count,
        "total_duration": duration,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


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
        indexed_assets.delete_in_index(conn, index_id)
        tasks.delete_in_index(conn, index_id)
        indexes.delete(conn, index_id)
    return no_content()


routes: list[BaseRoute] = [
    Route("/indexes", create_index, methods=["POST"]),
    Route("/indexes", list_indexes, methods=["GET"]),
    Route("/indexes/{index_id}", get_index, methods=["GET"]),
    Route("/indexes/{index_id}", rename_index, methods=["PUT"]),
    Route("/indexes/{index_id}", delete_index, methods=["DELETE"]),
]
