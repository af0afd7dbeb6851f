"""The ``analyze_idempotency`` table, the `Idempotency-Key` ledger of analysis task and batch creation:
(kind, key) -> the id it created and a hash of the body that created it. The only SQL on its rows."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any

from tl_mcp.sandbox.errors import ApiError


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def replayed(
    conn: sqlite3.Connection, kind: str, key: str | None, digest: str, live: Callable[[str], bool]
) -> str | None:
    """The id an earlier request with this `Idempotency-Key` created, when `live` says it still stands for
    that request; 409 when the key came with a different body; None to create anew."""
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise ApiError(
            400, "parameter_invalid", "The Idempotency-Key header takes 1-255 characters.", nested=True
        )
    row = conn.execute(
        "SELECT ref, body_hash FROM analyze_idempotency WHERE kind=? AND key=?", (kind, key)
    ).fetchone()
    if row is None or not live(row["ref"]):
        return None
    if row["body_hash"] != digest:
        raise ApiError(
            409,
            "idempotency_key_reused",
            f"This Idempotency-Key was already used for a different {kind} request ({row['ref']}). "
            "Use a new key for a new request, or repeat the first request unchanged.",
            nested=True,
        )
    ref: str = row["ref"]
    return ref


def remember(conn: sqlite3.Connection, kind: str, key: str | None, ref: str, digest: str, now: str) -> None:
    """Point `key` at what it created now (a key whose earlier creation failed or was canceled moves on)."""
    if key is not None:
        conn.execute(
            "INSERT OR REPLACE INTO analyze_idempotency(kind, key, ref, body_hash, created_at) "
            "VALUES(?,?,?,?,?)",
            (kind, key, ref, digest, now),
        )
