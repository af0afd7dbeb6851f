"""Analysis tasks and batches as the API shows them, and the `Idempotency-Key` ledger of their creation.

A batch's items are `analyze_tasks` rows whose stored request carries `batch_id`; a batch's status and
counts are derived from its items whenever it is read, so they can never disagree with them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from tl_mcp.sandbox.errors import ApiError, found
from tl_mcp.sandbox.store.db import Database, loads

RUNNING = ("queued", "pending", "processing")
#: A task that ended this way produced nothing: its idempotency key may start a new one.
SPENT = ("failed", "canceled")
#: The request keys echoed in `request_params` (the video, ids and batch are shown elsewhere).
_NOT_PARAMS = ("custom_id", "video", "batch_id", "image")


def task_json(row: sqlite3.Row) -> dict[str, Any]:
    request = loads(row["request"])
    body: dict[str, Any] = {
        "task_id": row["id"],
        "custom_id": request.get("custom_id"),
        "status": row["status"],
        "created_at": row["created_at"],
        "request_params": {k: v for k, v in request.items() if k not in _NOT_PARAMS and v is not None},
    }
    if request.get("batch_id"):
        body["batch_id"] = request["batch_id"]
    if request.get("image"):
        # Echoed as shared media sources; a base64 image echoes only its name and type (SDK 1.3.6).
        body["request_params"]["image"] = [
            {"name": i["name"], "media_type": "image"} | {k: i[k] for k in ("url", "asset_id") if i.get(k)}
            for i in request["image"]
        ]
    video = request.get("video")
    if video:
        body["video_source"] = {k: v for k, v in video.items() if k != "base64_string"} | {
            "type": video.get("type") or next(k for k in ("url", "asset_id", "base64_string") if video.get(k))
        }
    if row["completed_at"]:
        body["completed_at"] = row["completed_at"]
    if row["result"] and row["status"] == "ready":
        body["result"] = result_json(loads(row["result"]))
    error = loads(row["error"]) if row["error"] else None
    if error is None and row["result"] and row["status"] == "ready":
        error = loads(row["result"]).get("error")
    if error:
        body["error"] = error
    return body


def result_json(r: dict[str, Any]) -> dict[str, Any]:
    body = {
        "generation_id": r["id"],
        "data": r["data"],
        "finish_reason": r["finish_reason"],
        "usage": r["usage"],
    }
    if "unfilled" in r:  # sandbox-only: the schema fields no evidence fitted
        body["unfilled"] = r["unfilled"]
    if "generated_by" in r:  # results stored before answerers existed have none
        body["generated_by"] = r["generated_by"]
    return body


def get_task_row(db: Database, task_id: str) -> sqlite3.Row:
    return found(
        db.one("SELECT * FROM analyze_tasks WHERE id=?", (task_id,)), task_id, "analyze tasks", nested=True
    )


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def replayed(conn: sqlite3.Connection, kind: str, key: str | None, digest: str, live: str) -> str | None:
    """The id an earlier request with this `Idempotency-Key` created, when it is still `live` (an SQL
    condition on that id); 409 when the key came with a different body; None to create anew."""
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise ApiError(
            400, "parameter_invalid", "The Idempotency-Key header takes 1-255 characters.", nested=True
        )
    row = conn.execute(
        "SELECT ref, body_hash FROM analyze_idempotency WHERE kind=? AND key=?", (kind, key)
    ).fetchone()
    if row is None or conn.execute(live, (row["ref"],)).fetchone() is None:
        return None
    if row["body_hash"] != digest:
        raise ApiError(
            409,
            "idempotency_key_reused",
            f"This Idempotency-Key was already used for a different {kind} request ({row['ref']}). "
            "Use a new key for a new request, or repeat the first request unchanged.",
            nested=True,
        )
    ref: str = row["ref"]
    return ref


def remember(conn: sqlite3.Connection, kind: str, key: str | None, ref: str, digest: str, now: str) -> None:
    if key is not None:
        conn.execute(
            "INSERT OR REPLACE INTO analyze_idempotency(kind, key, ref, body_hash, created_at) "
            "VALUES(?,?,?,?,?)",
            (kind, key, ref, digest, now),
        )


def batch_tasks(db: Database, batch_id: str) -> list[sqlite3.Row]:
    return db.all(
        "SELECT * FROM analyze_tasks WHERE json_extract(request, '$.batch_id')=? ORDER BY rowid", (batch_id,)
    )


def get_batch_row(db: Database, batch_id: str) -> sqlite3.Row:
    return found(
        db.one("SELECT * FROM analyze_batches WHERE id=?", (batch_id,)),
        batch_id,
        "analyze batches",
        nested=True,
    )


def batch_json(db: Database, row: sqlite3.Row) -> dict[str, Any]:
    """The batch object: counts per item status, and the status they add up to."""
    tasks = batch_tasks(db, row["id"])
    counts = {s: 0 for s in ("queued", "processing", "ready", "failed", "canceled")}
    for t in tasks:
        counts[item_status(t["status"])] += 1
    running = counts["queued"] + counts["processing"]
    if row["canceled_at"]:
        status = "canceling" if running else "canceled"
    elif not running:
        status = "completed"
    elif counts["processing"] or len(tasks) > running:
        status = "processing"
    else:
        status = "pending"
    body: dict[str, Any] = {
        "batch_id": row["id"],
        "analysis_mode": row["analysis_mode"],
        "model_name": row["model_name"],
        "status": status,
        "total_items": len(tasks),
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        **{f"{k}_items": v for k, v in counts.items()},
    }
    ended = [t["completed_at"] for t in tasks if t["completed_at"]]
    if status == "completed" and ended:
        body["completed_at"] = max(ended)
    if status == "canceled":
        body["canceled_at"] = row["canceled_at"]
    return body


def item_status(task_status: str) -> str:
    """A batch item's status: the task's, with `pending` shown as `queued` (items have no `pending`)."""
    return "queued" if task_status == "pending" else task_status


def result_line(row: sqlite3.Row) -> dict[str, Any]:
    request = loads(row["request"])
    line: dict[str, Any] = {
        "task_id": row["id"],
        "custom_id": request.get("custom_id"),
        "status": item_status(row["status"]),
    }
    if row["status"] == "ready" and row["result"]:
        line["data"] = result_json(loads(row["result"]))
    if row["error"]:
        error = loads(row["error"])
        line["error"] = {"message": error.get("message") or "failed"} | (
            {"code": error["code"]} if error.get("code") else {}
        )
    return line
