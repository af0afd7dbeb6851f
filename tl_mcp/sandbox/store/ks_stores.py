"""The ``ks_stores`` table: the only SQL that reads or writes knowledge-store rows."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.store import ks_collections, ks_items, ks_search_pages
from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso


@dataclass(frozen=True, slots=True)
class StoreRecord:
    id: str
    name: str
    description: str | None
    ingestion_config: dict[str, Any] | None
    metadata: dict[str, Any]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, row: sqlite3.Row) -> StoreRecord:
        return cls(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            ingestion_config=loads(row["ingestion_config"]) if row["ingestion_config"] else None,
            metadata=loads(row["metadata"]) or {},
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def get(db: Database, store_id: str) -> StoreRecord | None:
    row = db.one("SELECT * FROM ks_stores WHERE id = ?", (store_id,))
    return StoreRecord.of(row) if row else None


def insert(
    db: Database,
    store_id: str,
    *,
    name: str,
    description: str | None,
    ingestion_config: dict[str, Any] | None,
    metadata: dict[str, Any],
) -> None:
    stamp = now_iso()
    db.run(
        "INSERT INTO ks_stores (id, name, description, ingestion_config, metadata, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            store_id,
            name,
            description,
            dumps(ingestion_config) if ingestion_config else None,
            dumps(metadata),
            stamp,
            stamp,
        ),
    )


def update(db: Database, store_id: str, changes: dict[str, Any]) -> None:
    """Apply validated ``changes`` (``name``, ``description``, ``metadata``); none: no-op."""
    unknown = set(changes) - {"name", "description", "metadata"}
    if unknown:
        raise ValueError(f"not knowledge-store columns: {sorted(unknown)}")
    if not changes:
        return
    values = {k: dumps(v) if k == "metadata" else v for k, v in changes.items()}
    values["updated_at"] = now_iso()
    assignments = ", ".join(f"{k} = ?" for k in values)
    db.run(f"UPDATE ks_stores SET {assignments} WHERE id = ?", (*values.values(), store_id))


def touch(conn: sqlite3.Connection, store_id: str) -> None:
    """Mark the store changed (its items were added or removed), inside the caller's transaction."""
    conn.execute("UPDATE ks_stores SET updated_at = ? WHERE id = ?", (now_iso(), store_id))


def page(db: Database, *, order: str, limit: int, offset: int) -> tuple[list[StoreRecord], int]:
    """A page of stores and how many there are; ``order`` must come from the route's allow-list."""
    total = db.one("SELECT COUNT(*) AS n FROM ks_stores")
    rows = db.all(f"SELECT * FROM ks_stores ORDER BY {order} LIMIT ? OFFSET ?", (limit, offset))
    return [StoreRecord.of(r) for r in rows], int(total["n"]) if total else 0


def delete(db: Database, store_id: str) -> None:
    """The store and everything in it: items, collections and their members, saved search pages."""
    with db.tx() as conn:
        ks_collections.delete_for_store(conn, store_id)
        ks_items.delete_for_store(conn, store_id)
        ks_search_pages.delete_for_store(conn, store_id)
        conn.execute("DELETE FROM ks_stores WHERE id = ?", (store_id,))
