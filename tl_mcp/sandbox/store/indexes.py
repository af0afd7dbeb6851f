"""The ``indexes`` table: the only SQL that reads or writes index rows."""

from __future__ import annotations

import sqlite3
from typing import Any

from tl_mcp.sandbox.errors import found
from tl_mcp.sandbox.store.db import Database, dumps, now_iso


def get_index_row(db: Database, index_id: str) -> sqlite3.Row:
    """The index row, or the TwelveLabs 404 for ``index_id``."""
    return found(db.one("SELECT * FROM indexes WHERE id=?", (index_id,)), index_id, "indexes")


def name_taken(db: Database, name: str, *, other_than: str | None = None) -> bool:
    if other_than is None:
        return db.one("SELECT 1 FROM indexes WHERE name=?", (name,)) is not None
    return db.one("SELECT 1 FROM indexes WHERE name=? AND id<>?", (name, other_than)) is not None


def insert(db: Database, index_id: str, name: str, models: list[dict[str, Any]], addons: list[str]) -> None:
    """Raises ``sqlite3.IntegrityError`` when another writer took ``name`` first."""
    now = now_iso()
    db.run(
        "INSERT INTO indexes(id, name, created_at, updated_at, models, addons) VALUES(?,?,?,?,?,?)",
        (index_id, name, now, now, dumps(models), dumps(addons)),
    )


def search(
    db: Database,
    *,
    name_like: str | None,
    model_family: str | None,
    sort_by: str,
    sort_option: str,
) -> list[sqlite3.Row]:
    """``sort_by`` / ``sort_option`` must come from the route's allow-list: they are part of the SQL."""
    clauses: list[str] = []
    params: list[Any] = []
    if name_like:
        clauses.append("name LIKE ?")
        params.append(f"%{name_like}%")
    if model_family:
        clauses.append("models LIKE ?")
        params.append(f'%"model_name":"{model_family}%')
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return db.all(
        f"SELECT * FROM indexes {where} ORDER BY {sort_by} {sort_option}, rowid {sort_option}", params
    )


def rename(db: Database, index_id: str, name: str) -> None:
    db.run("UPDATE indexes SET name=?, updated_at=? WHERE id=?", (name, now_iso(), index_id))


def delete(conn: sqlite3.Connection, index_id: str) -> None:
    """Delete the index row, inside the caller's transaction that removes what it holds."""
    conn.execute("DELETE FROM indexes WHERE id=?", (index_id,))
