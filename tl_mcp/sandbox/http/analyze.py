"""POST /analyze (JSON or NDJSON stream) and /analyze/tasks (async, nested error bodies).

Creating a task honours an `Idempotency-Key` header: the same key with the same body returns the task it
created while that task has not failed or been canceled (then the key starts a new one); the same key
with another body is a 409. `custom_id` is only stored and echoed: like the cloud's, it is not unique.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.errors import ApiError, invalid, missing
from tl_mcp.sandbox.store import analyze_idempotency as ledger
from tl_mcp.sandbox.store import analyze_tasks as tasks
from tl_mcp.sandbox.store.db import now_iso
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
from tl_mcp.sandbox.work.analyze import Generation, parse_params, run_analysis, start_analysis
from tl_mcp.sandbox.work.segments import check_task

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
    if not stream:
        result = await anyio.to_thread.run_sync(
            lambda: run_analysis(engine, params, nested=False, wait=WAIT_S)
        )
        return ok(result)
    # Whatever refuses the request does so here, as a JSON error with its status; the stream only answers.
    generation = await anyio.to_thread.run_sync(
        lambda: start_analysis(engine, params, nested=False, wait=WAIT_S)
    )
    return StreamingResponse(
        _ndjson(generation, engine.config.stream_delay_s), media_type="application/x-ndjson"
    )


async def _ndjson(generation: Generation, delay_s: float) -> AsyncIterator[bytes]:
    def line(obj: dict[str, Any]) -> bytes:
        return (json.dumps(obj) + "\n").encode()

    yield line({"event_type": "stream_start", "metadata": {"generation_id": generation.id}})
    deltas = generation.deltas()
    try:
        # Each delta as the answerer releases it: producing one blocks (a model), so it runs in a thread.
        first = True
        while (delta := await anyio.to_thread.run_sync(next, deltas, None)) is not None:
            if generation.paced and delay_s and not first:
                # The sandbox's own text is paced (TL_MCP_SANDBOX_STREAM_DELAY_S) so progress arrives live.
                await anyio.sleep(delay_s)
            first = False
            yield line({"event_type": "text_generation", "text": delta})
    finally:
        # A client that went away stops the model too; shielded, as the cancelled stream ends here.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(deltas.close)
    result = generation.result()
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
#: The request keys a task keeps: its parameters as sent (the worker checks them again when it runs).
TASK_KEYS = (
    "model_name",
    "prompt",
    "prompt_v2",
    "temperature",
    "max_tokens",
    "response_format",
    "custom_id",
    "video",
    "image",
    "analysis_mode",
    "min_segment_duration",
    "max_segment_duration",
    "start_time",
    "end_time",
)


async def create_task(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request, nested=True)
    params = parse_params(body, nested=True)
    task = check_task(body, params["model_name"])
    if body.get("video") is None and not params["image"]:
        raise missing("video", nested=True)
    await _check_video_url(request, params, nested=True)
    stored = {k: body[k] for k in TASK_KEYS if body.get(k) is not None}
    stored["model_name"] = params["model_name"]
    stored["analysis_mode"] = task["analysis_mode"]
    key, digest = request.headers.get("idempotency-key"), ledger.body_hash(stored)
    task_id, now = new_id(), now_iso()
    with engine.db.tx() as conn:
        earlier = ledger.replayed(
            conn, "task", key, digest, lambda ref: tasks.live_status(conn, ref) is not None
        )
        if earlier is not None:
            return ok({"task_id": earlier, "status": tasks.get_task(engine.db, earlier).status}, 202)
        tasks.insert(conn, task_id, stored, now)
        ledger.remember(conn, "task", key, task_id, digest, now)
        engine.jobs.add(conn, "analyze", task_id)
    engine.jobs.wake()
    return ok({"task_id": task_id, "status": "queued"}, 202)


async def list_tasks(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    items = [tasks.task_json(t) for t in tasks.newest_first(engine.db)]
    statuses = query_list(request, "status")
    if statuses:
        items = [t for t in items if t["status"] in statuses]
    q = request.query_params
    if q.get("asset_id"):
        items = [t for t in items if t.get("video_source", {}).get("asset_id") == q["asset_id"]]
    if q.get("video_url"):
        items = [t for t in items if t.get("video_source", {}).get("url") == q["video_url"]]
    if q.get("analysis_mode"):
        items = [t for t in items if t["request_params"].get("analysis_mode") == q["analysis_mode"]]
    return ok(paged(items, page, limit))


async def get_task(request: Request) -> Response:
    return ok(tasks.task_json(tasks.get_task(engine_of(request).db, request.path_params["task_id"])))


async def delete_task(request: Request) -> Response:
    engine = engine_of(request)
    task = tasks.get_task(engine.db, request.path_params["task_id"])
    if task.status in tasks.RUNNING:
        raise ApiError(
            409, "task_not_terminal", "The task is still running; cancel it first or wait.", nested=True
        )
    tasks.delete(engine.db, task.id)
    return no_content()


async def cancel_task(request: Request) -> Response:
    """Cancel a queued or running task. Repeating it answers the same and keeps the first reason."""
    engine = engine_of(request)
    task = tasks.get_task(engine.db, request.path_params["task_id"])
    batch_id = task.batch_id
    if task.status == "canceled":
        return ok({"task_id": task.id, "status": "canceled"})
    if batch_id:
        raise ApiError(
            409,
            "task_in_batch",
            f"The task belongs to batch `{batch_id}`; cancel it through "
            f"POST /analyze/batches/{batch_id}/cancel.",
            nested=True,
        )
    if task.status in ("ready", "failed"):
        raise ApiError(409, "task_not_cancelable", f"The task is already {task.status}.", nested=True)
    with engine.db.tx() as conn:
        tasks.set_canceled(
            conn, task.id, {"message": "canceled by the user", "code": "user_canceled"}, now_iso()
        )
        engine.jobs.drop_queued(conn, "analyze", task.id)
    return ok({"task_id": task.id, "status": "canceled"})


routes: list[BaseRoute] = [
    Route("/analyze", analyze, methods=["POST"]),
    Route("/analyze/tasks", create_task, methods=["POST"]),
    Route("/analyze/tasks", list_tasks, methods=["GET"]),
    Route("/analyze/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/analyze/tasks/{task_id}", delete_task, methods=["DELETE"]),
    Route("/analyze/tasks/{task_id}/cancel", cancel_task, methods=["POST"]),
]
