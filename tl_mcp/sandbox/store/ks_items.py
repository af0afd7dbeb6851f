"""The ``ks_items`` table: the only SQL that reads or writes knowledge-store item rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso


@dataclass(frozen=True, slots=True)
class ItemRecord:
    id: str
    store_id: str
    asset_id: str
    asset_type: str
    status: str
    system_metadata: dict[str, Any] | None
    metadata: dict[str, Any]
    error: str | None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, row: sqlite3.Row) -> ItemRecord:
        return cls(
            id=row["id"],
            store_id=row["store_id"],
            asset_id=row["asset_id"],
            asset_type=row["asset_type"],
            status=row["status"],
            system_metadata=loads(row["system_metadata"]) if row["system_metadata"] else None,
            metadata=loads(row["metadata"]) or {},
            error=row["error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def get(db: Database, item_id: str, store_id: str | None = None) -> ItemRecord | None:
    """The item, or None; with ``store_id``, only when it belongs to that store."""
    if store_id is None:
        row = db.one("SELECT * FROM ks_items WHERE id = ?", (item_id,))
    else:
        row = db.one("SELECT * FROM ks_items WHERE id = ? AND store_id = ?", (item_id, store_id))
    return ItemRecord.of(row) if row else None


def insert(
    conn: sqlite3.Connection,
    item_id: str,
    *,
    store_id: str,
    asset_id: str,
    asset_type: str,
    system_metadata: dict[str, Any],
    metadata: dict[str, Any],
) -> None:
    """A new item, ``queued`` until its ``ks_item`` job runs."""
    stamp = now_iso()
    conn.execute(
        "INSERT INTO ks_items (id, store_id, asset_id, asset_type, status, system_metadata, metadata, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
        (item_id, store_id, asset_id, asset_type, dumps(system_metadata), dumps(metadata), stamp, stamp),
    )


def count(db: Database, store_id: str) -> int:
    row = db.one("SELECT COUNT(*) AS n FROM ks_items WHERE store_id = ?", (store_id,))
    return int(row["n"]) if row else 0


def page(
    db: Database, store_id: str, *, statuses: Sequence[str], order: str, limit: int, offset: int
) -> tuple[list[ItemRecord], int]:
    """A page of the store's items (of ``statuses``, when given) and how many there are; ``order`` must
    come from the route's allow-list."""
    where, params = "store_id = ?", [store_id]
    if statuses:
        where += f" AND status IN ({', '.join('?' for _ in statuses)})"
        params.extend(statuses)
    total = db.one(f"SELECT COUNT(*) AS n FROM ks_items WHERE {where}", params)
    rows = db.all(
        f"SELECT * FROM ks_items WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?", (*params, limit, offset)
    )
    return [ItemRecord.of(r) for r in rows], int(total["n"]) if total else 0


def ready(db: Database, store_id: str) -> list[ItemRecord]:
    rows = db.all("SELECT * FROM ks_items WHERE store_id = ? AND status = 'ready'", (store_id,))
    return [ItemRecord.of(r) for r in rows]


def status_counts(db: Database, store_id: str) -> dict[str, int]:
    rows = db.all(
        "SELECT status, COUNT(*) AS n FROM ks_items WHERE store_id = ? GROUP BY status", (store_id,)
    )
    return {r["status"]: int(r["n"]) for r in rows}


def known_ids(db: Database, store_id: str, item_ids: Sequence[str]) -> set[str]:
    """Which of ``item_ids`` are items of ``store_id``."""
    if not item_ids:
        return set()
    rows = db.all(
        f"SELECT id FROM ks_items WHERE store_id = ? AND id IN ({', '.join('?' for _ in item_ids)})",
        (store_id, *item_ids),
    )
    return {r["id"] for r in rows}


def asset_id_of(db: Database, item_id: str) -> str | None:
    row = db.one("SELECT asset_id FROM ks_items WHERE id = ?", (item_id,))
    return str(row["asset_id"]) if row else None


def set_status(db: Database, item_id: str, status: str, error: str | None = None) -> None:
    db.run(
        "UPDATE ks_items SET status = ?, error = ?, updated_at = ? WHERE id = ?",
        (status, error, now_iso(), item_id),
    )


def set_system_metadata(db: Database, item_id: str, system_metadata: dict[str, Any]) -> None:
    db.run("UPDATE ks_items SET system_metadata = ? WHERE id = ?", (dumps(system_metadata), item_id))


def delete(conn: sqlite3.Connection, item_id: str) -> None:
    """Delete the item row, inside the caller's transaction that also drops its memberships."""
    conn.execute("DELETE FROM ks_items WHERE id = ?", (item_id,))


def delete_for_store(conn: sqlite3.Connection, store_id: str) -> None:
    conn.execute("DELETE FROM ks_items WHERE store_id = ?", (store_id,))
