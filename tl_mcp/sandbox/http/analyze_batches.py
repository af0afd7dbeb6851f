"""`/analyze/batches`: one analysis request over many assets, each item its own analysis task.

Every item is checked when the batch is created (a bad item refuses the whole batch and creates
nothing); an item that cannot run later (its asset unreadable, its window over 2 h) fails alone with its
code, and the rest of the batch goes on. Results are JSON Lines, one item a line (SDK 1.3.6).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.errors import ApiError, invalid, missing
from tl_mcp.sandbox.store import analyze_batches as batches
from tl_mcp.sandbox.store import analyze_idempotency as ledger
from tl_mcp.sandbox.store import analyze_tasks as tasks
from tl_mcp.sandbox.store.db import now_iso
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.web import engine_of, json_body, no_content, ok, page_params, paged, query_list
from tl_mcp.sandbox.work.analyze import parse_params
from tl_mcp.sandbox.work.segments import check_custom_id, check_task

#: Batches run on Pegasus 1.5 only (SDK 1.3.6 still has no other model for them).
BATCH_MODEL = "pegasus1.5"
MAX_ITEMS = 1000
#: What an item may set for itself, over the batch's `defaults`.
ITEM_KEYS = (
    "prompt",
    "response_format",
    "temperature",
    "max_tokens",
    "min_segment_duration",
    "max_segment_duration",
    "start_time",
    "end_time",
)


def _item_request(n: int, item: Any, defaults: dict[str, Any], mode: str, batch_id: str) -> dict[str, Any]:
    """Item `n` as the task it becomes: defaults overlaid with its own fields, checked like a task."""
    at = f"requests[{n}]"
    if not isinstance(item, dict):
        raise invalid(f"`{at}` must be an object with `video`.", nested=True)
    video = item.get("video")
    if not isinstance(video, dict) or video.get("type") != "asset_id" or not video.get("asset_id"):
        raise invalid(f'`{at}.video` must be {{"type": "asset_id", "asset_id": "..."}}.', nested=True)
    merged = {k: defaults[k] for k in ITEM_KEYS if defaults.get(k) is not None}
    merged |= {k: item[k] for k in ITEM_KEYS if item.get(k) is not None}
    prompt = merged.pop("prompt", None)
    if prompt is not None:
        if not isinstance(prompt, dict) or not isinstance(prompt.get("input_text"), str):
            raise invalid(f'`{at}.prompt` must be {{"input_text": "..."}}.', nested=True)
        if prompt.get("media_sources"):
            raise invalid(f"`{at}.prompt.media_sources`: the sandbox has no reference images.", nested=True)
        merged["prompt"] = prompt["input_text"]
    request = merged | {
        "video": {"type": "asset_id", "asset_id": str(video["asset_id"])},
        "model_name": BATCH_MODEL,
        "analysis_mode": mode,
        "batch_id": batch_id,
        "custom_id": check_custom_id(item.get("custom_id"), f"{at}.custom_id"),
    }
    try:
        params = parse_params(request, nested=True)
        check_task(request, params["model_name"], batch=True)
    except ApiError as exc:
        raise invalid(f"{at}: {exc.message}", nested=True) from None
    return {k: v for k, v in request.items() if v is not None}


async def create_batch(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request, nested=True)
    model = body.get("model_name")
    if model is None:
        raise missing("model_name", nested=True)
    if model != BATCH_MODEL:
        raise invalid(f"Batches take `model_name: {BATCH_MODEL}` only (got {model!r}).", nested=True)
    mode = body.get("analysis_mode")
    if mode not in ("general", "time_based_metadata"):
        raise invalid("`analysis_mode` is required: general or time_based_metadata.", nested=True)
    defaults = body.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise invalid("`defaults` must be an object.", nested=True)
    items = body.get("requests")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise invalid(f"`requests` must be a list of 1 to {MAX_ITEMS} items.", nested=True)
    batch_id, now = new_id(), now_iso()
    planned = [_item_request(n, item, defaults, mode, batch_id) for n, item in enumerate(items)]
    ids = [p["custom_id"] for p in planned if p.get("custom_id")]
    if len(ids) != len(set(ids)):
        raise invalid("`custom_id` values must be unique within a batch.", nested=True)
    key = request.headers.get("idempotency-key")
    digest = ledger.body_hash(
        {k: body.get(k) for k in ("model_name", "analysis_mode", "defaults", "requests")}
    )
    expires = (datetime.now(UTC) + timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    with engine.db.tx() as conn:
        earlier = ledger.replayed(conn, "batch", key, digest, lambda ref: batches.is_live(conn, ref))
        if earlier is None:
            batches.insert(
                conn, batch_id, model_name=BATCH_MODEL, analysis_mode=mode, now=now, expires_at=expires
            )
            for p in planned:
                task_id = new_id()
                tasks.insert(conn, task_id, p, now)
                engine.jobs.add(conn, "analyze", task_id)
            ledger.remember(conn, "batch", key, batch_id, digest, now)
    engine.jobs.wake()
    batch = batches.get_batch(engine.db, earlier or batch_id)
    items = tasks.of_batch(engine.db, batch.id)
    summary = batches.batch_json(batch, items)
    return ok(
        {k: summary[k] for k in ("batch_id", "status", "total_items", "created_at", "expires_at")}
        | {"items": [{"task_id": t.id, "custom_id": t.request.get("custom_id")} for t in items]},
        201,
    )


async def list_batches(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    items = [batches.batch_json(b, tasks.of_batch(engine.db, b.id)) for b in batches.newest_first(engine.db)]
    statuses, modes = query_list(request, "status"), query_list(request, "analysis_mode")
    items = [
        b
        for b in items
        if (not statuses or b["status"] in statuses) and (not modes or b["analysis_mode"] in modes)
    ]
    return ok(paged(items, page, limit))


async def get_batch(request: Request) -> Response:
    engine = engine_of(request)
    batch = batches.get_batch(engine.db, request.path_params["batch_id"])
    return ok(batches.batch_json(batch, tasks.of_batch(engine.db, batch.id)))


async def batch_results(request: Request) -> Response:
    engine = engine_of(request)
    batch = batches.get_batch(engine.db, request.path_params["batch_id"])
    lines = [json.dumps(tasks.result_line(t)) for t in tasks.of_batch(engine.db, batch.id)]
    return Response("".join(line + "\n" for line in lines), media_type="application/jsonl")


async def cancel_batch(request: Request) -> Response:
    """Cancel the queued items (running ones finish); repeating it answers with the batch as it is."""
    engine = engine_of(request)
    batch = batches.get_batch(engine.db, request.path_params["batch_id"])
    if batches.batch_json(batch, tasks.of_batch(engine.db, batch.id))["status"] == "completed":
        raise ApiError(
            409, "batch_completed", "The batch has already completed; nothing is left to cancel.", nested=True
        )
    if batch.canceled_at is None:
        now = now_iso()
        error = {"message": "canceled with its batch", "code": "batch_canceled"}
        with engine.db.tx() as conn:
            batches.set_canceled(conn, batch.id, now)
            for t in tasks.of_batch(engine.db, batch.id):
                if t.status in ("queued", "pending"):
                    tasks.set_canceled(conn, t.id, error, now)
                    engine.jobs.drop_queued(conn, "analyze", t.id)
        batch = batches.get_batch(engine.db, batch.id)
    return ok(batches.batch_json(batch, tasks.of_batch(engine.db, batch.id)), 202)


async def delete_batch(request: Request) -> Response:
    engine = engine_of(request)
    batch = batches.get_batch(engine.db, request.path_params["batch_id"])
    status = batches.batch_json(batch, tasks.of_batch(engine.db, batch.id))["status"]
    if status not in ("completed", "canceled", "expired"):
        raise ApiError(
            409, "batch_not_terminal", f"The batch is {status}; cancel it or wait until it ends.", nested=True
        )
    with engine.db.tx() as conn:
        tasks.delete_of_batch(conn, batch.id)
        batches.delete(conn, batch.id)
    return no_content()


routes: list[BaseRoute] = [
    Route("/analyze/batches", create_batch, methods=["POST"]),
    Route("/analyze/batches", list_batches, methods=["GET"]),
    Route("/analyze/batches/{batch_id}", get_batch, methods=["GET"]),
    Route("/analyze/batches/{batch_id}", delete_batch, methods=["DELETE"]),
    Route("/analyze/batches/{batch_id}/results", batch_results, methods=["GET"]),
    Route("/analyze/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
]
