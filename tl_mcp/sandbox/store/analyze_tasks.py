"""The ``analyze_tasks`` table (analysis tasks, batch items included): the only SQL that reads or writes its
rows, and a task as the API shows it.

A batch's items are tasks whose stored request carries ``batch_id`` (see :mod:`.analyze_batches`).
``request`` is the task's parameters as sent; ``result`` and ``error`` are what ``work/analyze`` wrote.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.errors import found
from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso

RUNNING = ("queued", "pending", "processing")
#: The request keys echoed in `request_params` (the video, ids and batch are shown elsewhere).
_NOT_PARAMS = ("custom_id", "video", "batch_id", "image")


@dataclass(frozen=True, slots=True)
class AnalyzeTask:
    id: str
    status: str
    created_at: str
    completed_at: str | None
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AnalyzeTask:
        return cls(
            row["id"],
            row["status"],
            row["created_at"],
            row["completed_at"],
            loads(row["request"]),
            loads(row["result"]),
            loads(row["error"]),
        )

    @property
    def batch_id(self) -> str | None:
        batch_id: str | None = self.request.get("batch_id")
        return batch_id


def get(db: Database, task_id: str) -> AnalyzeTask | None:
    row = db.one("SELECT * FROM analyze_tasks WHERE id=?", (task_id,))
    return None if row is None else AnalyzeTask.from_row(row)


def get_task(db: Database, task_id: str) -> AnalyzeTask:
    """The task, or the TwelveLabs 404 (nested, as analysis errors are) for ``task_id``."""
    return found(get(db, task_id), task_id, "analyze tasks", nested=True)


def newest_first(db: Database) -> list[AnalyzeTask]:
    rows = db.all("SELECT * FROM analyze_tasks ORDER BY created_at DESC, rowid DESC")
    return [AnalyzeTask.from_row(r) for r in rows]


def of_batch(db: Database, batch_id: str) -> list[AnalyzeTask]:
    """A batch's items in the order its request listed them."""
    rows = db.all(
        "SELECT * FROM analyze_tasks WHERE json_extract(request, '$.batch_id')=? ORDER BY rowid", (batch_id,)
    )
    return [AnalyzeTask.from_row(r) for r in rows]


def live_status(conn: sqlite3.Connection, task_id: str) -> str | None:
    """The task's status while it still stands for its request: one that failed or was canceled produced
    nothing, so the idempotency key that created it may start a new one."""
    row = conn.execute(
        "SELECT status FROM analyze_tasks WHERE id=? AND status NOT IN ('failed','canceled')", (task_id,)
    ).fetchone()
    return None if row is None else str(row["status"])


def insert(conn: sqlite3.Connection, task_id: str, request: dict[str, Any], now: str) -> None:
    """A new ``queued`` task, in the caller's transaction that queues its ``analyze`` job."""
    conn.execute(
        "INSERT INTO analyze_tasks(id, status, created_at, updated_at, request) VALUES(?,?,?,?,?)",
        (task_id, "queued", now, now, dumps(request)),
    )


def set_processing(db: Database, task_id: str) -> None:
    db.run("UPDATE analyze_tasks SET status='processing', updated_at=? WHERE id=?", (now_iso(), task_id))


def set_ready(db: Database, task_id: str, result: dict[str, Any]) -> None:
    """Only a task still processing takes its result: one canceled meanwhile stays canceled."""
    now = now_iso()
    db.run(
        "UPDATE analyze_tasks SET status='ready', result=?, completed_at=?, updated_at=? WHERE id=? AND "
        "status='processing'",
        (dumps(result), now, now, task_id),
    )


def set_failed(db: Database, task_id: str, error: dict[str, str]) -> None:
    """A task that already ended keeps how it ended."""
    now = now_iso()
    db.run(
        "UPDATE analyze_tasks SET status='failed', error=?, completed_at=?, updated_at=? WHERE id=? "
        "AND status NOT IN ('ready','canceled')",
        (dumps(error), now, now, task_id),
    )


def set_canceled(conn: sqlite3.Connection, task_id: str, error: dict[str, str], now: str) -> None:
    conn.execute(
        "UPDATE analyze_tasks SET status='canceled', error=?, completed_at=?, updated_at=? WHERE id=?",
        (dumps(error), now, now, task_id),
    )


def delete(db: Database, task_id: str) -> None:
    db.run("DELETE FROM analyze_tasks WHERE id=?", (task_id,))


def delete_of_batch(conn: sqlite3.Connection, batch_id: str) -> None:
    conn.execute("DELETE FROM analyze_tasks WHERE json_extract(request, '$.batch_id')=?", (batch_id,))


def task_json(task: AnalyzeTask) -> dict[str, Any]:
    request = task.request
    body: dict[str, Any] = {
        "task_id": task.id,
        "custom_id": request.get("custom_id"),
        "status": task.status,
        "created_at": task.created_at,
        "request_params": {k: v for k, v in request.items() if k not in _NOT_PARAMS and v is not None},
    }
    if task.batch_id:
        body["batch_id"] = task.batch_id
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
    if task.completed_at:
        body["completed_at"] = task.completed_at
    error = task.error
    if task.status == "ready" and task.result is not None:
        body["result"] = result_json(task.result)
        if error is None:
            error = task.result.get("error")
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


def item_status(task_status: str) -> str:
    """A batch item's status: the task's, with `pending` shown as `queued` (items have no `pending`)."""
    return "queued" if task_status == "pending" else task_status


def result_line(task: AnalyzeTask) -> dict[str, Any]:
    """The task as a line of its batch's JSON Lines results."""
    line: dict[str, Any] = {
        "task_id": task.id,
        "custom_id": task.request.get("custom_id"),
        "status": item_status(task.status),
    }
    if task.status == "ready" and task.result is not None:
        line["data"] = result_json(task.result)
    if task.error:
        line["error"] = {"message": task.error.get("message") or "failed"} | (
            {"code": task.error["code"]} if task.error.get("code") else {}
        )
    return line
