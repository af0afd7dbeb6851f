"""The entity tables: collections, entities and each entity's reference assets. The only SQL that reads or
writes them; an entity's JSON (with its status, derived from its assets) is built here too."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from tl_mcp.sandbox.errors import found
from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso
from tl_mcp.sandbox.store.ids import new_id

#: What lists may sort by (the contract's `sort_by` values).
SORTS = ("created_at", "updated_at", "name")


# ----- collections ------------------------------------------------------------------------------------------
def collection_row(db: Database, collection_id: str) -> sqlite3.Row:
    row = db.one("SELECT * FROM entity_collections WHERE id=?", (collection_id,))
    return found(row, collection_id, "entity-collections")


def collection_json(row: sqlite3.Row) -> dict[str, Any]:
    body: dict[str, Any] = {"_id": row["id"], "name": row["name"]}
    if row["description"] is not None:
        body["description"] = row["description"]
    body.update(created_at=row["created_at"], updated_at=row["updated_at"])
    return body


def create_collection(db: Database, name: str, description: str | None) -> sqlite3.Row:
    collection_id, now = new_id(), now_iso()
    db.run(
        "INSERT INTO entity_collections(id, name, description, created_at, updated_at) VALUES(?,?,?,?,?)",
        (collection_id, name, description, now, now),
    )
    return collection_row(db, collection_id)


def list_collections(
    db: Database, *, name: str | None, order: str, limit: int, offset: int
) -> tuple[list[sqlite3.Row], int]:
    where, params = _name_filter(name)
    total = db.one(f"SELECT COUNT(*) AS n FROM entity_collections {where}", params)
    rows = db.all(
        f"SELECT * FROM entity_collections {where} ORDER BY {order} LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return rows, int(total["n"]) if total else 0


def update_collection(db: Database, collection_id: str, changes: dict[str, str]) -> sqlite3.Row:
    _update(db, "entity_collections", collection_id, changes)
    return collection_row(db, collection_id)


def delete_collection(db: Database, collection_id: str) -> None:
    """The collection and every entity in it (the assets themselves stay)."""
    with db.tx() as conn:
        conn.execute(
            "DELETE FROM entity_assets WHERE entity_id IN (SELECT id FROM entities WHERE collection_id=?)",
            (collection_id,),
        )
        conn.execute("DELETE FROM entities WHERE collection_id=?", (collection_id,))
        conn.execute("DELETE FROM entity_collections WHERE id=?", (collection_id,))


# ----- entities ---------------------------------------------------------------------------------------------
def entity_row(db: Database, collection_id: str, entity_id: str) -> sqlite3.Row:
    collection_row(db, collection_id)
    row = db.one("SELECT * FROM entities WHERE id=? AND collection_id=?", (entity_id, collection_id))
    return found(row, entity_id, f"entity collection {collection_id}")


def entity_by_id(db: Database, entity_id: str) -> sqlite3.Row | None:
    """An entity in any collection (search names entities without their collection)."""
    return db.one("SELECT * FROM entities WHERE id=?", (entity_id,))


def asset_ids(db: Database, entity_id: str) -> list[str]:
    rows = db.all("SELECT asset_id FROM entity_assets WHERE entity_id=? ORDER BY position", (entity_id,))
    return [str(r["asset_id"]) for r in rows]


def status(db: Database, entity_id: str) -> str:
    """`processing` while a reference asset is still being analysed, then `ready`: the sandbox's entity
    model is the analysed pictures of its assets, so nothing else is left to do."""
    pending = db.one(
        "SELECT 1 FROM entity_assets ea JOIN assets a ON a.id = ea.asset_id "
        "WHERE ea.entity_id=? AND a.status='processing' LIMIT 1",
        (entity_id,),
    )
    return "processing" if pending else "ready"


def entity_json(db: Database, row: sqlite3.Row) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_id": row["id"],
        "entity_collection_id": row["collection_id"],
        "name": row["name"],
    }
    if row["description"] is not None:
        body["description"] = row["description"]
    body.update(
        metadata=loads(row["metadata"]) or {},
        asset_ids=asset_ids(db, row["id"]),
        status=status(db, row["id"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
    return body


def insert_entity(
    conn: sqlite3.Connection,
    collection_id: str,
    *,
    name: str,
    description: str | None,
    metadata: dict[str, Any],
    assets: Sequence[str],
) -> str:
    entity_id, now = new_id(), now_iso()
    conn.execute(
        "INSERT INTO entities(id, collection_id, name, description, metadata, created_at, updated_at) "
        "VALUES(?,?,?,?,?,?,?)",
        (entity_id, collection_id, name, description, dumps(metadata), now, now),
    )
    _link(conn, entity_id, assets, start=0)
    return entity_id


def list_entities(
    db: Database,
    collection_id: str,
    *,
    name: str | None,
    statuses: Sequence[str],
    order: str,
) -> list[sqlite3.Row]:
    where, params = _name_filter(name)
    clause = f"{where} AND collection_id=?" if where else "WHERE collection_id=?"
    rows = db.all(f"SELECT * FROM entities {clause} ORDER BY {order}", (*params, collection_id))
    # Status is derived from the assets, so it filters here rather than in SQL.
    return [r for r in rows if not statuses or status(db, r["id"]) in statuses]


def entities_of_asset(db: Database, asset_id: str) -> list[sqlite3.Row]:
    return db.all(
        "SELECT e.* FROM entities e JOIN entity_assets ea ON ea.entity_id = e.id WHERE ea.asset_id=? "
        "ORDER BY e.created_at DESC, e.id DESC",
        (asset_id,),
    )


def update_entity(db: Database, entity_id: str, changes: dict[str, Any]) -> None:
    if "metadata" in changes:
        changes = {**changes, "metadata": dumps(changes["metadata"])}
    _update(db, "entities", entity_id, changes)


def add_assets(db: Database, entity_id: str, assets: Sequence[str]) -> None:
    with db.tx() as conn:
        have = set(asset_ids(db, entity_id))
        top = conn.execute(
            "SELECT COALESCE(MAX(position), -1) AS p FROM entity_assets WHERE entity_id=?", (entity_id,)
        ).fetchone()
        _link(conn, entity_id, [a for a in assets if a not in have], start=int(top["p"]) + 1)
        _touch(conn, "entities", entity_id)


def remove_assets(db: Database, entity_id: str, assets: Sequence[str]) -> None:
    with db.tx() as conn:
        conn.executemany(
            "DELETE FROM entity_assets WHERE entity_id=? AND asset_id=?", [(entity_id, a) for a in assets]
        )
        _touch(conn, "entities", entity_id)


def delete_entity(db: Database, entity_id: str) -> None:
    with db.tx() as conn:
        conn.execute("DELETE FROM entity_assets WHERE entity_id=?", (entity_id,))
        conn.execute("DELETE FROM entities WHERE id=?", (entity_id,))


def unlink_asset(conn: sqlite3.Connection, asset_id: str) -> None:
    """A deleted asset stops being a reference of any entity (the contract's `DELETE /assets/{id}`)."""
    conn.execute("DELETE FROM entity_assets WHERE asset_id=?", (asset_id,))


# ----- helpers ----------------------------------------------------------------------------------------------
def _name_filter(name: str | None) -> tuple[str, tuple[Any, ...]]:
    if not name:
        return "", ()
    return "WHERE lower(name) LIKE ? ESCAPE '\\'", (f"%{_like(name.lower())}%",)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _link(conn: sqlite3.Connection, entity_id: str, assets: Sequence[str], *, start: int) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO entity_assets(entity_id, asset_id, position) VALUES(?,?,?)",
        [(entity_id, a, start + i) for i, a in enumerate(dict.fromkeys(assets))],
    )


def _update(db: Database, table: str, row_id: str, changes: dict[str, Any]) -> None:
    # Column names come from the route's own allow-list, never from the request.
    sets = ", ".join(f"{column}=?" for column in changes)
    with db.tx() as conn:
        conn.execute(
            f"UPDATE {table} SET {sets}, updated_at=? WHERE id=?", (*changes.values(), now_iso(), row_id)
        )


def _touch(conn: sqlite3.Connection, table: str, row_id: str) -> None:
    conn.execute(f"UPDATE {table} SET updated_at=? WHERE id=?", (now_iso(), row_id))
