"""SQLite storage for the sandbox: one file in WAL mode, one connection per thread, schema migrations in one
registry.

Adding tables from another sandbox module (knowledge stores, Jockey sessions, ...)::

    from tl_mcp.sandbox.db import register_schema
    register_schema("knowledge", [
        "CREATE TABLE IF NOT EXISTS ks (id TEXT PRIMARY KEY, doc TEXT NOT NULL)",   # step 1
        "ALTER TABLE ks ADD COLUMN name TEXT",                                     # step 2, added later
    ])

Call it at import time of your module (before ``Database.open``). Steps are applied in order, once each; the
number applied per module is recorded in ``schema_migrations``. Never edit or reorder a step that has
shipped: append a new one.

Thread safety: every thread gets its own ``sqlite3.Connection`` (``Database.conn``); writes go through
``Database.tx()`` which holds ``BEGIN IMMEDIATE`` so concurrent writers queue on SQLite's lock (with a busy
timeout) instead of failing. Handlers may call these directly: each statement is short.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMAS: dict[str, list[str]] = {}


def register_schema(module: str, statements: Sequence[str]) -> None:
    """Declare (or extend) the ordered DDL steps of ``module``. Re-registering the same list is harmless."""
    current = _SCHEMAS.setdefault(module, [])
    for i, statement in enumerate(statements):
        if i < len(current):
            if current[i] != statement:
                raise ValueError(f"schema step {i} of {module!r} changed; append new steps instead")
        else:
            current.append(statement)


register_schema(
    "core",
    [
        """CREATE TABLE IF NOT EXISTS assets (
            id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            status TEXT NOT NULL, method TEXT NOT NULL, filename TEXT NOT NULL, file_type TEXT,
            kind TEXT, path TEXT, source_url TEXT, size INTEGER, user_metadata TEXT,
            enable_hls INTEGER NOT NULL DEFAULT 0, enable_thumbnail INTEGER NOT NULL DEFAULT 1,
            probe TEXT, analyzed INTEGER NOT NULL DEFAULT 0, error TEXT, analyzers TEXT)""",
        """CREATE TABLE IF NOT EXISTS indexes (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, models TEXT NOT NULL, addons TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS indexed_assets (
            id TEXT PRIMARY KEY, index_id TEXT NOT NULL REFERENCES indexes(id) ON DELETE CASCADE,
            asset_id TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            indexed_at TEXT, user_metadata TEXT, error TEXT, task_id TEXT, enable_video_stream INTEGER)""",
        "CREATE INDEX IF NOT EXISTS indexed_assets_index ON indexed_assets(index_id, created_at)",
        """CREATE TABLE IF NOT EXISTS tasks (
            id TEXT PRIMARY KEY, index_id TEXT NOT NULL, video_id TEXT NOT NULL, asset_id TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS segments (
            asset_id TEXT NOT NULL, idx INTEGER NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
            thumbnail TEXT, image_vec BLOB, text TEXT NOT NULL DEFAULT '', text_vec BLOB,
            PRIMARY KEY (asset_id, idx))""",
        """CREATE TABLE IF NOT EXISTS texts (
            asset_id TEXT NOT NULL, idx INTEGER NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
            text TEXT NOT NULL, source TEXT NOT NULL, confidence REAL NOT NULL, vec BLOB,
            PRIMARY KEY (asset_id, idx))""",
        """CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, payload TEXT, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, error TEXT)""",
        "CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at)",
        """CREATE TABLE IF NOT EXISTS uploads (
            id TEXT PRIMARY KEY, asset_id TEXT NOT NULL, filename TEXT NOT NULL, type TEXT NOT NULL,
            total_size INTEGER NOT NULL, chunk_size INTEGER NOT NULL, total_chunks INTEGER NOT NULL,
            status TEXT NOT NULL, options TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            expires_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS upload_chunks (
            upload_id TEXT NOT NULL, idx INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
            reported INTEGER NOT NULL DEFAULT 0, uploaded_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            PRIMARY KEY (upload_id, idx))""",
        """CREATE TABLE IF NOT EXISTS search_pages (
            id TEXT PRIMARY KEY, created_at REAL NOT NULL, expires_at REAL NOT NULL, body TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS embed_tasks (
            id TEXT PRIMARY KEY, version TEXT NOT NULL, status TEXT NOT NULL, model_name TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, request TEXT NOT NULL, result TEXT,
            error TEXT)""",
        """CREATE TABLE IF NOT EXISTS analyze_tasks (
            id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            completed_at TEXT, request TEXT NOT NULL, result TEXT, error TEXT)""",
    ],
)


def new_id() -> str:
    """A 24-hex id like a Mongo ObjectId: 4 bytes of seconds, then 8 random bytes (sorts by creation)."""
    return f"{int(time.time()):08x}{secrets.token_hex(8)}"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def loads(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


class Database:
    """The sandbox database file. ``open`` applies pending migrations; ``close`` closes this thread's handle
    (other threads' handles close when those threads end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = cls(path)
        db._migrate()
        return db

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode never corrupts on a crash; at worst the last commits roll back.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(self.conn.execute(sql, params).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.tx() as conn:
            return conn.execute(sql, params).rowcount

    def _migrate(self) -> None:
        with self.tx() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (module TEXT PRIMARY KEY, applied INTEGER "
                "NOT NULL)"
            )
            for module, steps in _SCHEMAS.items():
                row = conn.execute(
                    "SELECT applied FROM schema_migrations WHERE module=?", (module,)
                ).fetchone()
                applied = int(row["applied"]) if row else 0
                for statement in steps[applied:]:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations(module, applied) VALUES(?, ?) "
                    "ON CONFLICT(module) DO UPDATE SET applied=excluded.applied",
                    (module, len(steps)),
                )

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()
