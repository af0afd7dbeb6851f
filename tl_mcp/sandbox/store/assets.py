"""The ``assets`` table: the only SQL that reads or writes asset rows.

Other modules (routes, workers, the knowledge-store seam) go through these functions, so the asset row's
shape is known in one place.
"""

from __future__ import annotations

import mimetypes
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tl_mcp.sandbox.errors import found
from tl_mcp.sandbox.media import Probe
from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso

#: What an asset can be.
ASSET_TYPES = ("video", "audio", "image")


def get(db: Database, asset_id: str) -> sqlite3.Row | None:
    return db.one("SELECT * FROM assets WHERE id=?", (asset_id,))


def probe_of(row: sqlite3.Row) -> Probe | None:
    """What probing the asset's file found, or ``None`` while nothing has probed it."""
    return Probe.from_dict(loads(row["probe"])) if row["probe"] else None


def get_asset_row(db: Database, asset_id: str, *, nested: bool = False) -> sqlite3.Row:
    """The asset row, or the TwelveLabs 404 for ``asset_id``."""
    return found(get(db, asset_id), asset_id, "assets", nested=nested)


def insert(
    conn: sqlite3.Connection,
    asset_id: str,
    *,
    method: str,
    filename: str,
    path: Path | None,
    info: Probe | None,
    source_url: str | None,
    user_metadata: dict[str, Any] | None,
    enable_hls: bool,
    enable_thumbnail: bool,
) -> None:
    """A new asset row, ``processing`` until its ``asset`` job has analysed it."""
    now = now_iso()
    conn.execute(
        "INSERT INTO assets(id, created_at, updated_at, status, method, filename, file_type, kind, path, "
        "source_url, size, user_metadata, enable_hls, enable_thumbnail, probe) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            asset_id,
            now,
            now,
            "processing",
            method,
            filename,
            info.mime if info else mimetypes.guess_type(filename)[0],
            info.kind if info else None,
            str(path) if path else None,
            source_url,
            info.size if info else None,
            dumps(user_metadata) if user_metadata else None,
            int(enable_hls),
            int(enable_thumbnail),
            dumps(info.to_dict()) if info else None,
        ),
    )


def set_media(db: Database, asset_id: str, path: Path, info: Probe) -> None:
    """Record the file an asset's media is in and what probing it found."""
    db.run(
        "UPDATE assets SET probe=?, kind=?, file_type=?, size=?, path=?, updated_at=? WHERE id=?",
        (dumps(info.to_dict()), info.kind, info.mime, info.size, str(path), now_iso(), asset_id),
    )


def set_downloaded(db: Database, asset_id: str, path: Path, info: Probe) -> None:
    """Record where a ``method=url`` asset's download landed (its kind and type are set once analysed)."""
    db.run(
        "UPDATE assets SET path=?, probe=?, updated_at=? WHERE id=?",
        (str(path), dumps(info.to_dict()), now_iso(), asset_id),
    )


def set_ready(db: Database, asset_id: str) -> None:
    db.run("UPDATE assets SET status='ready', updated_at=? WHERE id=?", (now_iso(), asset_id))


def set_failed(db: Database, asset_id: str, message: str) -> None:
    """Mark a still-processing asset failed with ``message`` (a ready asset stays ready)."""
    db.run(
        "UPDATE assets SET status='failed', error=?, updated_at=? WHERE id=? AND status='processing'",
        (message, now_iso(), asset_id),
    )


def set_analyzed(conn: sqlite3.Connection, asset_id: str, analyzers: dict[str, Any]) -> None:
    """Mark an asset analysed (by ``analyzers``) in the transaction that stored its analysis."""
    conn.execute(
        "UPDATE assets SET analyzed=1, analyzers=?, updated_at=? WHERE id=?",
        (dumps(analyzers), now_iso(), asset_id),
    )


def set_user_metadata(db: Database, asset_id: str, metadata: dict[str, Any]) -> None:
    db.run(
        "UPDATE assets SET user_metadata=?, updated_at=? WHERE id=?",
        (dumps(metadata) if metadata else None, now_iso(), asset_id),
    )


def is_analyzed(db: Database, asset_id: str) -> bool:
    row = db.one("SELECT analyzed FROM assets WHERE id=?", (asset_id,))
    return row is not None and bool(row["analyzed"])


def exists(db: Database, asset_id: str) -> bool:
    return db.one("SELECT 1 FROM assets WHERE id=?", (asset_id,)) is not None


def by_source(db: Database, source_url: str) -> str | None:
    """The newest asset (not failed) made from ``source_url``, so a repeated source reuses it."""
    row = db.one(
        "SELECT id FROM assets WHERE source_url=? AND status<>'failed' ORDER BY created_at DESC LIMIT 1",
        (source_url,),
    )
    return None if row is None else str(row["id"])


def search(
    db: Database, *, ids: Sequence[str], kinds: Sequence[str], filename: str | None
) -> list[sqlite3.Row]:
    """Assets, newest first, among ``ids`` and of ``kinds`` (each when non-empty), whose file name contains
    ``filename`` (any case)."""
    clauses: list[str] = []
    params: list[Any] = []
    if ids:
        clauses.append(f"id IN ({','.join('?' * len(ids))})")
        params.extend(ids)
    if kinds:
        clauses.append(f"kind IN ({','.join('?' * len(kinds))})")
        params.extend(kinds)
    if filename:
        clauses.append("lower(filename) LIKE ?")
        params.append(f"%{filename.lower()}%")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return db.all(f"SELECT * FROM assets {where} ORDER BY created_at DESC, rowid DESC", params)


def delete(conn: sqlite3.Connection, asset_id: str) -> None:
    conn.execute("DELETE FROM assets WHERE id=?", (asset_id,))
