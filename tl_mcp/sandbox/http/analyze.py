"""POST /analyze (JSON or NDJSON stream) and /analyze/tasks (async, nested error bodies)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, found, invalid, missing
from tl_mcp.sandbox.store.db import dumps, loads, now_iso
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.web import (
    checked_url,
    engine_of,
    json_body,
    no_content,
    ok,
    page_params,
    paged,
    query_list,
)
from tl_mcp.sandbox.work.analyze import parse_params, run_analysis

WAIT_S = 300.0


async def _check_video_url(request: Request, params: dict[str, Any], *, nested: bool) -> None:
    video = params["video"]
    if isinstance(video, dict) and video.get("url"):
        await checked_url(request, str(video["url"]), name="video.url", nested=nested)


async def analyze(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request)
    params = parse_params(body, nested=False)
    await _check_video_url(request, params, nested=False)
    stream = body.get("stream", True)
    if not isinstance(stream, bool):
        raise invalid("The `stream` parameter must be a boolean.")
    result = await anyio.to_thread.run_sync(lambda: run_analysis(engine, params, nested=False, wait=WAIT_S))
    if not stream:
        return ok(result)
    return StreamingResponse(_ndjson(result, engine.config.stream_delay_s), media_type="application/x-ndjson")


async def _ndjson(result: dict[str, Any], delay_s: float) -> AsyncIterator[bytes]:
    def line(obj: dict[str, Any]) -> bytes:
        return (json.dumps(obj) + "\n").encode()

    yield line({"event_type": "stream_start", "metadata": {"generation_id": result["id"]}})
    text: str = result["data"]
    # Fragments of a few words, split anywhere a client would see them from a real model.
    pieces = text.split(" ")
    for i in range(0, len(pieces), 4):
        chunk = " ".join(pieces[i : i + 4]) + (" " if i + 4 < len(pieces) else "")
        yield line({"event_type": "text_generation", "text": chunk})
        # Paced like a model would produce it (TL_MCP_SANDBOX_STREAM_DELAY_S), so progress arrives live.
        await (anyio.sleep(delay_s) if delay_s else anyio.lowlevel.checkpoint())
    end: dict[str, Any] = {
        "event_type": "stream_end",
        "finish_reason": result["finish_reason"],
        "metadata": {
            "generation_id": result["id"],
            "usage": result["usage"],
            "generated_by": result["generated_by"],
        },
    }
    if "error" in result:
        end["error"] = result["error"]
    if "unfilled" in result:
        end["metadata"]["unfilled"] = result["unfilled"]  # sandbox-only, as in the non-streamed result
    yield line(end)


# ----- async tasks ------------------------------------------------------------------------------------------
def _task_json(row: sqlite3.Row) -> dict[str, Any]:
    request = loads(row["request"])
    body: dict[str, Any] = {
        "task_id": row["id"],
        "custom_id": request.get("custom_id"),
        "status": row["status"],
        "created_at": row["created_at"],
        "request_params": {
            k: v for k, v in request.items() if k not in ("custom_id", "video") and v is not None
        },
    }
    video = request.get("video")
    if video:
        body["video_source"] = {k: v for k, v in video.items() if k != "base64_string"} | {
            "type": video.get("type") or next(k for k in ("url", "asset_id", "base64_string") if video.get(k))
        }
    if row["completed_at"]:
        body["completed_at"] = row["completed_at"]
    if row["result"]:
        r = loads(row["result"])
        body["result"] = {
            "generation_id": r["id"],
            "data": r["data"],
            "finish_reason": r["finish_reason"],
            "usage": r["usage"],
        }
        if "unfilled" in r:  # sandbox-only: the schema fields no evidence fitted
            body["result"]["unfilled"] = r["unfilled"]
        if "generated_by" in r:  # results stored before answerers existed have none
            body["result"]["generated_by"] = r["generated_by"]
    if row["error"]:
        body["error"] = loads(row["error"])
    return body


def _get_task(engine: Engine, task_id: str) -> sqlite3.Row:
    row = engine.db.one("SELECT * FROM analyze_tasks WHERE id=?", (task_id,))
    return found(row, task_id, "analyze tasks", nested=True)


async def create_task(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request, nested=True)
    params = parse_params(body, nested=True)
    if body.get("video") is None:
        raise missing("video", nested=True)
    await _check_video_url(request, params, nested=True)
    mode = body.get("analysis_mode", "general")
    if mode not in ("general", "time_based_metadata"):
        raise invalid("`analysis_mode` must be general or time_based_metadata.", nested=True)
    task_id, now = new_id(), now_iso()
    keys = ("model_name", "prompt", "temperature", "max_tokens", "response_format", "custom_id", "video")
    stored = {k: body[k] for k in keys if body.get(k) is not None}
    stored["model_name"] = params["model_name"]
    stored["analysis_mode"] = mode
    with engine.db.tx() as conn:
        conn.execute(
            "INSERT INTO analyze_tasks(id, status, created_at, updated_at, request) VALUES(?,?,?,?,?)",
            (task_id, "queued", now, now, dumps(stored)),
        )
        engine.jobs.add(conn, "analyze", task_id)
    engine.jobs.wake()
    return ok({"task_id": task_id, "status": "queued"}, 202)


async def list_tasks(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    rows = engine.db.all("SELECT * FROM analyze_tasks ORDER BY created_at DESC, rowid DESC")
    items = [_task_json(r) for r in rows]
    statuses = query_list(request, "status")
    if statuses:
        items = [t for t in items if t["status"] in statuses]
    if request.query_params.get("asset_id"):
        items = [
            t for t in items if t.get("video_source", {}).get("asset_id") == request.query_params["asset_id"]
        ]
    return ok(paged(items, page, limit))


async def get_task(request: Request) -> Response:
    return ok(_task_json(_get_task(engine_of(request), request.path_params["task_id"])))


async def delete_task(request: Request) -> Response:
    engine = engine_of(request)
    row = _get_task(engine, request.path_params["task_id"])
    if row["status"] in ("queued", "pending", "processing"):
        raise ApiError(
            409, "task_not_terminal", "The task is still running; cancel it first or wait.", nested=True
        )
    engine.db.run("DELETE FROM analyze_tasks WHERE id=?", (row["id"],))
    return no_content()


async def cancel_task(request: Request) -> Response:
    engine = engine_of(request)
    row = _get_task(engine, request.path_params["task_id"])
    if row["status"] in ("ready", "failed"):
        raise ApiError(409, "task_not_cancelable", f"The task is already {row['status']}.", nested=True)
    now = now_iso()
    engine.db.run(
        "UPDATE analyze_tasks SET status='canceled', error=?, completed_at=COALESCE(completed_at, ?), "
        "updated_at=? "
        "WHERE id=?",
        (dumps({"message": "canceled by the user", "code": "user_canceled"}), now, now, row["id"]),
    )
    return ok({"task_id": row["id"], "status": "canceled"})


routes: list[BaseRoute] = [
    Route("/analyze", analyze, methods=["POST"]),
    Route("/analyze/tasks", create_task, methods=["POST"]),
    Route("/analyze/tasks", list_tasks, methods=["GET"]),
    Route("/analyze/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/analyze/tasks/{task_id}", delete_task, methods=["DELETE"]),
    Route("/analyze/tasks/{task_id}/cancel", cancel_task, methods=["POST"]),
]
