"""The ``search_pages`` table: the only SQL that reads or writes saved index search pages.

A search ranks its results once; its page tokens name the row that holds them, until it expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.store.db import Database, dumps, loads


@dataclass(frozen=True, slots=True)
class SearchPages:
    id: str
    expires_at: float
    #: The ranked results and what every page repeats (the route's own shape).
    state: dict[str, Any]


def insert(
    db: Database, search_id: str, *, created_at: float, expires_at: float, state: dict[str, Any]
) -> None:
    """Save a search's pages, purging those that have expired."""
    with db.tx() as conn:
        conn.execute("DELETE FROM search_pages WHERE expires_at < ?", (created_at,))
        conn.execute(
            "INSERT INTO search_pages(id, created_at, expires_at, body) VALUES(?,?,?,?)",
            (search_id, created_at, expires_at, dumps(state)),
        )


def get(db: Database, search_id: str) -> SearchPages | None:
    row = db.one("SELECT * FROM search_pages WHERE id=?", (search_id,))
    return None if row is None else SearchPages(row["id"], float(row["expires_at"]), loads(row["body"]))
