"""SQLite storage for the sandbox: one file in WAL mode, one connection per thread; the DDL it applies on
open lives in :mod:`tl_mcp.sandbox.store.schema`.

Thread safety: every thread gets its own ``sqlite3.Connection`` (``Database.conn``); writes go through
``Database.tx()`` which holds ``BEGIN IMMEDIATE`` so concurrent writers queue on SQLite's lock (with a busy
timeout) instead of failing. Handlers may call these directly: each statement is short.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tl_mcp.sandbox.store.schema import MIGRATIONS


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
            for module, steps in MIGRATIONS.items():
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
