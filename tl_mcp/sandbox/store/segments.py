"""The ``segments`` table (an analysed asset's scenes: times, thumbnail, image and text vectors): the only
SQL that reads or writes its rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from tl_mcp.sandbox.store.db import Database


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    #: The JPEG's name in the asset's ``thumbs/`` folder (``None`` for audio).
    thumbnail: str | None
    #: float32 bytes of the key frame's image vector (``None`` for audio).
    image_vec: bytes | None
    #: The timed texts that overlap the segment, joined ("" when none).
    text: str
    text_vec: bytes | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Segment:
        return cls(row["start"], row["end"], row["thumbnail"], row["image_vec"], row["text"], row["text_vec"])


def of_asset(db: Database, asset_id: str, *, with_thumbnail: bool = False) -> list[Segment]:
    """The segments of ``asset_id`` in time order (only those with a thumbnail, if asked)."""
    where = " AND thumbnail IS NOT NULL" if with_thumbnail else ""
    rows = db.all(f"SELECT * FROM segments WHERE asset_id=?{where} ORDER BY idx", (asset_id,))
    return [Segment.from_row(r) for r in rows]


def first_thumbnail(db: Database, asset_id: str) -> str | None:
    """The name of the asset's first thumbnail, its representative picture."""
    row = db.one(
        "SELECT thumbnail FROM segments WHERE asset_id=? AND thumbnail IS NOT NULL ORDER BY idx LIMIT 1",
        (asset_id,),
    )
    return None if row is None else str(row["thumbnail"])


def replace(conn: sqlite3.Connection, asset_id: str, segments: Sequence[Segment]) -> None:
    """Make ``segments`` the asset's, in the caller's transaction that stores the rest of its analysis."""
    delete_of_asset(conn, asset_id)
    conn.executemany(
        "INSERT INTO segments(asset_id, idx, start, end, thumbnail, image_vec, text, text_vec) "
        "VALUES(?,?,?,?,?,?,?,?)",
        [
            (asset_id, i, s.start, s.end, s.thumbnail, s.image_vec, s.text, s.text_vec)
            for i, s in enumerate(segments)
        ],
    )


def delete_of_asset(conn: sqlite3.Connection, asset_id: str) -> None:
    conn.execute("DELETE FROM segments WHERE asset_id=?", (asset_id,))
