"""The ``embed_tasks`` table (video embedding tasks of both API versions, ``v1`` and ``v2``): the only SQL
that reads or writes its rows. ``request`` and ``result`` are JSON documents that only ``work/embed``
writes, so callers get the rows as they are."""

from __future__ import annotations

import sqlite3
from typing import Any

from tl_mcp.sandbox.errors import found
from tl_mcp.sandbox.store.db import Database, dumps, now_iso


def insert(conn: sqlite3.Connection, task_id: str, version: str, model: str, request: dict[str, Any]) -> None:
    """A new ``processing`` task, in the caller's transaction that queues its ``embed`` job."""
    now = now_iso()
    conn.execute(
        "INSERT INTO embed_tasks(id, version, status, model_name, created_at, updated_at, request) "
        "VALUES(?,?,?,?,?,?,?)",
        (task_id, version, "processing", model, now, now, dumps(request)),
    )


def get(db: Database, task_id: str) -> sqlite3.Row | None:
    return db.one("SELECT * FROM embed_tasks WHERE id=?", (task_id,))


def get_task(db: Database, task_id: str, version: str) -> sqlite3.Row:
    """The task of that API version, or its TwelveLabs 404 (nested for v2, as embed-v2 errors are)."""
    row = db.one("SELECT * FROM embed_tasks WHERE id=? AND version=?", (task_id, version))
    return found(row, task_id, "embed tasks", nested=version == "v2")


def of_version(db: Database, version: str) -> list[sqlite3.Row]:
    """The tasks of one API version, newest first."""
    return db.all(
        "SELECT * FROM embed_tasks WHERE version=? ORDER BY created_at DESC, rowid DESC", (version,)
    )


def set_ready(db: Database, task_id: str, result: dict[str, Any]) -> None:
    db.run(
        "UPDATE embed_tasks SET status='ready', result=?, updated_at=? WHERE id=?",
        (dumps(result), now_iso(), task_id),
    )


def set_failed(db: Database, task_id: str, message: str) -> None:
    db.run(
        "UPDATE embed_tasks SET status='failed', error=?, updated_at=? WHERE id=?",
        (message, now_iso(), task_id),
    )
