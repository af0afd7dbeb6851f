"""The ``indexed_assets`` table (an asset indexed into an index; the legacy API calls it a video): the only
SQL that reads or writes its rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso


@dataclass(frozen=True, slots=True)
class IndexedAsset:
    id: str
    index_id: str
    asset_id: str
    #: pending → queued (waiting on its asset) → indexing → ready | failed
    status: str
    created_at: str
    updated_at: str
    indexed_at: str | None
    user_metadata: dict[str, Any]
    error: str | None
    task_id: str | None
    #: ``None`` when the request left it unset (the contract's default: on).
    enable_video_stream: bool | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> IndexedAsset:
        evs = row["enable_video_stream"]
        return cls(
            id=row["id"],
            index_id=row["index_id"],
            asset_id=row["asset_id"],
            status=row["status"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            indexed_at=row["indexed_at"],
            user_metadata=loads(row["user_metadata"]) or {},
            error=row["error"],
            task_id=row["task_id"],
            enable_video_stream=None if evs is None else bool(evs),
        )


@dataclass(frozen=True, slots=True)
class Listed:
    """An indexed asset as a listing sees it, with what its asset's probe found (``{}`` before probing)."""

    item: IndexedAsset
    probe: dict[str, Any]


def _one(row: sqlite3.Row | None) -> IndexedAsset | None:
    return None if row is None else IndexedAsset.from_row(row)


def get(db: Database, ia_id: str, *, index_id: str | None = None) -> IndexedAsset | None:
    """The indexed asset ``ia_id`` (in ``index_id``, when given)."""
    if index_id is None:
        return _one(db.one("SELECT * FROM indexed_assets WHERE id=?", (ia_id,)))
    return _one(db.one("SELECT * FROM indexed_assets WHERE id=? AND index_id=?", (ia_id, index_id)))


def asset_id_of(db: Database, ia_id: str) -> str | None:
    row = db.one("SELECT asset_id FROM indexed_assets WHERE id=?", (ia_id,))
    return None if row is None else str(row["asset_id"])


def insert(
    conn: sqlite3.Connection,
    ia_id: str,
    index_id: str,
    asset_id: str,
    *,
    user_metadata: dict[str, Any] | None,
    task_id: str | None,
    enable_video_stream: bool | None,
) -> None:
    """A new ``pending`` row, in the caller's transaction that queues its ``index`` job."""
    now = now_iso()
    conn.execute(
        "INSERT INTO indexed_assets(id, index_id, asset_id, status, created_at, updated_at, user_metadata, "
        "task_id, enable_video_stream) VALUES(?,?,?,?,?,?,?,?,?)",
        (
            ia_id,
            index_id,
            asset_id,
            "pending",
            now,
            now,
            dumps(user_metadata) if user_metadata else None,
            task_id,
            None if enable_video_stream is None else int(enable_video_stream),
        ),
    )


def in_index(
    db: Database,
    index_id: str,
    *,
    statuses: Sequence[str],
    filename: str | None,
    sort_by: str,
    sort_option: str,
) -> list[Listed]:
    """The indexed assets of ``index_id`` with one of ``statuses`` (any when empty) whose asset's file is
    named ``filename`` (when given). ``sort_by`` / ``sort_option`` must come from the route's allow-list:
    they are part of the SQL."""
    clauses, params = ["ia.index_id=?"], [index_id]
    if statuses:
        clauses.append(f"ia.status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    if filename:
        clauses.append("a.filename = ?")
        params.append(filename)
    rows = db.all(
        "SELECT ia.*, a.probe AS asset_probe FROM indexed_assets ia LEFT JOIN assets a ON a.id = ia.asset_id "
        f"WHERE {' AND '.join(clauses)} "
        f"ORDER BY ia.{sort_by} {sort_option}, ia.rowid {sort_option}",
        params,
    )
    return [Listed(IndexedAsset.from_row(r), loads(r["asset_probe"]) or {}) for r in rows]


@dataclass(frozen=True, slots=True)
class Searchable:
    """A ready indexed asset as a search sees it: what a filter may match on."""

    id: str
    asset_id: str
    user_metadata: dict[str, Any]
    filename: str
    probe: dict[str, Any]


def ready_in_index(db: Database, index_id: str) -> list[Searchable]:
    """The ready indexed assets of ``index_id``, oldest first."""
    rows = db.all(
        "SELECT ia.id, ia.asset_id, ia.user_metadata, a.filename, a.probe FROM indexed_assets ia "
        "JOIN assets a ON a.id = ia.asset_id WHERE ia.index_id=? AND ia.status='ready' ORDER BY "
        "ia.created_at",
        (index_id,),
    )
    return [
        Searchable(
            r["id"], r["asset_id"], loads(r["user_metadata"]) or {}, r["filename"], loads(r["probe"]) or {}
        )
        for r in rows
    ]


def ready_totals(db: Database, index_id: str) -> tuple[int, float]:
    """How many of ``index_id``'s indexed assets are ready, and their total duration in seconds."""
    row = db.one(
        "SELECT COUNT(*) AS n, COALESCE(SUM(json_extract(a.probe, '$.duration')), 0) AS d "
        "FROM indexed_assets ia JOIN assets a ON a.id = ia.asset_id WHERE ia.index_id=? AND "
        "ia.status='ready'",
        (index_id,),
    )
    return (int(row["n"]), float(row["d"])) if row else (0, 0.0)


def of_asset(db: Database, asset_id: str) -> list[tuple[str, str, str]]:
    """(indexed asset id, index id, index name) of every index that holds ``asset_id``, newest first."""
    rows = db.all(
        "SELECT ia.id, i.id AS index_id, i.name FROM indexed_assets ia JOIN indexes i ON i.id = ia.index_id "
        "WHERE ia.asset_id=? ORDER BY ia.created_at DESC",
        (asset_id,),
    )
    return [(r["id"], r["index_id"], r["name"]) for r in rows]


def set_status(db: Database, ia_id: str, status: str) -> None:
    """Move to ``queued`` or ``indexing`` (``set_ready`` and ``set_failed`` end the indexing)."""
    db.run("UPDATE indexed_assets SET status=?, updated_at=? WHERE id=?", (status, now_iso(), ia_id))


def set_ready(db: Database, ia_id: str) -> None:
    now = now_iso()
    db.run(
        "UPDATE indexed_assets SET status='ready', indexed_at=?, updated_at=? WHERE id=?", (now, now, ia_id)
    )


def set_failed(db: Database, ia_id: str, message: str) -> None:
    db.run(
        "UPDATE indexed_assets SET status='failed', error=?, updated_at=? WHERE id=?",
        (message, now_iso(), ia_id),
    )


def fail_unfinished_of_asset(db: Database, asset_id: str, message: str) -> None:
    """Fail every indexing of ``asset_id`` that has not ended: it waits on an asset that failed."""
    db.run(
        "UPDATE indexed_assets SET status='failed', error=?, updated_at=? "
        "WHERE asset_id=? AND status NOT IN ('ready','failed')",
        (message, now_iso(), asset_id),
    )


def set_user_metadata(db: Database, ia_id: str, metadata: dict[str, Any]) -> None:
    db.run(
        "UPDATE indexed_assets SET user_metadata=?, updated_at=? WHERE id=?",
        (dumps(metadata) if metadata else None, now_iso(), ia_id),
    )


def delete(conn: sqlite3.Connection, ia_id: str) -> None:
    conn.execute("DELETE FROM indexed_assets WHERE id=?", (ia_id,))


def delete_in_index(conn: sqlite3.Connection, index_id: str) -> None:
    conn.execute("DELETE FROM indexed_assets WHERE index_id=?", (index_id,))


def delete_of_asset(conn: sqlite3.Connection, asset_id: str) -> None:
    conn.execute("DELETE FROM indexed_assets WHERE asset_id=?", (asset_id,))
