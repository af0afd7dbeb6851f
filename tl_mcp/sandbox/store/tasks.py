"""The ``tasks`` table (legacy upload-and-index tasks): the only SQL that reads or writes its rows. A task's
status is not stored: it is read from its video (indexed asset) and asset."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from tl_mcp.sandbox.errors import found
from tl_mcp.sandbox.store.db import Database, now_iso


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    index_id: str
    video_id: str
    asset_id: str
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Task:
        return cls(
            row["id"], row["index_id"], row["video_id"], row["asset_id"], row["created_at"], row["updated_at"]
        )


def get_task(db: Database, task_id: str) -> Task:
    """The task, or the TwelveLabs 404 for ``task_id``."""
    return Task.from_row(found(db.one("SELECT * FROM tasks WHERE id=?", (task_id,)), task_id, "tasks"))


def insert(db: Database, task_id: str, *, index_id: str, video_id: str, asset_id: str) -> None:
    now = now_iso()
    db.run(
        "INSERT INTO tasks(id, index_id, video_id, asset_id, created_at, updated_at) VALUES(?,?,?,?,?,?)",
        (task_id, index_id, video_id, asset_id, now, now),
    )


def search(db: Database, *, index_id: str | None, sort_by: str, sort_option: str) -> list[Task]:
    """Tasks (of ``index_id`` when given). ``sort_by`` / ``sort_option`` must come from the route's
    allow-list: they are part of the SQL."""
    where, params = ("WHERE index_id=?", [index_id]) if index_id else ("", [])
    rows = db.all(
        f"SELECT * FROM tasks {where} ORDER BY {sort_by} {sort_option}, rowid {sort_option}", params
    )
    return [Task.from_row(r) for r in rows]


def delete(db: Database, task_id: str) -> None:
    db.run("DELETE FROM tasks WHERE id=?", (task_id,))


def delete_in_index(conn: sqlite3.Connection, index_id: str) -> None:
    conn.execute("DELETE FROM tasks WHERE index_id=?", (index_id,))


def delete_of_asset(conn: sqlite3.Connection, asset_id: str) -> None:
    conn.execute("DELETE FROM tasks WHERE asset_id=?", (asset_id,))


def delete_of_video(conn: sqlite3.Connection, video_id: str) -> None:
    conn.execute("DELETE FROM tasks WHERE video_id=?", (video_id,))
