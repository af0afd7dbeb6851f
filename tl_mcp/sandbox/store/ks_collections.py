"""The ``ks_collections`` and ``ks_collection_members`` tables: the only SQL that reads or writes item
collections and who belongs to them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso
from tl_mcp.sandbox.store.ks_items import ItemRecord

_SELECT = (
    "SELECT c.*, (SELECT COUNT(*) FROM ks_collection_members m WHERE m.collection_id = c.id) AS members "
    "FROM ks_collections c"
)


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    id: str
    store_id: str
    name: str
    description: str | None
    metadata: dict[str, Any]
    member_count: int
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, row: sqlite3.Row) -> CollectionRecord:
        return cls(
            id=row["id"],
            store_id=row["store_id"],
            name=row["name"],
            description=row["description"],
            metadata=loads(row["metadata"]) or {},
            member_count=int(row["members"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def get(db: Database, store_id: str, collection_id: str) -> CollectionRecord | None:
    row = db.one(f"{_SELECT} WHERE c.id = ? AND c.store_id = ?", (collection_id, store_id))
    return CollectionRecord.of(row) if row else None


def id_named(db: Database, store_id: str, name: str) -> str | None:
    """The id of the store's collection called ``name`` (names are unique in a store)."""
    row = db.one("SELECT id FROM ks_collections WHERE store_id = ? AND name = ?", (store_id, name))
    return str(row["id"]) if row else None


def insert(
    db: Database,
    collection_id: str,
    *,
    store_id: str,
    name: str,
    description: str | None,
    metadata: dict[str, Any],
) -> None:
    stamp = now_iso()
    db.run(
        "INSERT INTO ks_collections (id, store_id, name, description, metadata, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (collection_id, store_id, name, description, dumps(metadata), stamp, stamp),
    )


def update(db: Database, collection_id: str, changes: dict[str, Any]) -> None:
    """Apply validated ``changes`` (``name``, ``description``, ``metadata``); none: no-op."""
    allowed = {"name", "description", "metadata"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not collection columns: {sorted(unknown)}")
    if not changes:
        return
    values = {k: dumps(v) if k == "metadata" else v for k, v in changes.items()}
    values["updated_at"] = now_iso()
    assignments = ", ".join(f"{k} = ?" for k in values)
    db.run(f"UPDATE ks_collections SET {assignments} WHERE id = ?", (*values.values(), collection_id))


def page(
    db: Database, store_id: str, *, order: str, limit: int, offset: int
) -> tuple[list[CollectionRecord], int]:
    """A page of the store's collections and how many there are; ``order`` must come from the route's
    allow-list (column names of ``ks_collections``)."""
    total = db.one("SELECT COUNT(*) AS n FROM ks_collections WHERE store_id = ?", (store_id,))
    rows = db.all(
        f"{_SELECT} WHERE c.store_id = ? ORDER BY {order} LIMIT ? OFFSET ?", (store_id, limit, offset)
    )
    return [CollectionRecord.of(r) for r in rows], int(total["n"]) if total else 0


def member_ids(db: Database, collection_id: str) -> list[str]:
    rows = db.all("SELECT item_id FROM ks_collection_members WHERE collection_id = ?", (collection_id,))
    return [r["item_id"] for r in rows]


def members_page(
    db: Database, collection_id: str, *, limit: int, offset: int
) -> tuple[list[ItemRecord], int]:
    """A page of the collection's items, newest first, and how many it holds."""
    total = db.one(
        "SELECT COUNT(*) AS n FROM ks_collection_members WHERE collection_id = ?", (collection_id,)
    )
    rows = db.all(
        "SELECT i.* FROM ks_items i JOIN ks_collection_members m ON m.item_id = i.id "
        "WHERE m.collection_id = ? ORDER BY i.created_at DESC, i.id DESC LIMIT ? OFFSET ?",
        (collection_id, limit, offset),
    )
    return [ItemRecord.of(r) for r in rows], int(total["n"]) if total else 0


def add_members(db: Database, collection_id: str, item_ids: Sequence[str]) -> None:
    """Add ``item_ids`` (already checked to be items of the store); members already in are skipped."""
    with db.tx() as conn:
        conn.executemany(
            "INSERT OR IGNORE INTO ks_collection_members (collection_id, item_id) VALUES (?, ?)",
            [(collection_id, i) for i in item_ids],
        )
        conn.execute("UPDATE ks_collections SET updated_at = ? WHERE id = ?", (now_iso(), collection_id))


def remove_members(db: Database, collection_id: str, item_ids: Sequence[str]) -> None:
    """Remove ``item_ids``; ids that are not members are ignored."""
    with db.tx() as conn:
        conn.executemany(
            "DELETE FROM ks_collection_members WHERE collection_id = ? AND item_id = ?",
            [(collection_id, i) for i in item_ids],
        )
        conn.execute("UPDATE ks_collections SET updated_at = ? WHERE id = ?", (now_iso(), collection_id))


def delete(db: Database, collection_id: str) -> None:
    """The collection and its memberships; its items stay in the store."""
    with db.tx() as conn:
        conn.execute("DELETE FROM ks_collection_members WHERE collection_id = ?", (collection_id,))
        conn.execute("DELETE FROM ks_collections WHERE id = ?", (collection_id,))


def drop_item(conn: sqlite3.Connection, item_id: str) -> None:
    """Take a deleted item out of every collection, inside the caller's transaction."""
    conn.execute("DELETE FROM ks_collection_members WHERE item_id = ?", (item_id,))


def delete_for_store(conn: sqlite3.Connection, store_id: str) -> None:
    conn.execute(
        "DELETE FROM ks_collection_members WHERE collection_id IN "
        "(SELECT id FROM ks_collections WHERE store_id = ?)",
        (store_id,),
    )
    conn.execute("DELETE FROM ks_collections WHERE store_id = ?", (store_id,))
