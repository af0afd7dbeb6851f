"""The ``uploads`` and ``upload_chunks`` tables (multipart upload sessions and the parts PUT to them): the
only SQL that reads or writes their rows. One module for both: a chunk row exists only under its session."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    asset_id: str
    filename: str
    type: str
    total_size: int
    chunk_size: int
    total_chunks: int
    #: active → completed (joined into its asset) | expired
    status: str
    #: What the asset is created with once joined: enable_hls, enable_thumbnail, user_metadata.
    options: dict[str, Any]
    created_at: str
    updated_at: str
    expires_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Upload:
        return cls(
            id=row["id"],
            asset_id=row["asset_id"],
            filename=row["filename"],
            type=row["type"],
            total_size=row["total_size"],
            chunk_size=row["chunk_size"],
            total_chunks=row["total_chunks"],
            status=row["status"],
            options=loads(row["options"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            expires_at=row["expires_at"],
        )


@dataclass(frozen=True, slots=True)
class Chunk:
    idx: int
    size: int
    #: The MD5 of its bytes, which the client reports back as the chunk's proof.
    etag: str
    reported: bool
    uploaded_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Chunk:
        return cls(
            row["idx"], row["size"], row["etag"], bool(row["reported"]), row["uploaded_at"], row["updated_at"]
        )


def expire(db: Database) -> None:
    """Active sessions past ``expires_at`` turn ``expired``."""
    now = now_iso()
    db.run(
        "UPDATE uploads SET status='expired', updated_at=? WHERE status='active' AND expires_at <= ?",
        (now, now),
    )


def get(db: Database, upload_id: str) -> Upload | None:
    row = db.one("SELECT * FROM uploads WHERE id=?", (upload_id,))
    return None if row is None else Upload.from_row(row)


def active(db: Database) -> list[Upload]:
    """Active sessions, newest first."""
    rows = db.all("SELECT * FROM uploads WHERE status='active' ORDER BY created_at DESC")
    return [Upload.from_row(r) for r in rows]


def insert(
    db: Database,
    upload_id: str,
    *,
    asset_id: str,
    filename: str,
    type: str,
    total_size: int,
    chunk_size: int,
    total_chunks: int,
    options: dict[str, Any],
    expires_at: str,
) -> None:
    now = now_iso()
    db.run(
        "INSERT INTO uploads(id, asset_id, filename, type, total_size, chunk_size, total_chunks, status, "
        "options, created_at, updated_at, expires_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            upload_id,
            asset_id,
            filename,
            type,
            total_size,
            chunk_size,
            total_chunks,
            "active",
            dumps(options),
            now,
            now,
            expires_at,
        ),
    )


def set_completed(db: Database, upload_id: str) -> None:
    db.run("UPDATE uploads SET status='completed', updated_at=? WHERE id=?", (now_iso(), upload_id))


def put_chunk(db: Database, upload_id: str, idx: int, *, size: int, etag: str) -> None:
    """Record chunk ``idx`` as uploaded; a chunk PUT again replaces its size and etag (and keeps whether it
    was reported)."""
    now = now_iso()
    db.run(
        "INSERT INTO upload_chunks(upload_id, idx, size, etag, uploaded_at, updated_at) VALUES(?,?,?,?,?,?) "
        "ON CONFLICT(upload_id, idx) DO UPDATE SET size=excluded.size, etag=excluded.etag, "
        "updated_at=excluded.updated_at",
        (upload_id, idx, size, etag, now, now),
    )


def chunk(db: Database, upload_id: str, idx: int) -> Chunk | None:
    row = db.one("SELECT * FROM upload_chunks WHERE upload_id=? AND idx=?", (upload_id, idx))
    return None if row is None else Chunk.from_row(row)


def chunks(db: Database, upload_id: str) -> list[Chunk]:
    """The uploaded chunks of ``upload_id``, in index order."""
    rows = db.all("SELECT * FROM upload_chunks WHERE upload_id=? ORDER BY idx", (upload_id,))
    return [Chunk.from_row(r) for r in rows]


def mark_reported(db: Database, upload_id: str, idx: int) -> None:
    db.run("UPDATE upload_chunks SET reported=1 WHERE upload_id=? AND idx=?", (upload_id, idx))


def reported_count(db: Database, upload_id: str) -> int:
    row = db.one("SELECT COUNT(*) AS n FROM upload_chunks WHERE upload_id=? AND reported=1", (upload_id,))
    return int(row["n"]) if row else 0
