"""The ``texts`` table (an analysed asset's timed texts: subtitles, speech, on-screen text, with their
vectors): the only SQL that reads or writes its rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from tl_mcp.sandbox.media import TimedText
from tl_mcp.sandbox.store.db import Database

#: The sources that make up a transcript (the rest, e.g. OCR, is on screen).
TRANSCRIPT_SOURCES = ("subtitle", "speech")


@dataclass(frozen=True, slots=True)
class StoredText:
    timed: TimedText
    #: float32 bytes of the text's vector (``None`` when no text embedder ran).
    vec: bytes | None


def _timed(row: sqlite3.Row) -> TimedText:
    return TimedText(row["start"], row["end"], row["text"], row["source"], row["confidence"])


def of_asset(db: Database, asset_id: str) -> list[StoredText]:
    rows = db.all("SELECT * FROM texts WHERE asset_id=? ORDER BY idx", (asset_id,))
    return [StoredText(_timed(r), r["vec"]) for r in rows]


def transcript(db: Database, asset_id: str) -> list[TimedText]:
    """The asset's subtitle and speech cues, in time order."""
    rows = db.all(
        f"SELECT * FROM texts WHERE asset_id=? AND source IN ({','.join('?' * len(TRANSCRIPT_SOURCES))}) "
        "ORDER BY start",
        (asset_id, *TRANSCRIPT_SOURCES),
    )
    return [_timed(r) for r in rows]


def overlapping(db: Database, asset_id: str, start: float, end: float) -> list[TimedText]:
    """The asset's texts that overlap ``start``–``end``, in time order."""
    rows = db.all(
        "SELECT * FROM texts WHERE asset_id = ? AND start < ? AND end > ? ORDER BY start, idx",
        (asset_id, end, start),
    )
    return [_timed(r) for r in rows]


def next_to(
    db: Database,
    asset_id: str,
    start: float,
    end: float,
    *,
    before: bool,
    sources: Sequence[str] = (),
) -> TimedText | None:
    """The asset's text just before ``start`` (or just after ``end``), of one of ``sources`` when given,
    or None."""
    of_source = f" AND source IN ({','.join('?' * len(sources))})" if sources else ""
    # A little slack: cues that touch the moment count as next to it, not inside it.
    if before:
        row = db.one(
            f"SELECT * FROM texts WHERE asset_id = ? AND start < ? AND end <= ?{of_source} "
            "ORDER BY end DESC, idx LIMIT 1",
            (asset_id, start, start + 0.25, *sources),
        )
    else:
        row = db.one(
            f"SELECT * FROM texts WHERE asset_id = ? AND end > ? AND start >= ?{of_source} "
            "ORDER BY start, idx LIMIT 1",
            (asset_id, end, end - 0.25, *sources),
        )
    return None if row is None else _timed(row)


def replace(conn: sqlite3.Connection, asset_id: str, texts: Sequence[StoredText]) -> None:
    """Make ``texts`` the asset's, in the caller's transaction that stores the rest of its analysis."""
    delete_of_asset(conn, asset_id)
    conn.executemany(
        "INSERT INTO texts(asset_id, idx, start, end, text, source, confidence, vec) VALUES(?,?,?,?,?,?,?,?)",
        [
            (asset_id, i, t.timed.start, t.timed.end, t.timed.text, t.timed.source, t.timed.confidence, t.vec)
            for i, t in enumerate(texts)
        ],
    )


def delete_of_asset(conn: sqlite3.Connection, asset_id: str) -> None:
    conn.execute("DELETE FROM texts WHERE asset_id=?", (asset_id,))
