"""The ``ks_search_pages`` table: the only SQL that reads or writes saved knowledge-store search pages.

A search ranks its hits once; each ``next_page_token`` is a row holding the whole ranked list and the
offset of the page it asks for, until it expires.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.store.db import Database, dumps, loads

#: Expired tokens are kept this long (answering 410, not 400) before they are purged.
_KEEP_EXPIRED_S = 86_400.0


@dataclass(frozen=True, slots=True)
class SearchPageRecord:
    token: str
    store_id: str
    hits: list[dict[str, Any]]
    page_size: int
    offset: int
    effective: dict[str, Any]
    expires_at: float


def get(db: Database, token: str) -> SearchPageRecord | None:
    row = db.one("SELECT * FROM ks_search_pages WHERE token = ?", (token,))
    if row is None:
        return None
    return SearchPageRecord(
        token=row["token"],
        store_id=row["store_id"],
        hits=loads(row["hits"]),
        page_size=int(row["page_size"]),
        offset=int(row["offset"]),
        effective=loads(row["effective"]),
        expires_at=float(row["expires_at"]),
    )


def insert(db: Database, page: SearchPageRecord) -> None:
    """Save ``page``, purging tokens that expired long ago."""
    with db.tx() as conn:
        conn.execute("DELETE FROM ks_search_pages WHERE expires_at < ?", (time.time() - _KEEP_EXPIRED_S,))
        conn.execute(
            "INSERT INTO ks_search_pages (token, store_id, hits, page_size, offset, effective, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                page.token,
                page.store_id,
                dumps(page.hits),
                page.page_size,
                page.offset,
                dumps(page.effective),
                page.expires_at,
            ),
        )


def delete_for_store(conn: sqlite3.Connection, store_id: str) -> None:
    conn.execute("DELETE FROM ks_search_pages WHERE store_id = ?", (store_id,))
