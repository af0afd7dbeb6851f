"""POST /analyze (JSON or NDJSON stream) and /analyze/tasks (async, nested error bodies)."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.analysis import answer_json, answer_text, truncate
from tl_mcp.sandbox.db import dumps, loads, new_id, now_iso
from tl_mcp.sandbox.engine import FAILURE_HOOKS, JOB_HANDLERS, Engine
from tl_mcp.sandbox.errors import ApiError, found, invalid, missing, not_found
from tl_mcp.sandbox.media import Probe
from tl_mcp.sandbox.routes.assets import get_asset_row, insert_asset
from tl_mcp.sandbox.routes.common import (
    checked_url,
    engine_of,
    json_body,
    no_content,
    ok,
    page_params,
    paged,
    query_list,
)

MODELS = ("pegasus1.5", "pegasus1.6", "pegasus1.2")
WAIT_S = 300.0


def _validate(body: dict[str, Any], *, nested: bool) -> dict[str, Any]:
    """Check an analyze request; return the normalised parameters."""
    model = body.get("model_name", "pegasus1.5")
    if model not in MODELS:
        raise invalid(
            f"The `model_name` parameter must be one of {', '.join(MODELS)} (got {model!r}).", nested=nested
        )
    prompt = body.get("prompt")
    if prompt is None and isinstance(body.get("prompt_v2"), dict):
        prompt = body["prompt_v2"].get("input_text")
    if prompt is None or prompt == "":
        raise missing("prompt", nested=nested)
    if not isinstance(prompt, str):
        raise invalid("The `prompt` parameter must be a string.", nested=nested)
    video = body.get("video")
    if video is None and body.get("video_id") is None:
        raise missing("video", 'Example: {"video": {"type": "asset_id", "asset_id": "..."}}.', nested=nested)
    if video is not None:
        if not isinstance(video, dict):
            raise invalid(
                "The `video` parameter must be an object with one of url, asset_id, base64_string.",
                nested=nested,
            )
        given = [k for k in ("url", "asset_id", "base64_string") if video.get(k)]
        if len(given) != 1:
            raise invalid("`video` needs exactly one of url, asset_id or base64_string.", nested=nested)
    temperature = body.get("temperature", 0.2)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 1:
        raise invalid("The `temperature` parameter must be a number between 0 and 1.", nested=nested)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise invalid("The `max_tokens` parameter must be a positive integer.", nested=nested)
    window = _window(body, nested=nested)
    fmt = body.get("response_format")
    schema = None
    if fmt is not None:
        if (
            not isinstance(fmt, dict)
            or fmt.get("type") != "json_schema"
            or not isinstance(fmt.get("json_schema"), dict)
        ):
            raise invalid(
                '`response_format` must be {"type": "json_schema", "json_schema": {...}}.', nested=nested
            )
        schema = fmt["json_schema"]
        banned = {"minLength", "maxLength", "additionalProperties", "uniqueItems", "maxItems"} & set(
            _keys(schema)
        )
        if banned:
            raise ApiError(
                422,
                "parameter_invalid",
                f"`response_format.json_schema` uses unsupported keywords {sorted(banned)}.",
                nested=nested,
            )
    return {
        "model_name": model,
        "prompt": prompt,
        "video": video,
        "video_id": body.get("video_id"),
        "temperature": temperature,
        "max_tokens": max_tokens,
        "schema": schema,
        "window": window,
    }


#: Shortest analysis window (SDK 1.3.6; it was 4 s before).
MIN_WINDOW_S = 1.0


def _window(body: dict[str, Any], *, nested: bool) -> tuple[float, float | None]:
    """`start_time`/`end_time` as (start, end or None = the end of the video)."""
    bounds: dict[str, float | None] = {}
    for name in ("start_time", "end_time"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < float("inf")
        ):
            raise invalid(f"The `{name}` parameter must be a number of seconds, 0 or more.", nested=nested)
        bounds[name] = None if value is None else float(value)
    start, end = bounds["start_time"] or 0.0, bounds["end_time"]
    if end is not None and end - start < MIN_WINDOW_S:
        raise invalid(
            f"`end_time` ({end:g}) must be at least {MIN_WINDOW_S:g} s after `start_time` ({start:g}).",
            nested=nested,
        )
    return start, end


def _keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [*node.keys(), *(k for v in node.values() for k in _keys(v))]
    if isinstance(node, list):
        return [k for v in node for k in _keys(v)]
    return []


async def _check_video_url(request: Request, params: dict[str, Any], *, nested: bool) -> None:
    video = params["video"]
    if isinstance(video, dict) and video.get("url"):
        await checked_url(request, str(video["url"]), name="video.url", nested=nested)


def _resolve_asset(engine: Engine, params: dict[str, Any], *, nested: bool) -> str:
    """The asset id holding the video, creating one for a URL or base64 source (reused on repeat)."""
    video = params["video"]
    if video is None:
        ia = engine.db.one("SELECT asset_id FROM indexed_assets WHERE id=?", (params["video_id"],))
        ia = found(ia, str(params["video_id"]), "videos", nested=nested)
        return str(ia["asset_id"])
    if video.get("asset_id"):
        asset_id = str(video["asset_id"])
        if engine.db.one("SELECT 1 FROM assets WHERE id=?", (asset_id,)) is None:
            raise not_found(asset_id, "assets", nested=nested)
        return asset_id
    if video.get("url"):
        url = str(video["url"])
        if not url.startswith(("http://", "https://")):
            raise invalid("`video.url` must be an http(s) URL.", nested=nested)
        source = url
    else:
        try:
            data = base64.b64decode(str(video["base64_string"]), validate=True)
        except ValueError as exc:
            raise invalid("`video.base64_string` is not valid base64.", nested=nested) from exc
        if len(data) > 30 * 1024 * 1024:
            raise invalid("`video.base64_string` may carry at most 30 MB.", nested=nested)
        source = "base64:" + hashlib.sha256(data).hexdigest()
    existing = engine.db.one(
        "SELECT id FROM assets WHERE source_url=? AND status<>'failed' ORDER BY created_at DESC LIMIT 1",
        (source,),
    )
    if existing is not None:
        return str(existing["id"])
    asset_id = new_id()
    if video.get("url"):
        insert_asset(
            engine,
            asset_id,
            method="url",
            filename=url.rsplit("/", 1)[-1][:100] or "video",
            path=None,
            info=None,
            source_url=source,
        )
    else:
        path = engine.asset_dir(asset_id) / "source"
        path.write_bytes(data)
        try:
            info = engine.probe(path)
        except Exception as exc:
            engine.remove_asset_files(asset_id)
            raise invalid(f"`video.base64_string` is not a readable video ({exc}).", nested=nested) from exc
        insert_asset(
            engine, asset_id, method="direct", filename="video", path=path, info=info, source_url=source
        )
    return asset_id


def _ready_asset(engine: Engine, asset_id: str, *, nested: bool, wait: float) -> sqlite3.Row:
    deadline = time.monotonic() + wait
    while True:
        row = get_asset_row(engine, asset_id, nested=nested)
        if row["status"] == "failed":
            raise invalid(f"The video could not be processed: {row['error']}", nested=nested)
        if row["status"] == "ready":
            return row
        if time.monotonic() > deadline:
            raise invalid(
                f"Asset `{asset_id}` is still processing; try again when it is ready.", nested=nested
            )
        time.sleep(0.1)


def run_analysis(engine: Engine, params: dict[str, Any], *, nested: bool, wait: float) -> dict[str, Any]:
    """Blocking: resolve the video, wait for its analysis and build the answer."""
    asset_id = _resolve_asset(engine, params, nested=nested)
    row = _ready_asset(engine, asset_id, nested=nested, wait=wait)
    info = Probe.from_dict(loads(row["probe"]))
    if info.kind == "image":
        raise invalid("`video` points at an image; analyze takes video or audio.", nested=nested)
    index = engine.asset_index(asset_id)
    if index is None:
        raise invalid(f"Asset `{asset_id}` has not been analysed.", nested=nested)
    window = params["window"]
    if info.duration is not None and window[0] >= info.duration:
        raise invalid(
            f"`start_time` ({window[0]:g}) is not before the end of the video ({info.duration:g} s).",
            nested=nested,
        )
    if params["schema"] is not None:
        text = answer_json(engine, index, params["prompt"], params["schema"], info.duration, window)
        finish, out_tokens = "stop", len(text.split())
    else:
        text = answer_text(engine, index, row["filename"], info.duration, params["prompt"], window)
        text, finish, out_tokens = truncate(text, params["max_tokens"])
    result: dict[str, Any] = {
        "id": new_id(),
        "data": text,
        "finish_reason": finish,
        "usage": {"output_tokens": out_tokens, "input_tokens": len(params["prompt"].split())},
    }
    if finish == "length":
        result["error"] = {"message": "The answer was cut at max_tokens."}
    return result


async def analyze(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request)
    params = _validate(body, nested=False)
    await _check_video_url(request, params, nested=False)
    stream = body.get("stream", True)
    if not isinstance(stream, bool):
        raise invalid("The `stream` parameter must be a boolean.")
    result = await anyio.to_thread.run_sync(lambda: run_analysis(engine, params, nested=False, wait=WAIT_S))
    if not stream:
        return ok(result)
    return StreamingResponse(_ndjson(result), media_type="application/x-ndjson")


async def _ndjson(result: dict[str, Any]) -> AsyncIterator[bytes]:
    def line(obj: dict[str, Any]) -> bytes:
        return (json.dumps(obj) + "\n").encode()

    yield line({"event_type": "stream_start", "metadata": {"generation_id": result["id"]}})
    text: str = result["data"]
    # Fragments of a few words, split anywhere a client would see them from a real model.
    pieces = text.split(" ")
    for i in range(0, len(pieces), 4):
        chunk = " ".join(pieces[i : i + 4]) + (" " if i + 4 < len(pieces) else "")
        yield line({"event_type": "text_generation", "text": chunk})
        await anyio.lowlevel.checkpoint()
    end: dict[str, Any] = {
        "event_type": "stream_end",
        "finish_reason": result["finish_reason"],
        "metadata": {"generation_id": result["id"], "usage": result["usage"]},
    }
    if "error" in result:
        end["error"] = result["error"]
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
    if row["error"]:
        body["error"] = loads(row["error"])
    return body


def _get_task(engine: Engine, task_id: str) -> sqlite3.Row:
    row = engine.db.one("SELECT * FROM analyze_tasks WHERE id=?", (task_id,))
    return found(row, task_id, "analyze tasks", nested=True)


async def create_task(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request, nested=True)
    params = _validate(body, nested=True)
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
        conn.execute(
            "INSERT INTO jobs(id, kind, ref, status, payload, created_at, updated_at) VALUES(?,?,?,?,?,?,?)",
            (new_id(), "analyze", task_id, "queued", "{}", now, now),
        )
    engine._wake.set()
    return ok({"task_id": task_id, "status": "queued"}, 202)


def process_analyze(engine: Engine, task_id: str, payload: dict[str, Any]) -> None:
    row = engine.db.one("SELECT * FROM analyze_tasks WHERE id=?", (task_id,))
    if row is None or row["status"] not in ("queued", "pending", "processing"):
        return
    engine.db.run(
        "UPDATE analyze_tasks SET status='processing', updated_at=? WHERE id=?", (now_iso(), task_id)
    )
    try:
        params = _validate(loads(row["request"]), nested=True)
        result = run_analysis(engine, params, nested=True, wait=3600.0)
    except ApiError as exc:
        raise RuntimeError(exc.message) from exc
    now = now_iso()
    engine.db.run(
        "UPDATE analyze_tasks SET status='ready', result=?, completed_at=?, updated_at=? WHERE id=? AND "
        "status='processing'",
        (dumps(result), now, now, task_id),
    )


def _analyze_failed(engine: Engine, kind: str, ref: str, message: str) -> None:
    if kind == "analyze":
        now = now_iso()
        engine.db.run(
            "UPDATE analyze_tasks SET status='failed', error=?, completed_at=?, updated_at=? WHERE id=? "
            "AND status NOT IN ('ready','canceled')",
            (dumps({"message": message}), now, now, ref),
        )


JOB_HANDLERS["analyze"] = process_analyze
FAILURE_HOOKS.append(_analyze_failed)


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
