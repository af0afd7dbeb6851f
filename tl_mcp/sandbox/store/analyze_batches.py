"""The ``analyze_batches`` table (analysis batches): the only SQL that reads or writes its rows, and a batch
as the API shows it. Its items are ``analyze_tasks`` rows whose request names the batch; its status and
counts are derived from them whenever it is read, so they can never disagree with them."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.errors import found
from tl_mcp.sandbox.store.analyze_tasks import AnalyzeTask, item_status
from tl_mcp.sandbox.store.db import Database


@dataclass(frozen=True, slots=True)
class AnalyzeBatch:
    id: str
    model_name: str
    analysis_mode: str
    created_at: str
    expires_at: str
    canceled_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AnalyzeBatch:
        return cls(
            row["id"],
            row["model_name"],
            row["analysis_mode"],
            row["created_at"],
            row["expires_at"],
            row["canceled_at"],
        )


def get_batch(db: Database, batch_id: str) -> AnalyzeBatch:
    """The batch, or the TwelveLabs 404 (nested) for ``batch_id``."""
    row = found(
        db.one("SELECT * FROM analyze_batches WHERE id=?", (batch_id,)),
        batch_id,
        "analyze batches",
        nested=True,
    )
    return AnalyzeBatch.from_row(row)


def newest_first(db: Database) -> list[AnalyzeBatch]:
    rows = db.all("SELECT * FROM analyze_batches ORDER BY created_at DESC, rowid DESC")
    return [AnalyzeBatch.from_row(r) for r in rows]


def is_live(conn: sqlite3.Connection, batch_id: str) -> bool:
    """The batch still stands for its request (it was not canceled)."""
    row = conn.execute(
        "SELECT 1 FROM analyze_batches WHERE id=? AND canceled_at IS NULL", (batch_id,)
    ).fetchone()
    return row is not None


def insert(
    conn: sqlite3.Connection, batch_id: str, *, model_name: str, analysis_mode: str, now: str, expires_at: str
) -> None:
    """A new batch, in the caller's transaction that inserts its items."""
    conn.execute(
        "INSERT INTO analyze_batches(id, model_name, analysis_mode, created_at, expires_at) "
        "VALUES(?,?,?,?,?)",
        (batch_id, model_name, analysis_mode, now, expires_at),
    )


def set_canceled(conn: sqlite3.Connection, batch_id: str, now: str) -> None:
    conn.execute("UPDATE analyze_batches SET canceled_at=? WHERE id=?", (now, batch_id))


def delete(conn: sqlite3.Connection, batch_id: str) -> None:
    """The batch row alone, in the caller's transaction that deletes its items."""
    conn.execute("DELETE FROM analyze_batches WHERE id=?", (batch_id,))


def batch_json(batch: AnalyzeBatch, items: list[AnalyzeTask]) -> dict[str, Any]:
    """The batch object: counts per item status, and the status they add up to."""
    counts = {s: 0 for s in ("queued", "processing", "ready", "failed", "canceled")}
    for t in items:
        counts[item_status(t.status)] += 1
    running = counts["queued"] + counts["processing"]
    if batch.canceled_at:
        status = "canceling" if running else "canceled"
    elif not running:
        status = "completed"
    elif counts["processing"] or len(items) > running:
        status = "processing"
    else:
        status = "pending"
    body: dict[str, Any] = {
        "batch_id": batch.id,
        "analysis_mode": batch.analysis_mode,
        "model_name": batch.model_name,
        "status": status,
        "total_items": len(items),
        "created_at": batch.created_at,
        "expires_at": batch.expires_at,
        **{f"{k}_items": v for k, v in counts.items()},
    }
    ended = [t.completed_at for t in items if t.completed_at]
    if status == "completed" and ended:
        body["completed_at"] = max(ended)
    if status == "canceled":
        body["canceled_at"] = batch.canceled_at
    return body
